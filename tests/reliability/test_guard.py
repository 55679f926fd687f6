"""DivergenceGuard: NaN/inf losses or weights and a saturated discriminator stop training; no bad checkpoint is written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import batch_loader, cpu_trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_gan import VanillaGAN
from lightning_gan.callbacks.guard import DivergenceError, DivergenceGuard

BAD_FROM_STEP = 5  # the generator step whose loss is the first NaN (global_step counts generator steps)


def small_gan(cls=VanillaGAN, **kwargs) -> VanillaGAN:
    options = dict(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                   maxout_pieces=1, dropout=0.0, output_activation="identity")
    options.update(kwargs)
    return cls(**options)


class NaNGeneratorLoss(VanillaGAN):
    """The generator loss turns NaN at generator step BAD_FROM_STEP (global_step is the number of steps done)."""

    def generator_loss(self, fake_logits):
        loss = super().generator_loss(fake_logits)
        return loss * float("nan") if self.trainer.global_step + 1 >= BAD_FROM_STEP else loss


class ExposesStepMetrics(VanillaGAN):
    """Keeps each step's metrics in `last_step_metrics`, which the guard reads when a module offers them."""

    def training_step(self, batch, batch_idx):
        self.last_step_metrics = {}
        super().training_step(batch, batch_idx)

    def discriminator_step(self, real, optimizer):
        metrics = super().discriminator_step(real, optimizer)
        self.last_step_metrics.update(metrics)
        return metrics

    def generator_step(self, batch_size, optimizer):
        metrics = super().generator_step(batch_size, optimizer)
        self.last_step_metrics.update(metrics)
        return metrics


class NaNGeneratorLossExposingMetrics(ExposesStepMetrics, NaNGeneratorLoss):
    pass


def data(n: int = 640, shift: float = 0.0) -> torch.utils.data.DataLoader:
    return batch_loader(torch.randn(n, 2) * (0.1 if shift else 1.0) + shift, batch_size=32)


def fit_until_error(trainer: pl.Trainer, model: pl.LightningModule, loader=None) -> str:
    with pytest.raises(DivergenceError) as error:
        trainer.fit(model, loader if loader is not None else data())
    assert trainer.should_stop
    return str(error.value)


def test_a_nan_loss_stops_training_at_that_step_naming_it():
    trainer = cpu_trainer(max_steps=50, callbacks=[DivergenceGuard(check_every_n_steps=1, saturation_steps=None)])
    message = fit_until_error(trainer, small_gan(NaNGeneratorLoss))
    assert trainer.global_step == BAD_FROM_STEP
    assert f"stopped training at step {BAD_FROM_STEP}" in message
    assert f"the generator loss was first non-finite at step {BAD_FROM_STEP} (now nan)" in message
    assert re.search(r"\d+ parameter\(s\)/buffer\(s\) are not finite \(generator\.", message)
    assert "No checkpoint was written before it" in message


def test_a_sparse_check_still_names_the_first_bad_step():
    trainer = cpu_trainer(max_steps=50, callbacks=[DivergenceGuard(check_every_n_steps=8, saturation_steps=None)])
    message = fit_until_error(trainer, small_gan(NaNGeneratorLoss))
    assert trainer.global_step == 8
    assert f"the generator loss was first non-finite at step {BAD_FROM_STEP} (now nan)" in message
    # The generator's NaN weights make the discriminator's loss NaN one step later.
    assert f"the discriminator loss (with its penalties) was first non-finite at step {BAD_FROM_STEP + 1}" in message


@pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")
def test_a_nan_state_is_never_written_and_the_last_good_checkpoint_survives(tmp_path):
    # The periodic check is too rare to see it: the save at step 6 is what must refuse the NaN state.
    checkpoints = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_last=True)
    trainer = cpu_trainer(max_steps=50, enable_checkpointing=True, default_root_dir=tmp_path,
                          callbacks=[DivergenceGuard(check_every_n_steps=100, saturation_steps=None), checkpoints])
    message = fit_until_error(trainer, small_gan(NaNGeneratorLoss))
    assert trainer.global_step == 6 and "while saving a checkpoint, which was not written" in message
    last = tmp_path / "last.ckpt"
    assert f"Last good checkpoint: {last} (saved at step 4)" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]

    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    restored = VanillaGAN.load_from_checkpoint(last)
    assert torch.isfinite(restored.generate(8)).all()


