"""``steps_per_batch=k``: k generator steps per loader batch, each on its own micro-batch, counted as k steps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import batch_loader, cpu_trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from lightning_gan import VanillaGAN
from lightning_gan.data import TensorDataModule

MICRO_BATCH = 16
DATA = torch.randn(256, 2)


def toy(**overrides) -> VanillaGAN:
    options = dict(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,), maxout_pieces=1,
                   dropout=0.0, output_activation="identity", ema_decay=0.9, n_critic=2)
    options.update(overrides)
    return VanillaGAN(**options)


def train(steps_per_batch: int, max_steps: int, log_dir: Path, gan: VanillaGAN | None = None, ckpt_path=None,
          **trainer_options):
    pl.seed_everything(0, verbose=False)
    gan = gan if gan is not None else toy(steps_per_batch=steps_per_batch)
    data = TensorDataModule(DATA, batch_size=MICRO_BATCH)  # per critic step; the loader's batch is k x n_critic of them
    options = dict(max_steps=max_steps, logger=CSVLogger(log_dir, name="", version=""), log_every_n_steps=4)
    options.update(trainer_options)
    trainer = cpu_trainer(**options)
    trainer.fit(gan, datamodule=data, ckpt_path=ckpt_path)
    return gan, trainer


def logged_rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "metrics.csv") as file:
        return [row for row in csv.DictReader(file) if row.get("train/loss_g")]


def test_k_steps_per_batch_train_exactly_as_k_batches_and_count_and_log_generator_steps(tmp_path):
    one, one_trainer = train(1, 24, tmp_path / "one")
    four, four_trainer = train(4, 24, tmp_path / "four")
    assert one_trainer.global_step == four_trainer.global_step == 24
    assert four_trainer.fit_loop.epoch_loop.batch_progress.total.completed == 6  # 24 steps in 6 batches
    for (name, a), (_, b) in zip(one.state_dict().items(), four.state_dict().items()):
        assert torch.equal(a, b), name  # same samples, same latents, same order: the same arithmetic
    # Logged at the same generator steps (x-axis), with the same values.
    rows_one, rows_four = logged_rows(tmp_path / "one"), logged_rows(tmp_path / "four")
    assert [r["step"] for r in rows_four] == [r["step"] for r in rows_one] == ["3", "7", "11", "15", "19", "23"]
    assert [r["train/loss_g"] for r in rows_four] == [r["train/loss_g"] for r in rows_one]


@pytest.mark.parametrize("critic_data", ["fresh", "reused"])
def test_every_real_sample_trains_exactly_one_generator_step(tmp_path, critic_data):
    seen: list[torch.Tensor] = []

    class Recording(VanillaGAN):
        def discriminator_step(self, real, optimizer, labels=None):
            seen.append(real.detach().clone())
            return super().discriminator_step(real, optimizer, labels)

    gan = Recording(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,), maxout_pieces=1,
                    dropout=0.0, output_activation="identity", n_critic=2, steps_per_batch=4, critic_data=critic_data)
    steps = 8 if critic_data == "fresh" else 16  # one epoch of the 256 samples: 2 or 1 micro-batches of 16 per step
    train(4, steps, tmp_path, gan=gan, logger=False)
    assert len(seen) == steps * 2 and all(len(real) == MICRO_BATCH for real in seen)
    if critic_data == "reused":  # the n_critic critic steps of one generator step see its one micro-batch
        assert all(torch.equal(seen[2 * i], seen[2 * i + 1]) for i in range(steps))
        seen = seen[::2]
    micro_batches = torch.cat(seen)
    assert len(torch.unique(micro_batches, dim=0)) == len(micro_batches) == 256  # one epoch, no sample twice
    assert torch.equal(micro_batches.sort(dim=0).values, DATA.sort(dim=0).values)


def test_a_resumed_run_with_steps_per_batch_equals_the_straight_run(tmp_path):
    straight, _ = train(4, 24, tmp_path / "straight", logger=False)
    first, trainer = train(4, 12, tmp_path / "first", logger=False)  # stops mid-epoch (16 steps per epoch)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    resumed, resumed_trainer = train(4, 24, tmp_path / "resumed", logger=False, ckpt_path=tmp_path / "mid.ckpt")
    assert resumed_trainer.global_step == 24
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("trainer_options", "message"),
    [
        (dict(max_steps=10), r"`Trainer\(max_steps=10\)` is not a multiple of `steps_per_batch=4`.*Use 8 or 12"),
        (dict(max_steps=8, log_every_n_steps=50), r"`Trainer\(log_every_n_steps=50\)` is not a multiple.*48 or 52"),
        (dict(max_steps=8, enable_checkpointing=True, callbacks=[ModelCheckpoint(every_n_train_steps=6)]),
         r"`ModelCheckpoint\(every_n_train_steps=6\)` is not a multiple of `steps_per_batch=4`"),
    ],
)
def test_step_counts_that_fall_inside_a_batch_are_refused_before_training(tmp_path, trainer_options, message):
    gan = toy(steps_per_batch=4)
    before = [p.detach().clone() for p in gan.parameters()]
    with pytest.raises(ValueError, match=message):
        train(4, trainer_options.pop("max_steps"), tmp_path, gan=gan, default_root_dir=tmp_path, **trainer_options)
    assert all(torch.equal(a, b) for a, b in zip(before, gan.parameters()))


def test_a_batch_that_does_not_split_into_micro_batches_is_refused(tmp_path):
    gan = toy(steps_per_batch=3)
    data = batch_loader(DATA, batch_size=16)  # a plain loader: its batch size is the loader's
    with pytest.raises(ValueError, match=r"Batch 0 holds 16 samples, which cannot be split into 6 equal micro-batches "
                                         r"\(steps_per_batch=3 x 2 real micro-batch\(es\) per generator step"):
        cpu_trainer(max_steps=3, log_every_n_steps=3).fit(gan, data)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_steps_per_batch_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match=r"`steps_per_batch` must be an integer >= 1, got"):
        toy(steps_per_batch=value)


def test_the_divergence_guard_checks_at_the_first_batch_end_past_each_period(tmp_path):
    from lightning_gan.callbacks.guard import DivergenceError, DivergenceGuard

    class Diverging(VanillaGAN):
        def generator_loss(self, fake_logits):
            loss = super().generator_loss(fake_logits)
            return loss * float("nan") if self.trainer.global_step >= 2 else loss

    gan = Diverging(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,), maxout_pieces=1,
                    dropout=0.0, output_activation="identity", steps_per_batch=4)
    guard = DivergenceGuard(check_every_n_steps=6, saturation_steps=None)
    # Batches end at steps 4, 8, 12: the period's multiple 6 falls inside the second batch, checked at its end.
    with pytest.raises(DivergenceError, match="stopped training at step 8"):
        train(4, 16, tmp_path, gan=gan, logger=False, callbacks=[guard])
