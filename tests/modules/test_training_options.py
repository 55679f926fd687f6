"""The training options of #18: ``n_gen``, ``lr_decay="linear"``, ``weight_clip``, ``dragan_weight``, and the auxiliary-loss hooks."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch
from conftest import batch_loader, cpu_trainer
from pytorch_lightning.loggers import CSVLogger

from lightning_gan import GAN, VanillaGAN
from lightning_gan.nets import AuxiliaryHeads, MLPDiscriminator, MLPGenerator

DATA = torch.randn(128, 2)


def toy(cls=VanillaGAN, **overrides):
    options = dict(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,), maxout_pieces=1,
                   dropout=0.0, output_activation="identity")
    options.update(overrides)
    return cls(**options)


class Counting(VanillaGAN):
    """Records, per training batch, the order of its discriminator (D) and generator (G) steps and the G steps' latents."""

    def on_train_batch_start(self, batch, batch_idx):
        self.steps = getattr(self, "steps", []) + [[]]

    def discriminator_step(self, real, optimizer, labels=None):
        self.steps[-1].append("D")
        return super().discriminator_step(real, optimizer)

    def generator_step(self, batch_size, optimizer, labels=None):
        self.steps[-1].append("G")
        return super().generator_step(batch_size, optimizer)

    def sample_latent(self, n):
        z = super().sample_latent(n)
        self.latents = getattr(self, "latents", []) + [z]
        return z


def test_n_gen_takes_that_many_generator_steps_per_batch_and_global_step_counts_them(tmp_path):
    gan = toy(Counting, n_gen=2, n_critic=3, critic_data="reused")
    trainer = cpu_trainer(max_steps=8, logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=2)
    trainer.fit(gan, batch_loader(DATA, batch_size=16))
    assert gan.steps == [["D", "D", "D", "G", "G"]] * 4  # 4 batches: 3 critic steps, then exactly 2 generator steps
    assert trainer.global_step == 8 and trainer.fit_loop.epoch_loop.batch_progress.total.completed == 4
    # Each generator step draws its own latents (3 D + 2 G draws per batch; the two G draws differ).
    assert not torch.equal(gan.latents[3], gan.latents[4])
    with open(tmp_path / "metrics.csv") as file:  # the loggers' x-axis counts generator steps too
        assert [row["step"] for row in csv.DictReader(file) if row.get("train/loss_g")] == ["1", "3", "5", "7"]


def test_n_gen_refusals():
    with pytest.raises(ValueError, match=r"`n_gen` must be an integer >= 1, got 0"):
        toy(n_gen=0)
    with pytest.raises(ValueError, match=r"`Trainer\(max_steps=5\)` is not a multiple of `n_gen=2`.*Use 4 or 6"):
        cpu_trainer(max_steps=5).fit(toy(n_gen=2), batch_loader(DATA, batch_size=16))


