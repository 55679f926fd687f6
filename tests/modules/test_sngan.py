"""SNGAN: the paper's settings, spectral norm holding during training, the conditional variant, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import batch_loader, cpu_trainer
from torch.nn.utils import parametrize

from lightning_gan import SNGAN
from lightning_gan.nets import ResNetDiscriminator, ResNetGenerator

SCRIPT = Path(__file__).with_name("ddp_presets_script.py")


def tiny_sngan(**overrides) -> SNGAN:
    options = dict(image_shape=(3, 32, 32), latent_dim=16, generator_features=8, discriminator_features=8)
    options.update(overrides)
    return SNGAN(**options)


def normalised_weight_sigmas(module: torch.nn.Module) -> dict[str, float]:
    """Largest singular value of each spectrally normalised weight, reshaped to (out, -1), in eval mode."""
    was_training = module.training
    module.eval()  # in training mode, reading the weight would run one more power iteration
    sigmas = {
        name: float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
        for name, m in module.named_modules()
        if parametrize.is_parametrized(m, "weight")
    }
    module.train(was_training)
    return sigmas


def test_defaults_are_the_papers_resnet_settings():
    gan = SNGAN()
    assert isinstance(gan.generator, ResNetGenerator) and isinstance(gan.discriminator, ResNetDiscriminator)
    h = gan.hparams
    assert (h.loss, h.n_critic, h.lr_g, h.lr_d, tuple(h.betas), h.latent_dim) == ("hinge", 5, 2e-4, 2e-4, (0.0, 0.9), 128)
    assert h.image_shape == (3, 32, 32) and h.num_classes is None
    optimizers = gan.configure_optimizers()
    assert optimizers[1].defaults["betas"] == (0.0, 0.9)


@pytest.mark.parametrize("num_classes", [None, 4])
def test_spectral_norm_keeps_every_discriminator_weight_at_unit_norm_during_training(num_classes):
    # The acceptance test: after training steps, sigma_max of each normalised weight is within 5% of 1.
    gan = tiny_sngan(num_classes=num_classes)
    images, labels = torch.rand(60, 3, 32, 32) * 2 - 1, torch.arange(60) % 4
    raw = {n: float(torch.linalg.matrix_norm(m.parametrizations.weight.original.detach().flatten(1), ord=2))
           for n, m in gan.discriminator.named_modules() if parametrize.is_parametrized(m, "weight")}
    cpu_trainer(max_steps=6).fit(gan, batch_loader(images, labels, batch_size=20))  # 5 fresh critic micro-batches of 4
    sigmas = normalised_weight_sigmas(gan.discriminator)
    # Every conv and linear, and the projection embedding when conditional.
    expected_layers = 3 + 3 + 2 * 2 + 1 + (1 if num_classes else 0)  # blocks (with 1x1 shortcuts), linear
    assert len(sigmas) == expected_layers
    assert all(abs(s - 1.0) <= 0.05 for s in sigmas.values()), sigmas
    # The raw weights are not unit-norm (so the check above is about the normalisation).
    assert any(abs(s - 1.0) > 0.2 for s in raw.values())


def test_without_spectral_norm_the_same_check_fails():
    d = ResNetDiscriminator(32, 3, 8, spectral_norm=False)
    sigmas = [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
              for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert any(abs(s - 1.0) > 0.05 for s in sigmas)


def test_conditional_sngan_draws_the_requested_classes_and_28px_works():
    gan = tiny_sngan(num_classes=10, image_shape=(1, 28, 28))
    assert gan.generator.num_classes == gan.discriminator.num_classes == 10
    out = gan.generate(4, labels=torch.tensor([0, 3, 9, 9]))
    assert out.shape == (4, 1, 28, 28) and out.abs().max() <= 1


def test_sagan_style_sngan_trains_under_cpu_ddp_and_ranks_hold_identical_weights(tmp_path):
    # SNGAN's ResNets with a SAGAN self-attention block at 16x16 in both networks, 5 generator steps.
    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out), "sngan", "5"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["global_step"] == 5 for r in ranks)
    assert ranks[0]["digests"] == ranks[1]["digests"]
    # Both attention blocks (G's, D's, and the EMA copy of G's) trained away from the identity, equal on both ranks.
    assert len(ranks[0]["gammas"]) == 3 and all(g != 0 for g in ranks[0]["gammas"])
    assert ranks[0]["gammas"] == ranks[1]["gammas"]
    assert len(ranks[0]["sigmas"]) == 11 + 3 and all(s == pytest.approx(1.0, rel=0.05) for s in ranks[0]["sigmas"])
    # Fresh real data per critic step (SNGAN's n_dis loop), under DDP: the 5 critic steps of each generator
    # step see 5 disjoint micro-batches of 2 on each rank, and the two ranks see disjoint shards.
    for step in range(4):
        batches = [batch for rank in ranks for batch in rank["critic_batches"][5 * step:5 * step + 5]]
        assert len(batches) == 10 and all(len(batch) == 2 for batch in batches)
        samples = [value for batch in batches for value in batch]
        assert len(set(samples)) == 20, f"generator step {step}: a real sample was seen by two critic steps"
