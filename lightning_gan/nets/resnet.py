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

Supported image sizes are 32 (the paper's CIFAR-10 networks), 28 (MNIST
style, from a 7x7 base map) and 64 (one more up/down-sampling stage).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conditioning import ConditionalBatchNorm2d, ProjectionHead, check_labels, check_num_classes
from .dcgan import _BASE_SIZE, _check_image_size, _num_stages
from .mlp import _apply_spectral_norm, _check_bool, _check_positive_int

__all__ = ["ResNetGenerator", "ResNetDiscriminator"]

# Glorot-uniform gains of the reference (chainer) code: sqrt(2) on the
# residual path, whose convs (all but the very first) follow a variance-halving ReLU;
# plain Glorot for shortcut convs and the network's first and last layers.
_RESIDUAL_GAIN = math.sqrt(2.0)
_PLAIN_GAIN = 1.0

# The discriminator's residual stages stop downsampling at this map size
# (7x7 for 28x28 inputs, whose halving stops at an odd size).
_DISCRIMINATOR_MIN_SIZE = 8

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
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.first = first
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
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

    ``z`` goes through a ``Linear`` to a ``features``-channel map of size 4x4
    (7x7 for 28x28 images), then through residual up-blocks that each double
    the spatial size (3 for 32x32, 2 for 28x28, 4 for 64x64). Each block is
    ``norm -> ReLU -> upsample(2x, nearest) -> conv3x3 -> norm -> ReLU ->
    conv3x3``, added to a shortcut ``upsample -> conv1x1``. A final
    ``BatchNorm2d -> ReLU -> conv3x3 -> tanh`` maps to ``channels`` in
    ``[-1, 1]``. ``norm`` is ``BatchNorm2d``, or with ``num_classes`` set a
    :class:`~lightning_gan.nets.conditioning.ConditionalBatchNorm2d` (Miyato and
    Koyama, 2018); the final batch norm is unconditional in both cases, as in
    the reference code.

    Weights use Glorot-uniform initialisation as in the reference code: gain
    ``sqrt(2)`` for the convolutions on the residual path, gain 1 for the
    input ``Linear``, the shortcut convolutions and the output convolution.
    Convolutions whose output only reaches the image through a batch norm
    carry no bias, since the norm's shift makes it redundant.

    Args:
        latent_dim: Size of the latent vector ``z``.
        image_size: Output height and width; one of 28, 32, 64.
        channels: Number of output image channels.
        features: Channels of every hidden map (256 in the paper).
        num_classes: Number of classes for a conditional generator, called as
            ``g(z, labels)``; ``None`` for an unconditional one.

    Attributes:
        latent_dim: Size of the latent vector.
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` if unconditional.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive, ``image_size`` is unsupported or
            ``num_classes`` is below 2.

    Example:
        >>> import torch
        >>> g = ResNetGenerator(latent_dim=16, image_size=32, features=8, num_classes=10)
        >>> x = g(torch.randn(2, 16), torch.tensor([3, 7]))
        >>> tuple(x.shape)
        (2, 3, 32, 32)
        >>> bool(x.abs().max() <= 1)
        True
    """

    def __init__(
        self,
        latent_dim: int = 128,
        image_size: int = 32,
        channels: int = 3,
        features: int = 256,
        num_classes: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        self.num_classes = check_num_classes(num_classes)
        self.image_shape: tuple[int, int, int] = (channels, size, size)

        self._base = _BASE_SIZE[size]
        self._features = features
        self.linear = nn.Linear(self.latent_dim, features * self._base**2)
        self.blocks = nn.ModuleList(
            _GeneratorBlock(features, features, self.num_classes) for _ in range(_num_stages(size))
        )
        self.output_norm = nn.BatchNorm2d(features)
        self.output_conv = nn.Conv2d(features, channels, 3, 1, 1)
        _xavier_(self.linear, _PLAIN_GAIN)
        _xavier_(self.output_conv, _PLAIN_GAIN)

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
        h = self.linear(z).view(z.shape[0], self._features, self._base, self._base)
        for block in self.blocks:
            h = block(h, labels)
        h = F.relu(self.output_norm(h), inplace=True)
        return torch.tanh(self.output_conv(h))


class ResNetDiscriminator(nn.Module):
    """SNGAN ResNet discriminator (Miyato et al., 2018), optionally with a projection head.

    An "optimized" first residual block (``conv3x3 -> ReLU -> conv3x3 ->
    avgpool``, shortcut ``avgpool -> conv1x1``) halves the image, residual
    down-blocks (``ReLU -> conv3x3 -> ReLU -> conv3x3 -> avgpool``, shortcut
    ``conv1x1 -> avgpool``) halve it further down to 8x8 (7x7 for 28x28
    inputs), and two residual blocks with identity shortcuts follow. After a
    ReLU, a global *sum* over height and width gives the features ``phi(x)``
    of size ``features``, and the logit is ``Linear(phi(x))``, plus
    ``<embed(y), phi(x)>`` (a
    :class:`~lightning_gan.nets.conditioning.ProjectionHead`) when
    ``num_classes`` is set (Miyato and Koyama, 2018). All blocks keep
    ``features`` channels.

    There is no batch norm, so each sample is scored independently, as a
    WGAN-GP gradient penalty requires. Weights use Glorot-uniform
    initialisation as in the reference code (gain ``sqrt(2)`` on the residual
    path, 1 for shortcuts and the final ``Linear``); spectral norm is applied
    after initialisation.

    Args:
        image_size: Input height and width; one of 28, 32, 64.
        channels: Number of input image channels.
        features: Channels of every hidden map (128 in the paper).
        spectral_norm: If ``True``, wrap every ``Conv2d``, ``Linear`` and the
            projection ``Embedding`` with
            :func:`torch.nn.utils.parametrizations.spectral_norm`.
        num_classes: Number of classes for a projection discriminator, called
            as ``d(x, labels)``; ``None`` for an unconditional one.

    Attributes:
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` if unconditional.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive, ``image_size`` is unsupported or
            ``num_classes`` is below 2.

    Example:
        >>> import torch
        >>> d = ResNetDiscriminator(image_size=32, features=8, num_classes=10)
        >>> tuple(d(torch.randn(2, 3, 32, 32), torch.tensor([3, 7])).shape)
        (2,)
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        features: int = 128,
        spectral_norm: bool = True,
        num_classes: Optional[int] = None,
    ) -> None:
        super().__init__()
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        _check_bool("spectral_norm", spectral_norm)
        self.num_classes = check_num_classes(num_classes)
        self.image_shape: tuple[int, int, int] = (channels, size, size)

        blocks = [_DiscriminatorBlock(channels, features, downsample=True, first=True)]
        size //= 2
        while size > _DISCRIMINATOR_MIN_SIZE:
            blocks.append(_DiscriminatorBlock(features, features, downsample=True))
            size //= 2
        blocks += [_DiscriminatorBlock(features, features, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(features, 1)
        _xavier_(self.linear, _PLAIN_GAIN)
        # ProjectionHead initialises its embedding as the reference does (Glorot, gain 1).
        self.projection = ProjectionHead(self.num_classes, features) if self.num_classes is not None else None
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
        # Global sum (not mean) pooling as in the reference code, so that its
        # published hyperparameters carry over.
        phi = F.relu(self.blocks(x)).sum(dim=(2, 3))
        logits = self.linear(phi).squeeze(1)
        if self.projection is not None:
            assert labels is not None  # guaranteed by check_labels
            logits = logits + self.projection(phi, labels)
        return logits
