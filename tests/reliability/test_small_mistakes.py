"""Smaller mistakes of #13 (item 7): a data set smaller than a batch, a resume with changed hyper-parameters."""

from __future__ import annotations

import pytest
import torch
from conftest import batch_loader, cpu_trainer
from torch.utils.data import DataLoader, TensorDataset

from lightning_gan import VanillaGAN


def toy_gan(**kwargs) -> VanillaGAN:
    return VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                      maxout_pieces=1, dropout=0.0, output_activation="identity", **kwargs)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "toy.ckpt"
    trainer = cpu_trainer(max_steps=2)
    trainer.fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32))
    trainer.save_checkpoint(path)
    return path


def test_a_data_set_smaller_than_one_batch_is_refused_with_the_numbers():
    loader = DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=32, drop_last=True)
    trainer = cpu_trainer(max_steps=5)
    with pytest.raises(ValueError, match=r"gave no batch, so nothing was trained: 10 sample\(s\) per process with batch_size 32 and drop_last=True"):
        trainer.fit(toy_gan(), loader)


def test_resuming_with_other_hyperparameters_warns_naming_them(checkpoint):
    trainer = cpu_trainer(max_steps=3)
    with pytest.warns(UserWarning, match=r"other hyper-parameters \(lr_d: 0\.0002 -> 0\.001; n_critic: 1 -> 3\)"):
        trainer.fit(toy_gan(n_critic=3, lr_d=1e-3), batch_loader(torch.randn(96, 2), batch_size=48),  # 3 critic micro-batches
                    ckpt_path=str(checkpoint))
    assert trainer.global_step == 3


def test_a_text_file_as_checkpoint_is_refused_with_the_path(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("step 100: loss went down\n")
    trainer = cpu_trainer(max_steps=3)
    with pytest.raises(ValueError, match=r"`ckpt_path` '.*notes\.ckpt' is not a checkpoint torch can read"):
        trainer.fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32), ckpt_path=str(path))
    assert trainer.global_step == 0


def test_a_bare_state_dict_as_checkpoint_says_how_to_load_it(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(toy_gan().state_dict(), path)
    trainer = cpu_trainer(max_steps=3)
    with pytest.raises(ValueError, match=r"holds a bare state_dict .*model\.load_state_dict\(torch\.load\(path\)\)"):
        trainer.fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32), ckpt_path=str(path))
    with pytest.raises(ValueError, match=r"holds a bare state_dict"):
        cpu_trainer().validate(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32), ckpt_path=str(path))


def test_a_dict_that_is_not_a_lightning_checkpoint_names_what_it_lacks(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, path)
    with pytest.raises(ValueError, match=r"lacks 'state_dict' and 'pytorch-lightning_version' \(its keys: 'model', 'epoch'\)"):
        cpu_trainer(max_steps=3).fit(toy_gan(), batch_loader(torch.randn(64, 2), batch_size=32), ckpt_path=str(path))
