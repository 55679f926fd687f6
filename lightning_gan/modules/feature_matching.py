"""Feature matching: the generator matches the discriminator's mean features on real data (Salimans et al. 2016)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from typing_extensions import override

from lightning_gan.losses import feature_matching_loss
from lightning_gan.modules.gan import GAN

__all__ = ["FeatureMatchingGAN"]


class FeatureMatchingGAN(GAN):
    r"""A :class:`~lightning_gan.GAN` whose generator loss is feature matching (Salimans et al. 2016, section 3.1).

    Instead of maximising the discriminator's output, the generator matches the mean of the
    discriminator's last hidden features on real data:
    :math:`L_G = \lVert \mathbb{E}_x f(x) - \mathbb{E}_z f(G(z)) \rVert^2`
    (:func:`~lightning_gan.losses.feature_matching_loss`, averaged over the features as in the authors'
    code), logged as ``train/feature_matching``; ``train/loss_g`` is then 0. The real features are those of
    the real micro-batch of the step's last discriminator step, computed without gradients. The
    discriminator trains with the adversarial loss as usual.

    The discriminator must return its features: wrap it as
    ``AuxiliaryHeads(discriminator, {"features": 0})`` (:class:`~lightning_gan.nets.AuxiliaryHeads`).
    Every other argument is :class:`~lightning_gan.GAN`'s.

    Example:
        >>> from lightning_gan.nets import AuxiliaryHeads, MLPDiscriminator, MLPGenerator
        >>> d = AuxiliaryHeads(MLPDiscriminator((2,), (16,), maxout_pieces=1, dropout=0.0), {"features": 0})
        >>> gan = FeatureMatchingGAN(MLPGenerator(4, (2,), (16,), "identity"), d, latent_dim=4)
        >>> gan.generate(3).shape
        torch.Size([3, 2])
    """

    @override
    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        """Zero: feature matching (:meth:`generator_auxiliary_losses`) replaces the adversarial generator loss."""
        return fake_logits.new_zeros(())

    @override
    def generator_auxiliary_losses(
        self,
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
        real: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """The feature-matching loss between the real micro-batch's and the generated samples' features."""
        if fake_heads is None or "features" not in fake_heads:
            raise TypeError(
                "FeatureMatchingGAN needs a discriminator that returns its features: wrap it as "
                'lightning_gan.nets.AuxiliaryHeads(discriminator, {"features": 0}).'
            )
        if real is None:
            raise ValueError("FeatureMatchingGAN's generator step needs the step's real samples; call it from training_step.")
        with torch.no_grad():
            real_features = self._discriminate(real, labels)[1]["features"]
        return {"feature_matching": feature_matching_loss(real_features, fake_heads["features"])}
