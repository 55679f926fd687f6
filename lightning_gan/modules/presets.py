"""Ready-made GANs: a network pair, a loss and optimizer defaults on top of :class:`GAN`, no new logic.

Every argument is a plain typed value, so ``save_hyperparameters()`` captures the whole model (a
checkpoint loads with ``DCGAN.load_from_checkpoint(path)`` alone) and LightningCLI exposes each one as
a flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from lightning_gan.modules.gan import GAN
from lightning_gan.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    ResNetDiscriminator,
    ResNetGenerator,
)

__all__ = ["VanillaGAN", "DCGAN", "WGANGP", "SNGAN"]


# The GAN arguments every preset takes and hands on unchanged. Each preset still lists them in its own signature:
# LightningCLI and `save_hyperparameters` read a class's explicit, typed parameters, not **kwargs.
_TRAINING_OPTIONS = (
    "latent_dim",
    "loss",
    "lr_g",
    "lr_d",
    "betas",
    "n_critic",
    "gp_weight",
    "r1_gamma",
    "ema_decay",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "steps_per_batch",
    "compile",
    "critic_data",
    "n_gen",
    "dragan_weight",
    "weight_clip",
    "lr_decay",
)


def training_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The :class:`GAN` arguments among a preset's ``locals()``, to pass on as ``super().__init__(**...)``."""
    return {name: arguments[name] for name in _TRAINING_OPTIONS}


def _square_image(image_shape: Sequence[int]) -> tuple[int, int]:
    """(channels, size) of a square ``(C, H, W)`` shape, or a ValueError naming the shape."""
    shape = tuple(image_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"`image_shape` must be a square (channels, size, size), got {shape!r}.")
    return shape[0], shape[1]


