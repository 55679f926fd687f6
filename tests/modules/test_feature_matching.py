"""FeatureMatchingGAN: the generator matches the discriminator's mean features, and needs them."""

from __future__ import annotations

import pytest
import torch
from conftest import batch_loader, cpu_trainer

from lightning_gan import FeatureMatchingGAN
from lightning_gan.nets import AuxiliaryHeads, MLPDiscriminator, MLPGenerator


def test_feature_matching_moves_the_generated_mean_to_the_data_mean():
    torch.manual_seed(0)
    data = torch.randn(2048, 2) * 0.5 + torch.tensor([3.0, -2.0])
    discriminator = AuxiliaryHeads(MLPDiscriminator((2,), (32,), maxout_pieces=1, dropout=0.0), {"features": 0})
    gan = FeatureMatchingGAN(MLPGenerator(2, (2,), (32,), "identity"), discriminator, latent_dim=2, lr_g=1e-2, lr_d=1e-3)
    assert (gan.generate(1000).mean(0) - data.mean(0)).norm() > 2
    cpu_trainer(max_steps=300).fit(gan, batch_loader(data, batch_size=128))
    assert (gan.generate(4000).mean(0) - data.mean(0)).norm() < 0.3
    metrics = gan.last_step_metrics
    assert float(metrics["loss_g"]) == 0.0 and "feature_matching" in metrics  # the loss the generator trained on


def test_feature_matching_needs_a_discriminator_that_returns_its_features():
    gan = FeatureMatchingGAN(MLPGenerator(2, (2,), (8,), "identity"), MLPDiscriminator((2,), (8,), 1, 0.0), latent_dim=2)
    with pytest.raises(TypeError, match=r'AuxiliaryHeads\(discriminator, \{"features": 0\}\)'):
        cpu_trainer(max_steps=1).fit(gan, batch_loader(torch.randn(32, 2), batch_size=16))
