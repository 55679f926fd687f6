"""Convolutional generator and discriminator from DCGAN (Radford et al., 2015).

"Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks" (Radford, Metz and Chintala, 2015): strided
(transposed) convolutions instead of pooling, batch norm, ReLU in the
generator with a tanh output, LeakyReLU(0.2) in the discriminator, and
weights drawn from N(0, 0.02).

Supported image sizes are 64 (the paper's architecture), every other power of
two from 16 up (one stride-2 stage fewer or more per halving or doubling:
32 is the CIFAR-10 style net, 128 and 256 extend the paper's pattern), and 28
(MNIST style, starting from a 7x7 map).

Both nets can insert a SAGAN self-attention block
(:class:`~lightning_gan.nets.SelfAttention2d`) after one stage, and the
discriminator a ProGAN minibatch standard deviation layer
(:class:`~lightning_gan.nets.MinibatchStdDev`) before its final conv.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .attention import SelfAttention2d, _check_attention_resolution
from .conditioning import ConditionalBatchNorm2d, ProjectionHead, check_labels, check_num_classes
from .minibatch_std import MinibatchStdDev, _check_minibatch_std_group
from .mlp import (
    DISCRIMINATOR_CONDITIONINGS,
    _apply_spectral_norm,
    _check_bool,
    _check_choice,
    _check_embedding_dim,
    _check_positive_int,
    _is_int,
)

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "dcgan_init_"]

# The one supported image size that is not a power of two (MNIST), and the
# smallest power of two: 8 would leave a single stride-2 stage (4x4 -> 8x8).
_MNIST_SIZE = 28
_MIN_POWER_OF_TWO_SIZE = 16
_SUPPORTED_SIZES = f"{_MNIST_SIZE} or a power of two >= {_MIN_POWER_OF_TWO_SIZE} (16, 32, 64, 128, 256, ...)"
_NORMALIZATIONS = ("batch", "layer", "none")
GENERATOR_CONDITIONINGS = ("batch_norm", "embedding")

_WEIGHT_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_NORM_LAYERS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _raw_weight(module: nn.Module) -> Tensor | None:
    # Under a parametrization (e.g. spectral norm) ``module.weight`` is a
    # derived tensor; only the stored original can be re-initialised.
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original  # type: ignore[union-attr]
    return getattr(module, "weight", None)


@torch.no_grad()
def dcgan_init_(module: nn.Module) -> None:
    """Apply the DCGAN weight initialisation in place to ``module`` and all submodules.

    Convolution, transposed convolution and linear weights are drawn from
    ``N(0, 0.02)``; normalization weights (scales) from ``N(1, 0.02)``; all
    biases of these layers are set to zero. Other modules are left untouched.

    Call it before wrapping layers with spectral norm: on an already
    parametrized layer the original weight is re-initialised, but the
    power-iteration vectors only re-converge over later training steps.

    Args:
        module: Module to initialise.

    Raises:
        TypeError: If ``module`` is not an ``nn.Module``.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        >>> dcgan_init_(net)
        >>> int(net[0].bias.count_nonzero()), int(net[1].bias.count_nonzero())
        (0, 0)
        >>> round(float(net[1].weight.detach().mean()), 1)
        1.0
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module, got {module!r} of type {type(module).__name__}"
        )
    for m in module.modules():
        if isinstance(m, _WEIGHT_LAYERS):
            mean = 0.0
        elif isinstance(m, _NORM_LAYERS):
            mean = 1.0
        else:
            continue
        weight = _raw_weight(m)
        if weight is not None:
            nn.init.normal_(weight, mean=mean, std=0.02)
        bias = getattr(m, "bias", None)
        if bias is not None:
            nn.init.zeros_(bias)


def _is_supported_size(size: int) -> bool:
    power_of_two = size & (size - 1) == 0
    return size == _MNIST_SIZE or (size >= _MIN_POWER_OF_TWO_SIZE and power_of_two)


def _check_image_size(image_size: object) -> int:
    if not _is_int(image_size):
        raise TypeError(
            f"image_size must be an int, got {image_size!r} of type {type(image_size).__name__}"
        )
    if not _is_supported_size(image_size):  # type: ignore[arg-type]
        raise ValueError(f"image_size must be {_SUPPORTED_SIZES}, got {image_size!r}")
    return int(image_size)  # type: ignore[arg-type]


def _base_size(image_size: int) -> int:
    """Spatial size of the smallest feature map: 7x7 for 28x28 images, 4x4 for powers of two."""
    return 7 if image_size == _MNIST_SIZE else 4


