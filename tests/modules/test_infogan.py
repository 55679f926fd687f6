"""InfoGAN: the categorical code's mutual-information bound on the toy ring, latents with codes, refusals."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import cpu_trainer

from lightning_gan import InfoGAN
from lightning_gan.data import ToyDataModule
from lightning_gan.losses import categorical_mutual_information_bound


def toy_infogan(**overrides) -> InfoGAN:
    options = dict(image_shape=(2,), noise_dim=2, categorical_codes=(8,), continuous_codes=0, architecture="mlp",
                   generator_hidden=(64, 64), discriminator_hidden=(64, 64), output_activation="identity",
                   lr_g=1e-3, lr_d=1e-3, q_hidden=0)
    options.update(overrides)
    return InfoGAN(**options)


@torch.no_grad()
def measured_bound(gan: InfoGAN, n: int = 4000) -> float:
    codes = torch.arange(n) % 8
    _, heads = gan.discriminator(gan.generator(gan.latent_with_codes(n, categories=[codes])))
    return float(categorical_mutual_information_bound(heads["cat0"], codes))


def test_the_categorical_codes_mutual_information_bound_rises_above_90_percent_of_log_8():
    data = ToyDataModule("ring8", n_samples=20_000, n_val=0, n_test=0, batch_size=256, seed=0)
    gan = toy_infogan()
    assert measured_bound(gan.eval()) < 0.5 * math.log(8)  # untrained: the check can fail
    cpu_trainer(max_steps=300).fit(gan.train(), datamodule=data)  # 0.9 log 8 = 1.87 passed by step ~150 (measured)
    assert float(gan.last_step_metrics["mi_cat0"]) > 0.9 * math.log(8)  # as logged (train/mi_cat0)
    assert measured_bound(gan.eval()) > 0.9 * math.log(8)  # and on 4,000 fresh samples


def test_latents_hold_noise_one_hot_codes_and_uniform_continuous_codes():
    gan = toy_infogan(categorical_codes=(3, 4), continuous_codes=2)
    z = gan.sample_latent(1000)
    assert z.shape == (1000, 2 + 3 + 4 + 2)
    assert torch.equal(z[:, 2:5].sum(1), torch.ones(1000)) and torch.equal(z[:, 5:9].sum(1), torch.ones(1000))
    assert z[:, 9:].min() >= -1 and z[:, 9:].max() <= 1 and z[:, 9:].std() > 0.5
    chosen = gan.latent_with_codes(3, categories=[[0, 1, 2], [3, 3, 0]], continuous=torch.zeros(3, 2))
    assert chosen[:, 2:5].argmax(1).tolist() == [0, 1, 2] and chosen[:, 5:9].argmax(1).tolist() == [3, 3, 0]
    assert torch.equal(chosen[:, 9:], torch.zeros(3, 2))
    _, heads = gan.discriminator(torch.randn(5, 2))
    assert heads["cat0"].shape == (5, 3) and heads["cat1"].shape == (5, 4) and heads["cont"].shape == (5, 2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(categorical_codes=(1,)), "`categorical_codes` must be a sequence of category counts >= 2"),
        (dict(categorical_codes=(), continuous_codes=0), "at least one code"),
        (dict(continuous_codes=-1), "`continuous_codes` must be an integer >= 0"),
        (dict(info_weight=0.0), "`info_weight` must be a finite positive number"),
        (dict(noise_dim=0), "`noise_dim` must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        toy_infogan(**overrides)
