"""ConditionalGAN and GAN(num_classes=...): per-class samples, labels in and out, errors, checkpoints, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import batch_loader, cpu_trainer, fraction_near_own_component

from lightning_gan import GAN, ConditionalGAN
from lightning_gan.data import ToyDataModule
from lightning_gan.nets import MLPDiscriminator, MLPGenerator

SCRIPT = Path(__file__).with_name("ddp_presets_script.py")


def toy_gan(**overrides) -> ConditionalGAN:
    options = dict(num_classes=8, image_shape=(2,), latent_dim=2, architecture="mlp", generator_hidden=(64, 64),
                   discriminator_hidden=(64, 64), output_activation="identity", lr_g=1e-3, lr_d=1e-3, ema_decay=0.99)
    options.update(overrides)
    return ConditionalGAN(**options)


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_samples_drawn_for_class_k_land_on_mixture_component_k(conditioning):
    # The acceptance test: ring of 8 Gaussians (std 0.05), each component a class; CPU, fixed seed.
    data = ToyDataModule("ring8", n_samples=20_000, n_val=0, n_test=0, batch_size=256, seed=0)
    gan = toy_gan(discriminator_conditioning=conditioning)
    cpu_trainer(max_steps=1500).fit(gan, datamodule=data)  # passes from ~1000 steps (min fraction 0.97 at 1200)
    gan.eval()
    fractions = fraction_near_own_component(gan, data)
    assert min(fractions) >= 0.90, fractions
    # The MLP discriminator's spectral norm (on by default) holds too: every normalised weight at sigma ~ 1.
    normalised = [m.weight.detach().flatten(1) for m in gan.discriminator.modules() if hasattr(m, "parametrizations")]
    assert len(normalised) == 3 + (conditioning == "projection")  # 3 linears (+ the class embedding)
    assert all(abs(float(torch.linalg.matrix_norm(w, ord=2)) - 1) <= 0.05 for w in normalised)
    # And generate() without labels covers every class (uniform labels).
    nearest = torch.cdist(gan.generate(4000), data.distribution.means.float()).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=8)
    assert counts.min() > 4000 / 8 * 0.7, counts


def test_an_untrained_model_does_not_pass_the_per_class_check():
    # The check above can fail: before training, samples do not sit on their component.
    data = ToyDataModule("ring8", n_samples=512, n_val=0, n_test=0, batch_size=256, seed=0)
    assert max(fraction_near_own_component(toy_gan().eval(), data, per_class=200)) < 0.5


def test_generate_draws_labels_uniformly_or_takes_them_and_checks_them():
    gan = toy_gan()
    assert gan.num_classes == 8
    labels = gan.sample_labels(8000)
    assert labels.min() == 0 and labels.max() == 7 and torch.bincount(labels).min() > 850
    z = torch.randn(3, 2)
    assert torch.equal(gan.generate(3, z=z, labels=torch.tensor([1, 1, 1])), gan.generate(3, z=z, labels=[1, 1, 1]))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        gan.generate(2, labels=torch.tensor([0, 8]))
    with pytest.raises(ValueError, match="2 integer class indices"):
        gan.generate(2, labels=torch.tensor([0.0, 1.0]))
    unconditional = GAN(MLPGenerator(2, (2,), (4,)), MLPDiscriminator((2,), (4,), 1, 0.0), latent_dim=2)
    assert unconditional.num_classes is None
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.generate(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.sample_labels(2)


def test_bad_arguments_are_refused_before_training():
    with pytest.raises(ValueError, match="architecture"):
        ConditionalGAN(architecture="resnet")
    with pytest.raises(ValueError, match="batch norm"):
        toy_gan(generator_conditioning="batch_norm")
    with pytest.raises(ValueError, match="num_classes"):
        toy_gan(num_classes=1)
    with pytest.raises(ValueError, match="num_classes=3"):
        GAN(MLPGenerator(2, (2,), (4,), num_classes=3), MLPDiscriminator((2,), (4,), num_classes=4), latent_dim=2,
            num_classes=4)
    with pytest.raises(ValueError, match="num_classes=None"):
        GAN(MLPGenerator(2, (2,), (4,)), MLPDiscriminator((2,), (4,), num_classes=4), latent_dim=2, num_classes=4)


def test_batches_without_labels_or_with_out_of_range_labels_fail_with_a_message():
    gan = toy_gan(num_classes=4)
    with pytest.raises(TypeError, match="no labels"):
        cpu_trainer(max_steps=1).fit(gan, batch_loader(torch.randn(16, 2), batch_size=8))
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        cpu_trainer(max_steps=1).fit(toy_gan(num_classes=4), batch_loader(torch.randn(16, 2), torch.arange(16), batch_size=8))
    # The sanity-check validation batch comes first: it is checked the same way, before any training step.
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        cpu_trainer(max_steps=1, num_sanity_val_steps=1).fit(
            toy_gan(num_classes=4), batch_loader(torch.randn(16, 2), torch.arange(16) % 4, batch_size=8),
            batch_loader(torch.randn(16, 2), torch.arange(16), batch_size=8, shuffle=False),
        )


@pytest.mark.parametrize(
    "options",
    [
        dict(),  # label embedding + projection, spectral norm, hinge
        dict(generator_conditioning="batch_norm", discriminator_conditioning="concat", spectral_norm=False,
             discriminator_normalization="batch", loss="non_saturating"),
        dict(loss="wasserstein", gp_weight=10.0, spectral_norm=False, discriminator_normalization="layer", n_critic=2),
    ],
    ids=["embedding-projection", "batchnorm-concat", "wgan-gp"],
)
def test_dcgan_conditional_variants_train_and_checkpoints_restore_them(tmp_path, options):
    gan = ConditionalGAN(num_classes=3, image_shape=(1, 28, 28), latent_dim=8, features=4, ema_decay=0.9, **options)
    images, labels = torch.rand(24, 1, 28, 28) * 2 - 1, torch.arange(24) % 3
    trainer = cpu_trainer(max_steps=3)
    trainer.fit(gan, batch_loader(images, labels, batch_size=8))
    assert trainer.global_step == 3
    assert torch.isfinite(gan.last_step_metrics["loss_d"]) and torch.isfinite(gan.last_step_metrics["loss_g"])
    if "gp_weight" in options:
        assert "gp" in gan.last_step_metrics
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    restored = ConditionalGAN.load_from_checkpoint(tmp_path / "c.ckpt").eval()
    gan.eval()
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    assert torch.equal(restored.generate(4, z=z, labels=y), gan.generate(4, z=z, labels=y))
    assert restored.hparams.num_classes == 3


def test_conditional_gan_trains_under_cpu_ddp_and_ranks_hold_identical_weights(tmp_path):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out), "conditional", "4"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["global_step"] == 4 for r in ranks)
    assert ranks[0]["digests"] == ranks[1]["digests"]
    assert ranks[0]["sigmas"] and all(s == pytest.approx(1.0, rel=0.05) for s in ranks[0]["sigmas"])


def _late_bad_labels(bad_batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    # Batches of 8 in order: all valid but `bad_batch`, which holds a label equal to num_classes.
    labels = torch.arange(40) % 4
    labels[8 * bad_batch + 6] = 4
    return torch.randn(40, 2), labels


def test_a_bad_label_in_a_later_training_batch_is_reported_with_its_batch_not_an_index_error():
    images, labels = _late_bad_labels()
    trainer = cpu_trainer(max_steps=10, num_sanity_val_steps=1)
    with pytest.raises(ValueError, match=r"labels of batch 3 must lie in \[0, 4\).*from 0 to 4"):
        # A valid validation batch is checked first (sanity check); the training batches are still checked.
        trainer.fit(toy_gan(num_classes=4), batch_loader(images, labels, batch_size=8, shuffle=False),
                    batch_loader(images[:8], labels[:8], batch_size=8, shuffle=False))
    assert trainer.global_step == 3


def test_on_an_accelerator_bad_labels_are_clamped_on_the_device_and_reported_at_the_next_logging_step(monkeypatch):
    # The device path (no host sync per step), exercised on the CPU.
    monkeypatch.setattr(GAN, "_defer_label_check", lambda self, labels: True)
    images, labels = _late_bad_labels(bad_batch=1)
    trainer = cpu_trainer(max_steps=10, log_every_n_steps=4)
    with pytest.raises(ValueError, match=r"labels of batch 1 lie outside \[0, 4\)"):
        trainer.fit(toy_gan(num_classes=4), batch_loader(images, labels, batch_size=8, shuffle=False))
    assert trainer.global_step == 3  # batches 1 and 2 trained on clamped labels; batch 3, a logging step, raised
