"""AC-GAN: a class-conditional generator against a discriminator that also classifies (Odena et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from torch import Tensor
from typing_extensions import override

from lightning_gan.losses import auxiliary_classifier_loss
from lightning_gan.modules._architectures import check_architecture, discriminator_body_for, generator_for
from lightning_gan.modules.gan import GAN
from lightning_gan.modules.presets import training_options
from lightning_gan.nets.heads import AuxiliaryHeads

__all__ = ["ACGAN"]


class ACGAN(GAN):
    r"""Auxiliary-classifier GAN (Odena et al. 2017): ``G(z, c)`` against a discriminator with a class head.

    The discriminator does not read the label: it predicts it, with a classifier head on its body
    (:class:`~lightning_gan.nets.AuxiliaryHeads`). With the source loss :math:`L_S` (the adversarial loss)
    and the class log-likelihood :math:`L_C = \mathbb{E}[\log P(C = c \mid X_{real})] + \mathbb{E}[\log
    P(C = c \mid X_{fake})]`, the discriminator maximises :math:`L_S + L_C` and the generator
    :math:`L_C - L_S`: here the discriminator adds ``class_weight`` times the cross-entropy on real and on
    generated samples (logged as ``train/d_class_real`` and ``train/d_class_fake``), and the generator
    ``class_weight`` times the cross-entropy on its samples (``train/g_class``). The classifier's accuracy
    on held-out real data is logged as ``val/class_accuracy`` (``test/class_accuracy`` in ``test``).

    The whole model is two hook overrides of :class:`~lightning_gan.GAN`
    (:meth:`discriminator_auxiliary_losses`, :meth:`generator_auxiliary_losses`) and a net wrapper.
    Defaults are the paper's: Adam with lr 2e-4 and betas (0.5, 0.999), a latent of 100 plus the class
    (here a learned label embedding rather than the paper's one-hot, which a linear first layer makes
    equivalent), batch norm in the discriminator.

    Args:
        num_classes: Number of classes (labels lie in ``[0, num_classes)``).
        image_shape: ``(channels, size, size)`` (28 or a power of two >= 16) for ``"dcgan"``; any shape,
            e.g. ``(2,)``, for ``"mlp"``.
        latent_dim: Size of the noise vector.
        architecture: ``"dcgan"`` or ``"mlp"`` (LeakyReLU MLPs without dropout).
        features: Base width of the DCGAN nets.
        discriminator_normalization: The DCGAN discriminator's ``normalization``.
        generator_hidden: Hidden widths of the MLP generator.
        discriminator_hidden: Hidden widths of the MLP discriminator.
        output_activation: The MLP generator's output: ``"tanh"``, ``"sigmoid"`` or ``"identity"``.
        class_weight: Weight of the class losses (1 in the paper).
        loss, lr_g, lr_d, betas, n_critic, gp_weight, r1_gamma, ema_decay, gradient_clip_val, gradient_clip_algorithm, steps_per_batch, compile, critic_data, n_gen, dragan_weight, weight_clip, lr_decay: As in
            :class:`~lightning_gan.GAN`.

    Example:
        >>> import torch
        >>> gan = ACGAN(num_classes=8, image_shape=(2,), latent_dim=4, architecture="mlp",
        ...             generator_hidden=(16,), discriminator_hidden=(16,), output_activation="identity")
        >>> gan.generate(3, labels=torch.tensor([0, 5, 7])).shape
        torch.Size([3, 2])
        >>> logits, heads = gan.discriminator(torch.randn(3, 2))
        >>> tuple(heads["class"].shape)
        (3, 8)
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 100,
        architecture: str = "dcgan",
        features: int = 64,
        discriminator_normalization: str = "batch",
        generator_hidden: Sequence[int] = (256, 256),
        discriminator_hidden: Sequence[int] = (256, 256),
        output_activation: str = "tanh",
        class_weight: float = 1.0,
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
        check_architecture(architecture)
        if isinstance(class_weight, bool) or not isinstance(class_weight, (int, float)) or not 0 < class_weight < float("inf"):
            raise ValueError(f"`class_weight` must be a finite positive number, got {class_weight!r}.")
        body = discriminator_body_for(architecture, image_shape, features, discriminator_hidden, discriminator_normalization)
        super().__init__(
            generator=generator_for(
                architecture, latent_dim, image_shape, features, generator_hidden, output_activation, num_classes
            ),
            discriminator=AuxiliaryHeads(body, {"class": num_classes}),
            **training_options(locals()),
            num_classes=num_classes,
        )

    @override
    def discriminator_auxiliary_losses(
        self,
        real_heads: Optional[dict[str, Tensor]],
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """The class loss on real samples and on generated ones (generated for the real ones' classes)."""
        weight = self.hparams.class_weight
        return {
            "d_class_real": weight * auxiliary_classifier_loss(real_heads["class"], labels),
            "d_class_fake": weight * auxiliary_classifier_loss(fake_heads["class"], labels),
        }

    @override
    def generator_auxiliary_losses(
        self,
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
        real: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """The class loss on the generated samples: the generator makes its samples recognisable as their class."""
        return {"g_class": self.hparams.class_weight * auxiliary_classifier_loss(fake_heads["class"], labels)}

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Logs ``val/d_real`` and ``val/class_accuracy``, the auxiliary classifier's accuracy on held-out real data."""
        super().validation_step(batch, batch_idx)
        self._log_class_accuracy("val", batch)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Logs ``test/d_real`` and ``test/class_accuracy``."""
        super().test_step(batch, batch_idx)
        self._log_class_accuracy("test", batch)

    def _log_class_accuracy(self, stage: str, batch: Any) -> None:
        real = self.real_from_batch(batch)
        labels = self.labels_from_batch(batch)
        _, heads = self.discriminator(real)
        accuracy = (heads["class"].argmax(dim=1) == labels).float().mean()
        self.log(f"{stage}/class_accuracy", accuracy, batch_size=real.shape[0], sync_dist=True)
