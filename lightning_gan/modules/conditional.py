"""A ready class-conditional GAN: conditional MLP or DCGAN nets on top of :class:`GAN` with ``num_classes``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from lightning_gan.modules.gan import GAN
from lightning_gan.modules.presets import _square_image, training_options
from lightning_gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

__all__ = ["ConditionalGAN"]

_ARCHITECTURES = ("dcgan", "mlp")


class ConditionalGAN(GAN):
    """A class-conditional GAN: ``G(z, y)`` learns ``p(x | y)`` for each class ``y`` of the data.

    Batches must be ``(samples, labels)`` (every data module of the package yields them; on
    :class:`~lightning_gan.data.ToyDataModule` the mixture components are the classes).
    ``generate(n)`` draws the labels uniformly; ``generate(n, labels=y)`` draws the classes asked for.
    Sample grids log one row per class.

    The discriminator sees the label through a projection head (Miyato & Koyama 2018, the default) or
    by concatenation (Mirza & Osindero 2014); the generator through a label embedding concatenated to
    ``z`` (the default) or, for DCGAN nets, conditional batch norm. The embedding is the default because
    it conditions from the first step: a conditional batch norm starts as plain batch norm for every
    class and learns the class differences slowly (measured on MNIST in the "Conditional GANs" guide,
    by ``benchmarks/conditioning.py``). Spectral normalisation of the discriminator and the hinge loss
    are on by default, as in the projection paper; for the paper's ResNets use
    :class:`~lightning_gan.SNGAN` with ``num_classes``.

    Args:
        num_classes: Number of classes (labels lie in ``[0, num_classes)``).
        image_shape: Shape of one sample: ``(channels, size, size)`` with size 28 or a power of two >= 16 for
            ``"dcgan"``; any shape, e.g. ``(2,)`` for 2-D points, for ``"mlp"``.
        latent_dim: Size of the latent vector.
        architecture: ``"dcgan"`` (convolutional, :class:`~lightning_gan.nets.DCGANGenerator` /
            :class:`~lightning_gan.nets.DCGANDiscriminator`) or ``"mlp"``
            (:class:`~lightning_gan.nets.MLPGenerator` / :class:`~lightning_gan.nets.MLPDiscriminator`
            with LeakyReLU units and no dropout).
        generator_conditioning: ``"embedding"`` or ``"batch_norm"`` (DCGAN nets only).
        discriminator_conditioning: ``"projection"`` or ``"concat"``.
        spectral_norm: Spectrally normalise every discriminator layer.
        features: Base width of the DCGAN nets.
        discriminator_normalization: The DCGAN discriminator's ``normalization`` (``"none"``,
            ``"batch"`` or ``"layer"``); spectral norm needs none.
        generator_hidden: Hidden widths of the MLP generator.
        discriminator_hidden: Hidden widths of the MLP discriminator.
        output_activation: The MLP generator's output: ``"tanh"``, ``"sigmoid"`` or ``"identity"``.
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`.

    Raises:
        ValueError: For an unknown architecture or conditioning, ``"batch_norm"`` conditioning of MLP
            nets, or anything :class:`~lightning_gan.GAN` refuses.

    Example:
        >>> import torch
        >>> gan = ConditionalGAN(num_classes=8, image_shape=(2,), latent_dim=4, architecture="mlp",
        ...                      generator_hidden=(16,), discriminator_hidden=(16,), output_activation="identity")
        >>> gan.generate(3, labels=torch.tensor([0, 5, 7])).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 100,
        architecture: str = "dcgan",
        generator_conditioning: str = "embedding",
        discriminator_conditioning: str = "projection",
        spectral_norm: bool = True,
        features: int = 64,
        discriminator_normalization: str = "none",
        generator_hidden: Sequence[int] = (256, 256),
        discriminator_hidden: Sequence[int] = (256, 256),
        output_activation: str = "tanh",
        loss: str = "hinge",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        gp_weight: float = 0.0,
        r1_gamma: float = 0.0,
        ema_decay: Optional[float] = None,
        gradient_clip_val: Optional[float] = None,
        gradient_clip_algorithm: str = "norm",
        steps_per_batch: int = 1,
        compile: Union[bool, dict[str, Any]] = False,
        critic_data: str = "fresh",
        n_gen: int = 1,
        dragan_weight: float = 0.0,
        weight_clip: Optional[float] = None,
        lr_decay: str = "none",
    ) -> None:
        if architecture not in _ARCHITECTURES:
            raise ValueError(f"`architecture` must be one of {_ARCHITECTURES}, got {architecture!r}.")
        if architecture == "mlp" and generator_conditioning != "embedding":
            raise ValueError(
                f"`generator_conditioning`={generator_conditioning!r} needs batch norm layers, which the MLP generator "
                "has none of; use 'embedding' (or architecture='dcgan')."
            )
        if architecture == "dcgan":
            channels, size = _square_image(image_shape)
            generator = DCGANGenerator(
                latent_dim, size, channels, features, num_classes=num_classes, conditioning=generator_conditioning
            )
            discriminator = DCGANDiscriminator(
                size,
                channels,
                features,
                normalization=discriminator_normalization,
                spectral_norm=spectral_norm,
                num_classes=num_classes,
                conditioning=discriminator_conditioning,
            )
        else:
            generator = MLPGenerator(
                latent_dim, image_shape, generator_hidden, output_activation, num_classes=num_classes
            )
            discriminator = MLPDiscriminator(
                image_shape,
                discriminator_hidden,
                maxout_pieces=1,
                dropout=0.0,
                spectral_norm=spectral_norm,
                num_classes=num_classes,
                conditioning=discriminator_conditioning,
            )
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            **training_options(locals()),
            num_classes=num_classes,
        )