class LearningRates(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen = getattr(self, "seen", []) + [(trainer.global_step, [o.param_groups[0]["lr"] for o in trainer.optimizers])]


def test_linear_decay_reaches_zero_at_max_steps():
    rates = LearningRates()
    gan = toy(lr_g=1e-3, lr_d=4e-3, lr_decay="linear", n_gen=2)
    cpu_trainer(max_steps=10, callbacks=[rates]).fit(gan, batch_loader(DATA, batch_size=16))
    assert [step for step, _ in rates.seen] == [2, 4, 6, 8, 10]
    for step, (lr_g, lr_d) in rates.seen:
        assert lr_g == pytest.approx(1e-3 * (1 - step / 10), abs=1e-12)
        assert lr_d == pytest.approx(4e-3 * (1 - step / 10), abs=1e-12)
    assert rates.seen[-1][1] == [0.0, 0.0]


def test_linear_decay_refuses_a_run_without_max_steps_or_with_its_own_scheduler():
    with pytest.raises(ValueError, match=r"`lr_decay` must be one of 'none', 'linear', got 'cosine'"):
        toy(lr_decay="cosine")
    with pytest.raises(ValueError, match=r"decays the learning rates to 0 at `Trainer\(max_steps=...\)`, but max_steps is -1"):
        cpu_trainer(max_epochs=1).fit(toy(lr_decay="linear"), batch_loader(DATA, batch_size=16))

    class WithScheduler(VanillaGAN):
        def configure_optimizers(self):
            optimizers = super().configure_optimizers()
            return optimizers, [torch.optim.lr_scheduler.StepLR(o, 1) for o in optimizers]

    with pytest.raises(ValueError, match="also returned LR scheduler"):
        cpu_trainer(max_steps=2).fit(toy(WithScheduler, lr_decay="linear"), batch_loader(DATA, batch_size=16))


class ClipChecking(VanillaGAN):
    def discriminator_step(self, real, optimizer, labels=None):
        self.largest_before = getattr(self, "largest_before", []) + [
            max(float(p.abs().max()) for p in self.discriminator.parameters())
        ]
        metrics = super().discriminator_step(real, optimizer)
        self.largest_after = getattr(self, "largest_after", []) + [
            max(float(p.abs().max()) for p in self.discriminator.parameters())
        ]
        return metrics


def test_weight_clipping_keeps_every_critic_weight_in_range_after_each_step():
    gan = toy(ClipChecking, loss="wasserstein", weight_clip=0.01, n_critic=5, lr_d=5e-3)
    trainer = cpu_trainer(max_steps=3)
    trainer.fit(gan, batch_loader(DATA, batch_size=80))
    assert len(gan.largest_after) == 15 and max(gan.largest_after) <= 0.01
    assert gan.largest_before[0] > 0.01  # the initialised weights are larger: the first step's clip brought them in
    assert max(float(p.abs().max()) for p in gan.generator.parameters()) > 0.01  # the generator is never clipped
    with pytest.raises(ValueError, match="`weight_clip` must be None or a finite positive number"):
        toy(weight_clip=0.0)


def test_dragan_weight_adds_the_penalty_to_the_discriminator_loss():
    class Recording(VanillaGAN):
        def discriminator_penalty(self, real, fake, real_logits, labels=None):
            self.penalties = super().discriminator_penalty(real, fake, real_logits)
            return self.penalties

    gan = toy(Recording, dragan_weight=10.0)
    cpu_trainer(max_steps=2).fit(gan, batch_loader(DATA, batch_size=16))
    assert set(gan.penalties) == {"dragan"} and float(gan.penalties["dragan"]) > 0
    assert gan.penalty_weight("dragan") == 10.0 and "dragan" in gan.last_step_metrics
    assert gan._discriminator_step_needs_double_backward()  # a compiled step would run the D step eagerly
    with pytest.raises(ValueError, match="`dragan_weight` must be a finite number >= 0"):
        toy(dragan_weight=-1.0)


class HeadLosses(GAN):
    """A hook-override model: a head on the discriminator whose output is pulled towards 0 on fakes."""

    def discriminator_auxiliary_losses(self, real_heads, fake_heads, z, labels=None):
        self.seen_z = z
        return {"d_head": fake_heads["head"].pow(2).mean()}

    def generator_auxiliary_losses(self, fake_heads, z, labels=None, real=None):
        self.seen_real = real
        return {"g_head": 3.0 * fake_heads["head"].pow(2).mean()}


def test_auxiliary_loss_hooks_get_the_heads_latents_and_real_data_and_their_terms_are_trained_and_logged():
    torch.manual_seed(0)
    discriminator = AuxiliaryHeads(MLPDiscriminator((2,), (8,), maxout_pieces=1, dropout=0.0), {"head": 1})
    gan = HeadLosses(MLPGenerator(2, (2,), (8,), "identity"), discriminator, latent_dim=2)
    cpu_trainer(max_steps=1).fit(gan, batch_loader(DATA, batch_size=16))
    assert gan.seen_z.shape == (16, 2) and gan.seen_real.shape == (16, 2)
    assert {"d_head", "g_head", "loss_d", "loss_g"} <= set(gan.last_step_metrics)
    # The generator's term is in its loss: with the adversarial loss switched off, the head term alone moves it.
    gan.generator_loss = lambda fake_logits: fake_logits.new_zeros(())
    before = [p.detach().clone() for p in gan.generator.parameters()]
    cpu_trainer(max_steps=1).fit(gan, batch_loader(DATA, batch_size=16))
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters()))


def test_a_resumed_run_decays_from_the_initial_learning_rate(tmp_path):
    checkpoint = tmp_path / "half.ckpt"

    class StopAtFour(pl.Callback):  # halfway through a run whose decay ends at step 8
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            trainer.should_stop = trainer.global_step == 4

    first = cpu_trainer(max_steps=8, callbacks=[StopAtFour()])
    first.fit(toy(lr_g=1e-3, lr_decay="linear"), batch_loader(DATA, batch_size=16))
    first.save_checkpoint(checkpoint)
    assert first.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 4 / 8))
    rates = LearningRates()
    cpu_trainer(max_steps=8, callbacks=[rates]).fit(toy(lr_g=1e-3, lr_decay="linear"), batch_loader(DATA, batch_size=16),
                                                   ckpt_path=checkpoint)
    # From lr_0 = 1e-3 (kept in the optimizer's state), not from the halved rate the checkpoint was saved with.
    assert [(step, lrs[0]) for step, lrs in rates.seen][:2] == [(5, pytest.approx(1e-3 * 3 / 8)), (6, pytest.approx(1e-3 * 2 / 8))]
