"""ACGAN: per-class samples on the toy ring, the auxiliary classifier's logged accuracy, and its refusals."""

from __future__ import annotations

import pytest
import torch
from conftest import cpu_trainer, fraction_near_own_component

from lightning_gan import ACGAN
from lightning_gan.data import ToyDataModule


def toy_acgan(**overrides) -> ACGAN:
    options = dict(num_classes=8, image_shape=(2,), latent_dim=2, architecture="mlp", generator_hidden=(64, 64),
                   discriminator_hidden=(64, 64), output_activation="identity", lr_g=1e-3, lr_d=1e-3, ema_decay=0.99)
    options.update(overrides)
    return ACGAN(**options)


def test_acgan_samples_of_class_k_land_on_component_k_and_its_classifier_accuracy_is_logged():
    # The acceptance test: ring of 8 Gaussians (std 0.05), classes = components; CPU, fixed seed.
    data = ToyDataModule("ring8", n_samples=20_000, n_val=1000, n_test=0, batch_size=256, seed=0)
    gan = toy_acgan()
    assert max(fraction_near_own_component(gan.eval(), data, per_class=200)) < 0.5  # untrained: the check can fail
    trainer = cpu_trainer(max_steps=600, num_sanity_val_steps=0)  # min fraction 0.97 at 600 steps (measured)
    trainer.fit(gan.train(), datamodule=data)
    gan.eval()
    fractions = fraction_near_own_component(gan, data)
    assert min(fractions) >= 0.90, fractions
    # The auxiliary classifier's accuracy on held-out real data, as logged at the last validation.
    assert float(trainer.callback_metrics["val/class_accuracy"]) >= 0.9
    assert {"d_class_real", "d_class_fake", "g_class"} <= set(gan.last_step_metrics)


def test_acgan_builds_dcgan_nets_and_refuses_bad_arguments():
    gan = toy_acgan(image_shape=(1, 16, 16), architecture="dcgan", features=4)
    assert gan.generate(2, labels=torch.tensor([1, 2])).shape == (2, 1, 16, 16)
    logits, heads = gan.discriminator(torch.randn(2, 1, 16, 16))
    assert logits.shape == (2,) and heads["class"].shape == (2, 8)
    with pytest.raises(ValueError, match="`class_weight` must be a finite positive number"):
        toy_acgan(class_weight=0)
    with pytest.raises(ValueError, match="`architecture` must be one of"):
        toy_acgan(architecture="resnet")
