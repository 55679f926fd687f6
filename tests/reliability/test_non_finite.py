"""Finite by default (#13, item 6): non-finite data, weights and checkpoints are refused, guard or no guard."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import batch_loader, cpu_trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_gan import DCGAN, VanillaGAN


def toy_gan() -> VanillaGAN:
    return VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                      maxout_pieces=1, dropout=0.0, output_activation="identity")


def test_a_nan_in_the_first_batch_is_refused_before_any_step():
    data = torch.randn(64, 2)
    data[3, 1] = float("nan")
    trainer = cpu_trainer(max_steps=5)
    with pytest.raises(ValueError, match=r"Batch 0 of the training data holds NaN or infinite values \(1 of its 32"):
        trainer.fit(toy_gan(), batch_loader(data, batch_size=32, shuffle=False))
    assert trainer.global_step == 0


def test_an_inf_in_a_later_batch_is_reported_at_the_next_logging_step():
    data = torch.randn(256, 2)
    data[70, 0] = float("inf")  # batch 2 of 32
    trainer = cpu_trainer(max_steps=8, log_every_n_steps=4)
    with pytest.raises(ValueError, match=r"Batch 2 of the training data holds NaN or infinite values"):
        trainer.fit(toy_gan(), batch_loader(data, batch_size=32, shuffle=False))
    assert trainer.global_step == 3  # batch 3 is the first logging step after it


def test_float_pixels_in_0_255_against_a_tanh_generator_are_warned_once():
    images = torch.rand(16, 1, 28, 28) * 255
    with pytest.warns(UserWarning, match=r"span \[.*\], far outside the generator's output range \[-1, 1\].*Tanh"):
        cpu_trainer(max_steps=2).fit(DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4),
                                     batch_loader(images, batch_size=8))


class PoisonAt(pl.Callback):
    """Writes a NaN into the generator after training step ``step`` (a diverged update)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.generator.parameters()).view(-1)[0] = float("nan")


def test_a_non_finite_state_never_overwrites_the_last_checkpoint(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=1, save_top_k=0)
    trainer = cpu_trainer(max_steps=10, callbacks=[checkpoints, PoisonAt(3)], enable_checkpointing=True)
    with pytest.raises(ValueError, match=r"Refusing to save a checkpoint at step 3: 1 weight tensor\(s\) hold NaN"):
        trainer.fit(toy_gan(), batch_loader(torch.randn(320, 2), batch_size=32))
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_a_checkpoint_with_non_finite_weights_is_refused_at_load(tmp_path):
    trainer = cpu_trainer(max_steps=1)
    model = toy_gan()
    trainer.fit(model, batch_loader(torch.randn(64, 2), batch_size=32))
    path = tmp_path / "good.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["discriminator.net.1.weight"][0, 0] = float("inf")
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"checkpoint's weights hold NaN or infinite values in 1 tensor\(s\) "
                                         r"\(discriminator\.net\.1\.weight\)"):
        VanillaGAN.load_from_checkpoint(tmp_path / "bad.ckpt")
    resumed = cpu_trainer(max_steps=3)
    with pytest.raises(ValueError, match="cannot be resumed"):
        resumed.fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32), ckpt_path=str(tmp_path / "bad.ckpt"))
