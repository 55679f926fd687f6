"""ResNet generator and discriminator from SNGAN, unconditional or class-conditional.

The CIFAR-10 ResNets of the appendix of "Spectral Normalization for Generative
Adversarial Networks" (Miyato, Kataoka, Koyama and Yoshida, 2018): a generator
of pre-activation residual up-blocks (batch norm, ReLU, nearest-neighbour
upsampling, 3x3 convolutions) and a spectrally normalised discriminator of
residual down-blocks ending in global sum pooling and a linear logit.

With ``num_classes`` set they become the conditional networks of "cGANs with
Projection Discriminator" (Miyato and Koyama, 2018): the generator's batch
norms inside the residual blocks become class-conditional
(:class:`~lightning_gan.nets.conditioning.ConditionalBatchNorm2d`), and the
discriminator adds the projection term ``<embed(y), phi(x)>`` to its logit
(:class:`~lightning_gan.nets.conditioning.ProjectionHead`).

Supported image sizes are 32 (the paper's CIFAR-10 networks, all blocks of
one width), 28 (MNIST style, from a 7x7 base map) and 64 (one more
up/down-sampling stage) with the same constant width, and the paper's other
two ResNets, whose width changes from block to block: 48 (STL-10) and 128
(ImageNet). Their channel schedules follow the paper's appendix as
implemented in mimicry (Lee and Town, 2020), ``torch_mimicry/nets/sngan/
sngan_48.py`` and ``sngan_128.py`` at https://github.com/kwotsin/mimicry,
which follows the official chainer code
(https://github.com/pfnet-research/sngan_projection).

Both nets can insert a SAGAN self-attention block
(:class:`~lightning_gan.nets.SelfAttention2d`) after one stage, and the
discriminator a ProGAN minibatch standard deviation layer
(:class:`~lightning_gan.nets.MinibatchStdDev`) before its last block.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import SelfAttention2d, _check_attention_resolution
from .conditioning import ConditionalBatchNorm2d, ProjectionHead, check_labels, check_num_classes
from .dcgan import _base_size, _num_stages
from .minibatch_std import MinibatchStdDev, _check_minibatch_std_group
from .mlp import _apply_spectral_norm, _check_bool, _check_positive_int, _is_int

__all__ = ["ResNetGenerator", "ResNetDiscriminator"]

# Glorot-uniform gains of the reference (chainer) code: sqrt(2) on the
# residual path, whose convs (all but the very first) follow a variance-halving ReLU;
# plain Glorot for shortcut convs and the network's first and last layers.
_RESIDUAL_GAIN = math.sqrt(2.0)
_PLAIN_GAIN = 1.0

# The discriminator's residual stages stop downsampling at this map size
# (7x7 for 28x28 inputs, whose halving stops at an odd size).
_DISCRIMINATOR_MIN_SIZE = 8

# Sizes whose nets keep one width throughout (the CIFAR-10 nets and their 28/64 variants).
_CONSTANT_WIDTH_SIZES = (28, 32, 64)
_SUPPORTED_SIZES = (28, 32, 48, 64, 128)

# The paper's STL-10 (48) and ImageNet (128) schedules, after mimicry's sngan_48.py / sngan_128.py:
#   G48:  Linear -> 6x6x512, GBlocks 512->256->128->64 (ngf=512, ngf >> 1, >> 2, >> 3)
#   G128: Linear -> 4x4x1024, GBlocks 1024->1024->512->256->128->64 (ngf=1024, ngf, >> 1, ..., >> 4)
#   D48:  DBlockOptimized 3->64, DBlocks (down) 64->128->256->512, DBlock (no down) 512->1024 (ndf=1024)
#   D128: DBlockOptimized 3->64, DBlocks (down) 64->...->1024, DBlock (no down) 1024->1024
# Widths are written in units of features // 4 (generator) and features // 2 (discriminator), so
# that the default features (256 and 128, the CIFAR-10 widths) give exactly the paper's widths.
_GENERATOR_UNIT = 4
_DISCRIMINATOR_UNIT = 2
# size -> (base map size, width of the base map, output width of each block), in units.
_GENERATOR_SCHEDULES = {48: (6, 8, (4, 2, 1)), 128: (4, 16, (16, 8, 4, 2, 1))}
# size -> output width of each block, in units; every block but the last halves the map.
_DISCRIMINATOR_SCHEDULES = {48: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16)}


def _check_image_size(image_size: object) -> int:
    if not _is_int(image_size):
        raise TypeError(f"image_size must be an int, got {image_size!r} of type {type(image_size).__name__}")
    if image_size not in _SUPPORTED_SIZES:
        raise ValueError(f"image_size must be one of {_SUPPORTED_SIZES}, got {image_size!r}")
    return int(image_size)  # type: ignore[arg-type]


def _unit(features: int, divisor: int, size: int) -> int:
    if features % divisor != 0:
        raise ValueError(
            f"features must be a multiple of {divisor} at image_size {size} (its narrowest blocks have "
            f"features // {divisor} channels), got {features}"
        )
    return features // divisor


def _generator_plan(size: int, features: int) -> tuple[int, int, list[int]]:
    """``(base map size, base map width, output width of each up-block)``."""
    if size in _CONSTANT_WIDTH_SIZES:
        return _base_size(size), features, [features] * _num_stages(size)
    base, width, widths = _GENERATOR_SCHEDULES[size]
    unit = _unit(features, _GENERATOR_UNIT, size)
    return base, width * unit, [w * unit for w in widths]


def _discriminator_plan(size: int, features: int) -> list[tuple[int, bool]]:
    """``(output width, downsample)`` of each block, the optimized first block included."""
    if size in _CONSTANT_WIDTH_SIZES:
        plan = [(features, True)]
        size //= 2
        while size > _DISCRIMINATOR_MIN_SIZE:
            plan.append((features, True))
            size //= 2
        return plan + [(features, False)] * 2
    unit = _unit(features, _DISCRIMINATOR_UNIT, size)
    widths = _DISCRIMINATOR_SCHEDULES[size]
    return [(w * unit, i < len(widths) - 1) for i, w in enumerate(widths)]

_Norm = Union[nn.BatchNorm2d, ConditionalBatchNorm2d]


def _xavier_(layer: Union[nn.Conv2d, nn.Linear], gain: float) -> None:
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        # Chainer initialises biases to zero, unlike torch's uniform default.
        nn.init.zeros_(layer.bias)


def _make_norm(num_features: int, num_classes: Optional[int]) -> _Norm:
    if num_classes is None:
        return nn.BatchNorm2d(num_features)
    return ConditionalBatchNorm2d(num_features, num_classes)


def _apply_norm(norm: _Norm, x: Tensor, labels: Optional[Tensor]) -> Tensor:
    if isinstance(norm, ConditionalBatchNorm2d):
        assert labels is not None  # guaranteed by check_labels in the public forward
        return norm(x, labels)
    return norm(x)


def _upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class _GeneratorBlock(nn.Module):
    """Pre-activation residual block that doubles the spatial size."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: Optional[int]) -> None:
        super().__init__()
        # Every conv in here feeds the output only through a later batch norm
        # (this block's second norm, or a norm after the sum with the shortcut),
        # which removes any per-channel constant: a bias would get zero gradient.
        self.norm1 = _make_norm(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = _make_norm(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        _xavier_(self.conv1, _RESIDUAL_GAIN)
        _xavier_(self.conv2, _RESIDUAL_GAIN)
        _xavier_(self.shortcut, _PLAIN_GAIN)

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        h = F.relu(_apply_norm(self.norm1, x, labels), inplace=True)
        h = self.conv1(_upsample(h))
        h = F.relu(_apply_norm(self.norm2, h, labels), inplace=True)
        h = self.conv2(h)
        # A 1x1 conv commutes with nearest upsampling, so convolving first gives
        # the reference's upsample -> conv1x1 at a quarter of the cost.
        return h + _upsample(self.shortcut(x))


class _DiscriminatorBlock(nn.Module):
    """Pre-activation residual block, optionally halving the spatial size.

    With ``first=True`` it is the SNGAN "optimized block" that sees the raw
    image: no ReLU before the first conv, since the input is not an activation.
    The first conv maps to ``hidden_channels``: by default ``out_channels`` for
    the optimized block and ``in_channels`` for the others, as in the reference
    code (mimicry's ``DBlockOptimized`` and ``DBlock``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        downsample: bool,
        first: bool = False,
        hidden_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.first = first
        if hidden_channels is None:
            hidden_channels = out_channels if first else in_channels
        self.conv1 = nn.Conv2d(in_channels, hidden_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(hidden_channels, out_channels, 3, 1, 1)
        _xavier_(self.conv1, _RESIDUAL_GAIN)
        _xavier_(self.conv2, _RESIDUAL_GAIN)
        self.shortcut: Optional[nn.Conv2d] = None
        if downsample or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
            _xavier_(self.shortcut, _PLAIN_GAIN)

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: Tensor) -> Tensor:
        # Never ReLU x in place: the shortcut below still needs the raw input.
        h = x if self.first else F.relu(x)
        h = self.conv1(h)
        h = self.conv2(F.relu(h))
        h = self._pool(h)
        if self.shortcut is None:
            return h + x
        # Average pooling commutes with a 1x1 conv, so pooling first gives the
        # reference's conv1x1 -> avgpool at a quarter of the cost.
        return h + self.shortcut(self._pool(x))


class ResNetGenerator(nn.Module):
    """SNGAN ResNet generator (Miyato et al., 2018), optionally class-conditional.

    ``z`` goes through a ``Linear`` to a small map (4x4; 7x7 for 28x28
    images, 6x6 for 48x48), then through residual up-blocks that each double
    the spatial size (2 for 28x28, 3 for 32x32 and 48x48, 4 for 64x64, 5 for
    128x128). Each block is ``norm -> ReLU -> upsample(2x, nearest) ->
    conv3x3 -> norm -> ReLU -> conv3x3``, added to a shortcut ``upsample ->
    conv1x1``. A final ``BatchNorm2d -> ReLU -> conv3x3 -> tanh`` maps to
    ``channels`` in ``[-1, 1]``. ``norm`` is ``BatchNorm2d``, or with
    ``num_classes`` set a
    :class:`~lightning_gan.nets.conditioning.ConditionalBatchNorm2d` (Miyato and
    Koyama, 2018); the final batch norm is unconditional in both cases, as in
    the reference code.

    Channel widths (of the base map, then of each block's output):

    * 28, 32, 64: ``features`` everywhere (the CIFAR-10 net, 256 in the paper);
    * 48 (STL-10): ``features * (2, 1, 1/2, 1/4)``, i.e. 512, 256, 128, 64
      with the default ``features=256``, the paper's widths;
    * 128 (ImageNet): ``features * (4, 4, 2, 1, 1/2, 1/4)``, i.e. 1024, 1024,
      512, 256, 128, 64 with the default ``features=256``, the paper's widths.

    The 48 and 128 schedules are those of mimicry's ``SNGANGenerator48`` and
    ``SNGANGenerator128`` (``torch_mimicry/nets/sngan/sngan_48.py`` and
    ``sngan_128.py``), scaled by ``features / 256``; there ``features`` must
    be a multiple of 4. Unlike mimicry, which upsamples bilinearly, all sizes
    upsample by nearest neighbour, as the official chainer code does.

    Weights use Glorot-uniform initialisation as in the reference code: gain
    ``sqrt(2)`` for the convolutions on the residual path, gain 1 for the
    input ``Linear``, the shortcut convolutions and the output convolution.
    Convolutions whose output only reaches the image through a batch norm
    carry no bias, since the norm's shift makes it redundant.

    Args:
        latent_dim: Size of the latent vector ``z``.
        image_size: Output height and width; one of 28, 32, 48, 64, 128.
        channels: Number of output image channels.
        features: Width multiplier: the channels of every hidden map at 28, 32
            and 64 (256 in the paper), a scale of the paper's widths at 48 and
            128 (see above).
        num_classes: Number of classes for a conditional generator, called as
            ``g(z, labels)``; ``None`` for an unconditional one.
        attention_resolution: Insert a SAGAN self-attention block
            (:class:`~lightning_gan.nets.SelfAttention2d`) after the stage
            (the input ``Linear``, or a residual block) whose output map has
            this height and width; one of the map sizes below the image size
            (e.g. 4, 8, 16 for 32x32 images). ``None``: no attention.

    Attributes:
        latent_dim: Size of the latent vector.
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` if unconditional.
        attention_resolution: Where the attention block is, or ``None``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive, ``image_size`` or
            ``attention_resolution`` is unsupported, ``features`` is not a
            multiple of 4 at 48 or 128, or ``num_classes`` is below 2.

    Example:
        >>> import torch
        >>> g = ResNetGenerator(latent_dim=16, image_size=32, features=8, num_classes=10)
        >>> x = g(torch.randn(2, 16), torch.tensor([3, 7]))
        >>> tuple(x.shape)
        (2, 3, 32, 32)
        >>> bool(x.abs().max() <= 1)
        True
        >>> stl = ResNetGenerator(latent_dim=16, image_size=48, features=8, attention_resolution=12)
        >>> [block.conv1.out_channels for block in stl.blocks]
        [8, 4, 2]
        >>> tuple(stl(torch.randn(2, 16)).shape)
        (2, 3, 48, 48)
    """

    def __init__(
        self,
        latent_dim: int = 128,
        image_size: int = 32,
        channels: int = 3,
        features: int = 256,
        num_classes: Optional[int] = None,
        attention_resolution: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        self.num_classes = check_num_classes(num_classes)
        self.image_shape: tuple[int, int, int] = (channels, size, size)
        self._base, self._base_width, widths = _generator_plan(size, features)
        # Map sizes after the Linear (stage -1) and after each block but the last, which is the image size.
        resolutions = [self._base * 2**i for i in range(len(widths))]
        self.attention_resolution = _check_attention_resolution(attention_resolution, resolutions)

        self.linear = nn.Linear(self.latent_dim, self._base_width * self._base**2)
        in_widths = [self._base_width, *widths[:-1]]
        self.blocks = nn.ModuleList(
            _GeneratorBlock(c_in, c_out, self.num_classes) for c_in, c_out in zip(in_widths, widths)
        )
        self.output_norm = nn.BatchNorm2d(widths[-1])
        self.output_conv = nn.Conv2d(widths[-1], channels, 3, 1, 1)
        _xavier_(self.linear, _PLAIN_GAIN)
        _xavier_(self.output_conv, _PLAIN_GAIN)
        # Index of the stage the attention follows: -1 for the Linear, i for block i.
        self._attention_after: Optional[int] = None
        self.attention: Optional[SelfAttention2d] = None
        if self.attention_resolution is not None:
            stage = resolutions.index(self.attention_resolution)
            self._attention_after = stage - 1
            self.attention = SelfAttention2d(in_widths[stage])

    def forward(self, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Generate images.

        Args:
            z: Latent batch of shape ``(N, latent_dim)``.
            labels: Integer class indices of shape ``(N,)``; required if and
                only if the generator is conditional.

        Returns:
            Images of shape ``(N, channels, image_size, image_size)`` in ``[-1, 1]``.

        Raises:
            ValueError: If ``z`` or ``labels`` has the wrong shape, or labels
                are given to an unconditional generator or missing for a
                conditional one.
            TypeError: If ``labels`` is not an integer tensor.
        """
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        check_labels(labels, self.num_classes, z.shape[0], "ResNetGenerator")
        h = self.linear(z).view(z.shape[0], self._base_width, self._base, self._base)
        if self.attention is not None and self._attention_after == -1:
            h = self.attention(h)
        for i, block in enumerate(self.blocks):
            h = block(h, labels)
            if self.attention is not None and i == self._attention_after:
                h = self.attention(h)
        h = F.relu(self.output_norm(h), inplace=True)
        return torch.tanh(self.output_conv(h))


class ResNetDiscriminator(nn.Module):
    """SNGAN ResNet discriminator (Miyato et al., 2018), optionally with a projection head.

    An "optimized" first residual block (``conv3x3 -> ReLU -> conv3x3 ->
    avgpool``, shortcut ``avgpool -> conv1x1``) halves the image, residual
    down-blocks (``ReLU -> conv3x3 -> ReLU -> conv3x3 -> avgpool``, shortcut
    ``conv1x1 -> avgpool``) halve it further, and residual blocks without
    downsampling follow (their shortcut is the identity when they keep the
    width, a ``conv1x1`` otherwise). After a ReLU, a global *sum* over height
    and width gives the features ``phi(x)``, and the logit is
    ``Linear(phi(x))``, plus ``<embed(y), phi(x)>`` (a
    :class:`~lightning_gan.nets.conditioning.ProjectionHead`) when
    ``num_classes`` is set (Miyato and Koyama, 2018).

    Blocks (output width, and whether they halve the map):

    * 28, 32, 64: down-blocks to 8x8 (7x7 for 28x28), then two blocks without
      downsampling; all ``features`` wide (the CIFAR-10 net, 128 in the paper);
    * 48 (STL-10): ``features * (1/2, 1, 2, 4)`` halving 48 to 3, then one
      block of ``features * 8`` without downsampling: 64, 128, 256, 512, 1024
      with the default ``features=128``, the paper's widths;
    * 128 (ImageNet): ``features * (1/2, 1, 2, 4, 8)`` halving 128 to 4, then
      one block of ``features * 8`` without downsampling: 64, ..., 1024, 1024
      with the default ``features=128``, the paper's widths.

    The 48 and 128 schedules are those of mimicry's ``SNGANDiscriminator48``
    and ``SNGANDiscriminator128`` (``torch_mimicry/nets/sngan/sngan_48.py`` and
    ``sngan_128.py``), scaled by ``features / 128``; there ``features`` must
    be even. As in mimicry's ``DBlock``, a block's first conv keeps its input
    width and the second one changes it.

    Without ``minibatch_std_group`` there is no batch statistic, so each sample
    is scored independently, as a WGAN-GP gradient penalty requires. Weights
    use Glorot-uniform initialisation as in the reference code (gain
    ``sqrt(2)`` on the residual path, 1 for shortcuts and the final
    ``Linear``); spectral norm is applied after initialisation.

    Args:
        image_size: Input height and width; one of 28, 32, 48, 64, 128.
        channels: Number of input image channels.
        features: Width multiplier: the channels of every block at 28, 32 and
            64 (128 in the paper), a scale of the paper's widths at 48 and 128
            (see above).
        spectral_norm: If ``True``, wrap every ``Conv2d``, ``Linear`` and the
            projection ``Embedding`` with
            :func:`torch.nn.utils.parametrizations.spectral_norm`; this includes
            the attention block's convolutions, not its scalar ``gamma``.
        num_classes: Number of classes for a projection discriminator, called
            as ``d(x, labels)``; ``None`` for an unconditional one.
        attention_resolution: Insert a SAGAN self-attention block
            (:class:`~lightning_gan.nets.SelfAttention2d`) after the first
            block whose output map has this height and width; one of the
            blocks' output sizes (e.g. 16, 8 for 32x32 images). ``None``: no
            attention.
        minibatch_std_group: Insert a ProGAN minibatch standard deviation layer
            (:class:`~lightning_gan.nets.MinibatchStdDev` with this group size,
            4 in ProGAN) before the last block, as ProGAN does before its last
            (4x4) block: the last block's first conv and shortcut read one
            channel more (its shortcut thus becomes a ``conv1x1``). The batch
            size must be a multiple of the group size, or smaller than it. This
            couples the samples of a batch, as batch norm does: a per-sample
            gradient penalty's assumption (WGAN-GP, R1) no longer holds exactly.
            ``None``: no such layer.

    Attributes:
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` if unconditional.
        attention_resolution: Where the attention block is, or ``None``.
        minibatch_std_group: The minibatch standard deviation group size, or ``None``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive, ``image_size``,
            ``attention_resolution`` or ``minibatch_std_group`` is
            unsupported, ``features`` is odd at 48 or 128, or ``num_classes``
            is below 2.

    Example:
        >>> import torch
        >>> d = ResNetDiscriminator(image_size=32, features=8, num_classes=10)
        >>> tuple(d(torch.randn(2, 3, 32, 32), torch.tensor([3, 7])).shape)
        (2,)
        >>> big = ResNetDiscriminator(image_size=128, features=4, attention_resolution=32, minibatch_std_group=2)
        >>> [block.conv2.out_channels for block in big.blocks]
        [2, 4, 8, 16, 32, 32]
        >>> tuple(big(torch.randn(2, 3, 128, 128)).shape)
        (2,)
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        features: int = 128,
        spectral_norm: bool = True,
        num_classes: Optional[int] = None,
        attention_resolution: Optional[int] = None,
        minibatch_std_group: Optional[int] = None,
    ) -> None:
        super().__init__()
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        _check_bool("spectral_norm", spectral_norm)
        self.num_classes = check_num_classes(num_classes)
        self.image_shape: tuple[int, int, int] = (channels, size, size)
        plan = _discriminator_plan(size, features)
        resolutions = []  # resolutions[i]: size of block i's output map
        for _, downsample in plan:
            size = size // 2 if downsample else size
            resolutions.append(size)
        self.attention_resolution = _check_attention_resolution(attention_resolution, resolutions)
        self.minibatch_std_group = _check_minibatch_std_group(minibatch_std_group)

        blocks = []
        in_width = channels
        for i, (width, downsample) in enumerate(plan):
            first, last = i == 0, i == len(plan) - 1
            # The statistic channel widens only the inputs of the last block (its first conv and shortcut).
            extra = 1 if last and self.minibatch_std_group is not None else 0
            hidden = width if first else in_width
            blocks.append(_DiscriminatorBlock(in_width + extra, width, downsample, first, hidden))
            in_width = width
        self.blocks = nn.Sequential(*blocks)
        self.minibatch_std = (
            MinibatchStdDev(self.minibatch_std_group) if self.minibatch_std_group is not None else None
        )
        # Index of the block the attention follows.
        self._attention_after: Optional[int] = None
        self.attention: Optional[SelfAttention2d] = None
        if self.attention_resolution is not None:
            self._attention_after = resolutions.index(self.attention_resolution)
            self.attention = SelfAttention2d(plan[self._attention_after][0])
        self.linear = nn.Linear(in_width, 1)
        _xavier_(self.linear, _PLAIN_GAIN)
        # ProjectionHead initialises its embedding as the reference does (Glorot, gain 1).
        self.projection = ProjectionHead(self.num_classes, in_width) if self.num_classes is not None else None
        # After init, so spectral norm's power iteration starts from the final weights.
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Score a batch of images.

        Args:
            x: Images of shape ``(N, channels, image_size, image_size)``.
            labels: Integer class indices of shape ``(N,)``; required if and
                only if the discriminator is conditional.

        Returns:
            Logits (critic scores) of shape ``(N,)``.

        Raises:
            ValueError: If ``x`` or ``labels`` has the wrong shape, or labels
                are given to an unconditional discriminator or missing for a
                conditional one.
            TypeError: If ``labels`` is not an integer tensor.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        check_labels(labels, self.num_classes, x.shape[0], "ResNetDiscriminator")
        h = x
        for i, block in enumerate(self.blocks):
            if self.minibatch_std is not None and i == len(self.blocks) - 1:
                h = self.minibatch_std(h)
            h = block(h)
            if self.attention is not None and i == self._attention_after:
                h = self.attention(h)
        # Global sum (not mean) pooling as in the reference code, so that its
        # published hyperparameters carry over.
        phi = F.relu(h).sum(dim=(2, 3))
        logits = self.linear(phi).squeeze(1)
        if self.projection is not None:
            assert labels is not None  # guaranteed by check_labels
            logits = logits + self.projection(phi, labels)
        return logits
