"""Convolutional generator and discriminator from DCGAN (Radford et al., 2015).

"Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks" (Radford, Metz and Chintala, 2015): strided
(transposed) convolutions instead of pooling, batch norm, ReLU in the
generator with a tanh output, LeakyReLU(0.2) in the discriminator, and
weights drawn from N(0, 0.02).

Supported image sizes are 64 (the paper's architecture), 32 (CIFAR-10 style,
one block fewer) and 28 (MNIST style, starting from a 7x7 map).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .conditioning import ConditionalBatchNorm2d, ProjectionHead, check_labels, check_num_classes
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

# Spatial size of the smallest feature map, for each supported image size.
_BASE_SIZE = {28: 7, 32: 4, 64: 4}
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


def _check_image_size(image_size: object) -> int:
    if not _is_int(image_size):
        raise TypeError(
            f"image_size must be an int, got {image_size!r} of type {type(image_size).__name__}"
        )
    if image_size not in _BASE_SIZE:
        raise ValueError(f"image_size must be one of {tuple(_BASE_SIZE)}, got {image_size!r}")
    return int(image_size)  # type: ignore[arg-type]


def _num_stages(image_size: int) -> int:
    # Number of stride-2 (de)convolutions between the base map and the image.
    return int(math.log2(image_size // _BASE_SIZE[image_size]))


class DCGANGenerator(nn.Module):
    """DCGAN generator: latent vector to image via strided transposed convolutions.

    The first ``ConvTranspose2d`` maps ``z`` to a 4x4 map (7x7 for 28x28
    images); each following ``ConvTranspose2d(kernel=4, stride=2, padding=1)``
    doubles the spatial size and halves the channels, with ``BatchNorm2d`` and
    ``ReLU`` in between. The last layer maps to ``channels`` with ``tanh``, so
    outputs lie in ``[-1, 1]``. Channel widths: for 64x64,
    ``features * (8, 4, 2, 1)``; for 32x32, ``features * (4, 2, 1)``; for
    28x28, ``features * (2, 1)``. Weights are initialised with
    :func:`dcgan_init_`.

    Args:
        latent_dim: Size of the latent vector ``z``.
        image_size: Output height and width; one of 28, 32, 64.
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

    Attributes:
        latent_dim: Size of the latent vector.
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` when unconditional.

    Raises:
        TypeError: If an argument is not an int.
        ValueError: If a size is not positive, or ``image_size`` or ``conditioning`` is unsupported.

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
    ) -> None:
        super().__init__()
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        size = _check_image_size(image_size)
        channels = _check_positive_int("channels", channels)
        features = _check_positive_int("features", features)
        self.image_shape: tuple[int, int, int] = (channels, size, size)
        self.num_classes = check_num_classes(num_classes)
        self.conditioning = _check_choice("conditioning", conditioning, GENERATOR_CONDITIONINGS)
        embed = self.num_classes is not None and self.conditioning == "embedding"
        embedding = _check_embedding_dim(embedding_dim, self.num_classes) if embed else 0
        self.label_embedding = nn.Embedding(self.num_classes, embedding) if embed else None

        def norm(width: int) -> nn.Module:
            if self.num_classes is not None and self.conditioning == "batch_norm":
                return ConditionalBatchNorm2d(width, self.num_classes)
            return nn.BatchNorm2d(width)

        stages = _num_stages(size)
        widths = [features * 2 ** (stages - 1 - i) for i in range(stages)]
        # Convs followed by batch norm get no bias: BN's shift makes it redundant.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.latent_dim + embedding, widths[0], _BASE_SIZE[size], 1, 0, bias=False),
            norm(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                norm(c_out),
                nn.ReLU(inplace=True),
            ]
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
            h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator (or WGAN critic): image to one logit per sample.

    Mirror of :class:`DCGANGenerator`: ``Conv2d(kernel=4, stride=2, padding=1)``
    blocks with ``LeakyReLU(0.2)`` that halve the spatial size and double the
    channels (``features * (1, 2, 4, 8)`` for 64x64, ``features * (1, 2, 4)``
    for 32x32, ``features * (1, 2)`` for 28x28), no normalization after the
    first conv, and a final ``Conv2d`` over the whole 4x4 (7x7 for 28x28) map
    to a single logit. Weights are initialised with :func:`dcgan_init_`.

    Args:
        image_size: Input height and width; one of 28, 32, 64.
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
            Koyama, 2018); ``"concat"`` appends one constant one-hot plane per
            class to the input image.

    Attributes:
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of classes, or ``None`` when unconditional.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a size is not positive, or ``image_size``,
            ``normalization`` or ``conditioning`` is unsupported.

    Example:
        >>> import torch
        >>> d = DCGANDiscriminator(image_size=32, channels=3, features=4, normalization="layer")
        >>> tuple(d(torch.randn(2, 3, 32, 32)).shape)
        (2,)
        >>> cd = DCGANDiscriminator(image_size=28, channels=1, features=4, num_classes=10)
        >>> tuple(cd(torch.randn(2, 1, 28, 28), torch.tensor([3, 7])).shape)
        (2,)
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

        stages = _num_stages(size)
        widths = [features * 2**i for i in range(stages)]
        layers: list[nn.Module] = [
            nn.Conv2d(channels + (self.num_classes if concat else 0), widths[0], 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            # A bias before a normalization with its own shift is redundant.
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=normalization == "none"))
            if normalization == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif normalization == "layer":
                layers.append(nn.GroupNorm(1, c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(widths[-1], 1, _BASE_SIZE[size], 1, 0))
        self.net = nn.Sequential(*layers)
        projection = self.num_classes is not None and self.conditioning == "projection"
        feature_size = widths[-1] * _BASE_SIZE[size] ** 2
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
