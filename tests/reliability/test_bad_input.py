"""Bad input not covered elsewhere: checkpoints of another architecture, non-finite samples in LogProbOfSamples.

Covered elsewhere (docs/reliability.md lists them): a generator whose output shape differs from the
data (tests/modules/test_gan.py), truncated or corrupt IDX and image files (tests/data/), FID with fewer
than 2 samples, an extractor of the wrong rank and non-finite images or features (tests/metrics/,
tests/callbacks/), and sample counts that do not divide across ranks (the DDP tests of the metrics).
"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import batch_loader, cpu_trainer
from torch import nn

from lightning_gan import GAN, VanillaGAN
from lightning_gan.data.toy import GaussianMixture2D
from lightning_gan.metrics.toy import LogProbOfSamples


def toy_gan(hidden: tuple[int, ...] = (16,)) -> VanillaGAN:
    return VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=hidden, discriminator_hidden=(16,),
                      maxout_pieces=1, dropout=0.0, output_activation="identity")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "toy.ckpt"
    trainer = cpu_trainer(max_steps=1)
    trainer.fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32))
    trainer.save_checkpoint(path)
    return path


def test_loading_with_other_layer_sizes_names_each_key_and_both_shapes(checkpoint):
    with pytest.raises(RuntimeError) as error:
        VanillaGAN.load_from_checkpoint(checkpoint, generator_hidden=(32,))
    message = str(error.value)
    for key, saved, current in (
        ("generator.net.0.weight", "[16, 2]", "[32, 2]"),
        ("generator.net.0.bias", "[16]", "[32]"),
        ("generator.net.2.weight", "[2, 16]", "[2, 32]"),
    ):
        assert re.search(rf"size mismatch for {re.escape(key)}: copying a param with shape torch\.Size\("
                         rf"{re.escape(saved)}\) from checkpoint, the shape in current model is torch\.Size\("
                         rf"{re.escape(current)}\)", message), message


def test_loading_into_other_networks_lists_the_missing_and_unexpected_keys(checkpoint):
    # GAN's own checkpoints hold no networks in their hyperparameters: the caller passes them again.
    with pytest.raises(RuntimeError) as error:
        GAN.load_from_checkpoint(checkpoint, generator=nn.Linear(2, 2), discriminator=nn.Linear(2, 1))
    message = str(error.value)
    assert re.search(r'Missing key\(s\) in state_dict: "generator\.weight", "generator\.bias", '
                     r'"discriminator\.weight", "discriminator\.bias"', message), message
    assert re.search(r'Unexpected key\(s\) in state_dict: "generator\.net\.0\.weight"', message), message


def test_resuming_fit_into_another_architecture_names_the_keys_before_any_step(checkpoint):
    model = toy_gan(hidden=(16, 16))
    trainer = cpu_trainer(max_steps=3)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "generator\.net\.4\.weight"') as error:
        trainer.fit(model, batch_loader(torch.randn(64, 2), batch_size=32), ckpt_path=str(checkpoint))
    assert "size mismatch for generator.net.2.weight" in str(error.value)
    assert trainer.global_step == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_log_prob_of_samples_refuses_non_finite_samples_naming_them(bad):
    metric = LogProbOfSamples(GaussianMixture2D([[0.0, 0.0]], stds=1.0).log_prob)
    samples = torch.zeros(4, 2)
    samples[2, 1] = bad
    with pytest.raises(ValueError, match=r"1 of the `samples`.*NaN or infinite"):
        metric.update(samples)
        metric.compute()
