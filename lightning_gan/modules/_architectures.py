"""The ``architecture="dcgan" | "mlp"`` networks of the presets built on auxiliary heads (AC-GAN, InfoGAN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torch import nn

from lightning_gan.modules.presets import _square_image
from lightning_gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

ARCHITECTURES = ("dcgan", "mlp")


def check_architecture(architecture: str) -> str:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"`architecture` must be one of {ARCHITECTURES}, got {architecture!r}.")
    return architecture


def generator_for(
    architecture: str,
    latent_dim: int,
    image_shape: Sequence[int],
    features: int,
    hidden: Sequence[int],
    output_activation: str,
    num_classes: Optional[int] = None,
) -> nn.Module:
    """A DCGAN generator (label embedding when conditional) or an MLP generator."""
    if check_architecture(architecture) == "dcgan":
        channels, size = _square_image(image_shape)
        return DCGANGenerator(latent_dim, size, channels, features, num_classes=num_classes)
    return MLPGenerator(latent_dim, image_shape, hidden, output_activation, num_classes=num_classes)


def discriminator_body_for(
    architecture: str, image_shape: Sequence[int], features: int, hidden: Sequence[int], normalization: str
) -> nn.Module:
    """An unconditional DCGAN discriminator or a LeakyReLU MLP discriminator without dropout, to put heads on."""
    if check_architecture(architecture) == "dcgan":
        channels, size = _square_image(image_shape)
        return DCGANDiscriminator(size, channels, features, normalization=normalization)
    return MLPDiscriminator(image_shape, hidden, maxout_pieces=1, dropout=0.0)