class VanillaGAN(GAN):
    """The MLP GAN of Goodfellow et al. (2014) with their MNIST sizes.

    Generator: ReLU layers of 1200 and 1200 units; discriminator: maxout layers of 240 units x 5
    pieces with dropout. For 2-D toy data use small layers and no squashing, as in the example.

    Args:
        image_shape: Shape of one data sample, e.g. ``(1, 28, 28)`` or ``(2,)`` for 2-D points.
        latent_dim: Size of the latent vector.
        generator_hidden: Widths of the generator's hidden layers.
        discriminator_hidden: Widths of the discriminator's hidden layers.
        maxout_pieces: Pieces per maxout unit; 1 uses LeakyReLU instead.
        dropout: Dropout probability of the discriminator's input and hidden layers.
        output_activation: ``"tanh"`` (data in [-1, 1]), ``"sigmoid"`` or ``"identity"``.
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`.

    Example:
        >>> gan = VanillaGAN(image_shape=(2,), generator_hidden=(16,), discriminator_hidden=(16,),
        ...                  maxout_pieces=1, dropout=0.0, output_activation="identity")
        >>> gan.generate(5).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 100,
        generator_hidden: Sequence[int] = (1200, 1200),
        discriminator_hidden: Sequence[int] = (240, 240),
        maxout_pieces: int = 5,
        dropout: float | Sequence[float] = (0.2, 0.5),
        output_activation: str = "tanh",
        loss: str = "non_saturating",
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
        super().__init__(
            generator=MLPGenerator(latent_dim, image_shape, generator_hidden, output_activation),
            discriminator=MLPDiscriminator(image_shape, discriminator_hidden, maxout_pieces, dropout),
            **training_options(locals()),
        )


class DCGAN(GAN):
    """The deep convolutional GAN of Radford et al. (2015) for 28x28 images or any power-of-two size from 16x16 up.

    Args:
        image_shape: ``(channels, size, size)`` with size 28 or a power of two >= 16.
        latent_dim: Size of the latent vector.
        features: Base width of both networks (DCGAN's ``ngf`` / ``ndf``).
        attention_resolution: Adds a SAGAN self-attention block (:class:`~lightning_gan.nets.SelfAttention2d`)
            to both networks at this feature-map size; ``None`` for none.
        minibatch_std_group: Adds a minibatch standard deviation layer (:class:`~lightning_gan.nets.MinibatchStdDev`)
            with this group size before the discriminator's last layer; ``None`` for none.
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`; the defaults are DCGAN's (Adam, lr 2e-4, betas (0.5, 0.999)).

    Example:
        >>> gan = DCGAN(image_shape=(1, 28, 28), latent_dim=16, features=8)
        >>> gan.generate(2).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 100,
        features: int = 64,
        attention_resolution: Optional[int] = None,
        minibatch_std_group: Optional[int] = None,
        loss: str = "non_saturating",
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
        channels, size = _square_image(image_shape)
        super().__init__(
            generator=DCGANGenerator(latent_dim, size, channels, features, attention_resolution=attention_resolution),
            discriminator=DCGANDiscriminator(
                size,
                channels,
                features,
                normalization="batch",
                attention_resolution=attention_resolution,
                minibatch_std_group=minibatch_std_group,
            ),
            **training_options(locals()),
        )


class WGANGP(GAN):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) on DCGAN-shaped networks.

    The critic has no batch norm (the penalty is per sample; batch norm would couple samples), using a
    per-sample layer norm instead, as the paper recommends. Defaults are the paper's: ``n_critic=5``,
    ``gp_weight=10``, Adam(lr 1e-4, betas (0, 0.9)).

    Args:
        image_shape: ``(channels, size, size)`` with size 28 or a power of two >= 16.
        latent_dim: Size of the latent vector.
        features: Base width of both networks.
        critic_normalization: ``"layer"`` or ``"none"`` (``"batch"`` is refused: it breaks the penalty).
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`.

    Example:
        >>> gan = WGANGP(image_shape=(1, 28, 28), latent_dim=16, features=8)
        >>> gan.hparams.n_critic, gan.hparams.gp_weight
        (5, 10.0)
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 128,
        features: int = 64,
        critic_normalization: str = "layer",
        loss: str = "wasserstein",
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        n_critic: int = 5,
        gp_weight: float = 10.0,
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
        if critic_normalization not in ("layer", "none"):
            raise ValueError(
                f"`critic_normalization` must be 'layer' or 'none' (batch norm couples the samples the gradient "
                f"penalty treats separately), got {critic_normalization!r}."
            )
        channels, size = _square_image(image_shape)
        super().__init__(
            generator=DCGANGenerator(latent_dim, size, channels, features),
            discriminator=DCGANDiscriminator(size, channels, features, normalization=critic_normalization),
            **training_options(locals()),
        )


class SNGAN(GAN):
    """SN-GAN (Miyato et al. 2018): the CIFAR-10 ResNets, a spectrally normalised discriminator, hinge loss.

    The defaults are the paper's for its ResNet on 32x32 images: Adam with ``lr = 2e-4`` and
    ``betas = (0, 0.9)``, five discriminator steps per generator step, ``latent_dim = 128``, generator
    width 256 and discriminator width 128 (:class:`~lightning_gan.nets.ResNetGenerator` and
    :class:`~lightning_gan.nets.ResNetDiscriminator`). Spectral normalisation keeps the largest singular
    value of every discriminator weight at 1, which bounds its Lipschitz constant without a gradient
    penalty. 28x28 and 64x64 images work too (one stage fewer or more), and 48x48 and 128x128 get the
    paper's STL-10 and ImageNet ResNets (see :class:`~lightning_gan.nets.ResNetGenerator` for their widths).

    With ``num_classes`` set it is the projection-discriminator cGAN of Miyato & Koyama (2018): class-
    conditional batch norm in the generator, a projection head in the discriminator.

    Args:
        image_shape: ``(channels, size, size)`` with size 28, 32, 48, 64 or 128.
        latent_dim: Size of the latent vector.
        generator_features: Channels of the generator's residual blocks.
        discriminator_features: Channels of the discriminator's residual blocks.
        num_classes: Number of classes for the conditional model; ``None`` for an unconditional one.
        attention_resolution: Adds a SAGAN self-attention block (:class:`~lightning_gan.nets.SelfAttention2d`,
            Zhang et al. 2019) to both networks at this feature-map size; ``None`` for none. SAGAN's own
            recipe also sets ``n_critic=1``, ``lr_g=1e-4``, ``lr_d=4e-4``.
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`.

    Example:
        >>> gan = SNGAN(image_shape=(3, 32, 32), generator_features=8, discriminator_features=8)
        >>> gan.hparams.loss, gan.hparams.n_critic, gan.hparams.betas
        ('hinge', 5, (0.0, 0.9))
        >>> gan.generate(2).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (3, 32, 32),
        latent_dim: int = 128,
        generator_features: int = 256,
        discriminator_features: int = 128,
        num_classes: Optional[int] = None,
        attention_resolution: Optional[int] = None,
        loss: str = "hinge",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        n_critic: int = 5,
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
        channels, size = _square_image(image_shape)
        super().__init__(
            generator=ResNetGenerator(
                latent_dim,
                size,
                channels,
                generator_features,
                num_classes=num_classes,
                attention_resolution=attention_resolution,
            ),
            discriminator=ResNetDiscriminator(
                size,
                channels,
                discriminator_features,
                spectral_norm=True,
                num_classes=num_classes,
                attention_resolution=attention_resolution,
            ),
            **training_options(locals()),
            num_classes=num_classes,
        )