def _num_stages(image_size: int) -> int:
    # Number of stride-2 (de)convolutions between the base map and the image.
    return int(math.log2(image_size // _base_size(image_size)))


def _hidden_sizes(image_size: int) -> list[int]:
    """Sizes of the hidden feature maps, smallest first: the base map up to half the image."""
    return [_base_size(image_size) * 2**i for i in range(_num_stages(image_size))]


class DCGANGenerator(nn.Module):
    """DCGAN generator: latent vector to image via strided transposed convolutions.

    The first ``ConvTranspose2d`` maps ``z`` to a 4x4 map (7x7 for 28x28
    images); each following ``ConvTranspose2d(kernel=4, stride=2, padding=1)``
    doubles the spatial size and halves the channels, with ``BatchNorm2d`` and
    ``ReLU`` in between. The last layer maps to ``channels`` with ``tanh``, so
    outputs lie in ``[-1, 1]``. Channel widths, from the 4x4 map up:
    ``features * (2**(k-1), ..., 2, 1)`` for ``k = log2(image_size / 4)``
    stages, e.g. ``features * (8, 4, 2, 1)`` for 64x64 (the paper's),
    ``features * (4, 2, 1)`` for 32x32, ``features * (2, 1)`` for 16x16,
    ``features * (16, 8, 4, 2, 1)`` for 128x128; for 28x28,
    ``features * (2, 1)`` from a 7x7 map. Weights are initialised with
    :func:`dcgan_init_`.

    Args:
        latent_dim: Size of the latent vector ``z``.
        image_size: Output height and width: 28, or a power of two >= 16.
        channels: Number of output image channels.
        features: Width multiplier (channels of the last hidden map).
        num_classes: Makes the generator class-conditional, called as
            ``g(z, labels)``. ``None``: unconditional.
        conditioning: How a conditional generator sees the label:
            ``"embedding"`` concatenates a learned label embedding to ``z``;
            ``"batch_norm"`` gives every batch norm a per-class scale and shift
            (:class:`~lightning_gan.nets.ConditionalBatchNorm2d`, as in Miyato &
            Koyama, 2018), which start equal for all classes, so the class
            takes effect more slowly in training.
        embedding_dim: Size of the label embedding of ``"embedding"``
            conditioning (default ``num_classes``).
        attention_resolution: Insert a SAGAN self-attention block
            (:class:`~lightning_gan.nets.SelfAttention2d`) after the
            ``ConvTranspose2d -> BatchNorm2d -> ReLU`` stage whose output map
            has this height and width; one of the hidden map sizes, from the
            base map to half the image size (e.g. 4, 8, 16 for 32x32 images).
            ``None``: no attention, the plain DCGAN.

    Attributes:
        latent_dim: Size of the latent vector.
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` when unconditional.
        attention_resolution: Where the attention block is, or ``None``.

    Raises:
        TypeError: If an argument is not an int.
        ValueError: If a size is not positive, or ``image_size``,
            ``conditioning`` or ``attention_resolution`` is unsupported.

    Example:
        >>> import torch
        >>> g = DCGANGenerator(latent_dim=8, image_size=28, channels=1, features=4)
        >>> tuple(g(torch.randn(2, 8)).shape)
        (2, 1, 28, 28)
        >>> g.image_shape
        (1, 28, 28)
        >>> cg = DCGANGenerator(latent_dim=8, image_size=28, channels=1, features=4, num_classes=10)
        >>> tuple(cg(torch.randn(2, 8), torch.tensor([3, 7])).shape)
        (2, 1, 28, 28)
        >>> ag = DCGANGenerator(latent_dim=8, image_size=128, features=2, attention_resolution=16)
        >>> tuple(ag(torch.randn(2, 8)).shape)
        (2, 3, 128, 128)
    """

    def __init__(
        self,
        latent_dim: int = 100,
        image_size: int = 64,
        channels: int = 3,
        features: int = 64,
        num_classes: Optional[int] = None,
        conditioning: str = "embedding",
        embedding_dim: Optional[int] = None,
        attention_resolution: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        self.image_shape: tuple[int, int, int] = (channels, size, size)
        self.num_classes = check_num_classes(num_classes)
        self.conditioning = _check_choice("conditioning", conditioning, GENERATOR_CONDITIONINGS)
        resolutions = _hidden_sizes(size)  # resolutions[i]: size of the map after stage i
        self.attention_resolution = _check_attention_resolution(attention_resolution, resolutions)
        embed = self.num_classes is not None and self.conditioning == "embedding"
        embedding = _check_embedding_dim(embedding_dim, self.num_classes) if embed else 0
        self.label_embedding = nn.Embedding(self.num_classes, embedding) if embed else None

        def norm(width: int) -> nn.Module:
            if self.num_classes is not None and self.conditioning == "batch_norm":
                return ConditionalBatchNorm2d(width, self.num_classes)
            return nn.BatchNorm2d(width)

        stages = len(resolutions)
        widths = [features * 2 ** (stages - 1 - i) for i in range(stages)]
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            # Convs followed by batch norm get no bias: BN's shift makes it redundant.
            if i == 0:
                conv = nn.ConvTranspose2d(self.latent_dim + embedding, width, resolutions[0], 1, 0, bias=False)
            else:
                conv = nn.ConvTranspose2d(widths[i - 1], width, 4, 2, 1, bias=False)
            layers += [conv, norm(width), nn.ReLU(inplace=True)]
            if resolutions[i] == self.attention_resolution:
                layers.append(SelfAttention2d(width))
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Generate images (of the given classes, when conditional).

        Args:
            z: Latent batch of shape ``(N, latent_dim)`` or ``(N, latent_dim, 1, 1)``.
            labels: Class indices of shape ``(N,)``; required exactly when ``num_classes`` is set.

        Returns:
            Images of shape ``(N, channels, image_size, image_size)`` in ``[-1, 1]``.
        """
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            z = z[:, :, None, None]
        elif not (z.dim() == 4 and tuple(z.shape[1:]) == (self.latent_dim, 1, 1)):
            raise ValueError(
                f"z must have shape (N, {self.latent_dim}) or (N, {self.latent_dim}, 1, 1), "
                f"got {tuple(z.shape)}"
            )
        check_labels(labels, self.num_classes, z.shape[0], "DCGANGenerator")
        if self.num_classes is None:
            return self.net(z)
        if self.label_embedding is not None:
            return self.net(torch.cat([z, self.label_embedding(labels)[:, :, None, None]], dim=1))
        h = z
        for layer in self.net:
            # Only the norms take labels; convs, activations and attention see the map alone.
            h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator (or WGAN critic): image to one logit per sample.

    Mirror of :class:`DCGANGenerator`: ``Conv2d(kernel=4, stride=2, padding=1)``
    blocks with ``LeakyReLU(0.2)`` that halve the spatial size and double the
    channels (``features * (1, 2, ..., 2**(k-1))`` down to the 4x4 map, e.g.
    ``features * (1, 2, 4, 8)`` for 64x64, ``features * (1, 2, 4)`` for
    32x32, ``features * (1, 2)`` for 16x16 and for 28x28, whose last map is
    7x7), no normalization after the first conv, and a final ``Conv2d`` over
    the whole 4x4 (7x7) map to a single logit. Weights are initialised with
    :func:`dcgan_init_`.

    Args:
        image_size: Input height and width: 28, or a power of two >= 16.
        channels: Number of input image channels.
        features: Width multiplier (channels of the first hidden map).
        normalization: ``"batch"`` for ``BatchNorm2d`` (the DCGAN default);
            ``"layer"`` for a per-sample layer norm over ``(C, H, W)``
            (``GroupNorm(1, C)``), as required by a WGAN-GP critic whose
            gradient penalty assumes samples are scored independently;
            ``"none"`` for no normalization.
        spectral_norm: If ``True``, wrap every ``Conv2d`` (and the class
            embedding of a projection discriminator) with
            :func:`torch.nn.utils.parametrizations.spectral_norm`.
        num_classes: Makes the discriminator class-conditional, called as
            ``d(x, labels)``. ``None``: unconditional.
        conditioning: How a conditional discriminator sees the label:
            ``"projection"`` adds ``<embed(y), h>`` to the logit, ``h`` being
            the flattened last feature map that the final conv reads (Miyato &
            Koyama, 2018; with ``minibatch_std_group`` set this map includes
            the statistic channel); ``"concat"`` appends one constant one-hot
            plane per class to the input image.
        attention_resolution: Insert a SAGAN self-attention block
            (:class:`~lightning_gan.nets.SelfAttention2d`) after the
            ``Conv2d -> norm -> LeakyReLU`` stage whose output map has this
            height and width; one of the hidden map sizes, from half the image
            size down to the last 4x4 (7x7) map (e.g. 16, 8, 4 for 32x32
            images). With ``spectral_norm`` its convolutions are spectrally
            normalised too (its scalar ``gamma`` is not). ``None``: no attention.
        minibatch_std_group: Insert a ProGAN minibatch standard deviation layer
            (:class:`~lightning_gan.nets.MinibatchStdDev` with this group size,
            4 in ProGAN) before the final conv, which then reads one channel
            more. The batch size must be a multiple of the group size, or
            smaller than it. This couples the samples of a batch, as batch norm
            does: a per-sample gradient penalty's assumption (WGAN-GP, R1) no
            longer holds exactly. ``None``: no such layer.

    Attributes:
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` when unconditional.
        attention_resolution: Where the attention block is, or ``None``.
        minibatch_std_group: The minibatch standard deviation group size, or ``None``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive, or ``image_size``,
            ``normalization``, ``conditioning``, ``attention_resolution`` or
            ``minibatch_std_group`` is unsupported.

    Example:
        >>> import torch
        >>> d = DCGANDiscriminator(image_size=32, channels=3, features=4, normalization="layer")
        >>> tuple(d(torch.randn(2, 3, 32, 32)).shape)
        (2,)
        >>> cd = DCGANDiscriminator(image_size=28, channels=1, features=4, num_classes=10)
        >>> tuple(cd(torch.randn(2, 1, 28, 28), torch.tensor([3, 7])).shape)
        (2,)
        >>> ad = DCGANDiscriminator(image_size=64, features=2, attention_resolution=8, minibatch_std_group=4)
        >>> tuple(ad(torch.randn(4, 3, 64, 64)).shape)
        (4,)
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        features: int = 64,
        normalization: str = "batch",
        spectral_norm: bool = False,
        num_classes: Optional[int] = None,
        conditioning: str = "projection",
        attention_resolution: Optional[int] = None,
        minibatch_std_group: Optional[int] = None,
    ) -> None:
        super().__init__()
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        if normalization not in _NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}"
            )
        _check_bool("spectral_norm", spectral_norm)
        self.image_shape: tuple[int, int, int] = (channels, size, size)
        self.normalization = normalization
        self.num_classes = check_num_classes(num_classes)
        self.conditioning = _check_choice("conditioning", conditioning, DISCRIMINATOR_CONDITIONINGS)
        concat = self.num_classes is not None and self.conditioning == "concat"
        resolutions = _hidden_sizes(size)[::-1]  # resolutions[i]: size of the map after stage i
        self.attention_resolution = _check_attention_resolution(attention_resolution, resolutions)
        self.minibatch_std_group = _check_minibatch_std_group(minibatch_std_group)

        widths = [features * 2**i for i in range(len(resolutions))]
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            if i == 0:
                layers.append(nn.Conv2d(channels + (self.num_classes if concat else 0), width, 4, 2, 1))
            else:
                # A bias before a normalization with its own shift is redundant.
                layers.append(nn.Conv2d(widths[i - 1], width, 4, 2, 1, bias=normalization == "none"))
                if normalization == "batch":
                    layers.append(nn.BatchNorm2d(width))
                elif normalization == "layer":
                    layers.append(nn.GroupNorm(1, width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if resolutions[i] == self.attention_resolution:
                layers.append(SelfAttention2d(width))
        last_width = widths[-1]
        if self.minibatch_std_group is not None:
            # ProGAN's place: right before the last layers, which read the statistic as one more channel.
            layers.append(MinibatchStdDev(self.minibatch_std_group))
            last_width += 1
        base = resolutions[-1]
        layers.append(nn.Conv2d(last_width, 1, base, 1, 0))
        self.net = nn.Sequential(*layers)
        projection = self.num_classes is not None and self.conditioning == "projection"
        feature_size = last_width * base**2
        self.projection = ProjectionHead(self.num_classes, feature_size) if projection else None
        dcgan_init_(self)
        # After init, so spectral norm's power iteration starts from the final weights.
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Score a batch of images (against their class labels, when conditional).

        Args:
            x: Images of shape ``(N, channels, image_size, image_size)``.
            labels: Class indices of shape ``(N,)``; required exactly when ``num_classes`` is set.

        Returns:
            Logits (critic scores) of shape ``(N,)``.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        check_labels(labels, self.num_classes, x.shape[0], "DCGANDiscriminator")
        if self.num_classes is None:
            return self.net(x).view(x.shape[0])
        if self.projection is None:
            planes = nn.functional.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            return self.net(torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)).view(x.shape[0])
        *feature_layers, final_conv = self.net  # unpacked, not sliced: slicing builds a new Sequential per call
        features = x
        for layer in feature_layers:
            features = layer(features)
        logits = final_conv(features).view(x.shape[0])
        return logits + self.projection(features.flatten(1), labels)