def test_an_inf_written_into_a_parameter_is_found_and_named_at_the_next_check():
    gan = small_gan()
    name, first_weight = next(gan.discriminator.named_parameters())

    class Poison(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                with torch.no_grad():
                    first_weight.view(-1)[0] = float("inf")

    # Callbacks run in list order: the guard's check at step 3 sees the weight just written, no loss yet.
    guard = DivergenceGuard(check_every_n_steps=3, saturation_steps=None)
    trainer = cpu_trainer(max_steps=50, callbacks=[Poison(), guard])
    message = fit_until_error(trainer, gan)
    assert trainer.global_step == 3
    assert f"1 parameter(s)/buffer(s) are not finite (discriminator.{name})" in message
    assert "loss" not in message


def test_step_metrics_the_module_exposes_are_named_in_the_message():
    trainer = cpu_trainer(max_steps=50, callbacks=[DivergenceGuard(check_every_n_steps=1, saturation_steps=None)])
    message = fit_until_error(trainer, small_gan(NaNGeneratorLossExposingMetrics))
    assert f"train/loss_g was first non-finite at step {BAD_FROM_STEP} (now nan)" in message


@pytest.mark.parametrize("exposes_metrics", [False, True])
def test_a_saturated_discriminator_stops_training_after_k_consecutive_steps(exposes_metrics):
    # Real data far from the generator's reach and a fast discriminator: it soon classifies with certainty.
    cls = ExposesStepMetrics if exposes_metrics else VanillaGAN
    gan = small_gan(cls, lr_d=5e-2, lr_g=1e-6)
    guard = DivergenceGuard(check_every_n_steps=1, saturation_steps=5, saturation_eps=1e-2)
    trainer = cpu_trainer(max_steps=200, callbacks=[guard])
    message = fit_until_error(trainer, gan, data(6400, shift=5.0))
    step = trainer.global_step
    assert f"on 5 consecutive steps, steps {step - 4} to {step}" in message
    assert "train/d_real >= 0.99 and train/d_fake <= 0.01" in message
    assert "not finite" not in message


def test_score_based_losses_are_not_checked_for_saturation():
    gan = small_gan(loss="hinge", lr_d=5e-2, lr_g=1e-6)
    trainer = cpu_trainer(max_steps=40, callbacks=[DivergenceGuard(check_every_n_steps=1, saturation_steps=5)])
    trainer.fit(gan, data(6400, shift=5.0))
    assert trainer.global_step == 40


def test_healthy_training_runs_to_the_end_and_reads_the_device_only_at_its_checks(monkeypatch):
    """One host synchronisation per check (every 10 steps and at the end), none on the other steps."""
    guard_file = sys.modules[DivergenceGuard.__module__].__file__
    reads = []
    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            if Path(sys._getframe(1).f_code.co_filename) == Path(guard_file):
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    trainer = cpu_trainer(max_steps=30, callbacks=[DivergenceGuard(check_every_n_steps=10, saturation_steps=5)])
    trainer.fit(small_gan(ema_decay=0.9), data(6400))
    assert trainer.global_step == 30
    assert reads == ["item"] * 4  # steps 10, 20, 30 and the end of training


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"check_every_n_steps": 0}, "check_every_n_steps"),
        ({"check_every_n_steps": 2.5}, "check_every_n_steps"),
        ({"saturation_steps": 0}, "saturation_steps"),
        ({"saturation_eps": 0.5}, "saturation_eps"),
        ({"saturation_eps": 0.0}, "saturation_eps"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DivergenceGuard(**kwargs)
