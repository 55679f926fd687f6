"""Ready-made modules: their defaults, training, and checkpoints that load from the path alone."""

from __future__ import annotations


import pytest
import torch
from conftest import SHARED_MNIST, batch_loader, cpu_trainer, needs_shared_mnist
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_gan import DCGAN, WGANGP, VanillaGAN
from lightning_gan.nets import DCGANDiscriminator, MLPDiscriminator


def test_vanilla_gan_has_goodfellow_mnist_sizes():
    gan = VanillaGAN()
    assert gan.generate(3).shape == (3, 1, 28, 28)
    linear_widths = [m.out_features for m in gan.generator.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_widths == [1200, 1200, 784]
    assert isinstance(gan.discriminator, MLPDiscriminator)


def test_wgangp_defaults_follow_the_paper_and_its_critic_has_no_batch_norm():
    gan = WGANGP(image_shape=(3, 32, 32), features=8)
    assert (gan.hparams.n_critic, gan.hparams.gp_weight, tuple(gan.hparams.betas)) == (5, 10.0, (0.0, 0.9))
    assert gan.hparams.loss == "wasserstein"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gan.discriminator.modules())
    with pytest.raises(ValueError, match="'batch'"):
        WGANGP(critic_normalization="batch")


def test_wgangp_trains_and_logs_the_gradient_penalty():
    trainer = cpu_trainer(max_steps=2)
    gan = WGANGP(image_shape=(1, 28, 28), latent_dim=8, features=4)
    trainer.fit(gan, batch_loader(torch.rand(40, 1, 28, 28) * 2 - 1, batch_size=20))  # n_critic=5 fresh micro-batches of 4
    assert torch.isfinite(trainer.logged_metrics["train/gp"]) and trainer.logged_metrics["train/gp"] >= 0


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_dcgan_generates_the_configured_image_shape(image_shape):
    gan = DCGAN(image_shape=image_shape, latent_dim=8, features=4)
    assert gan.generate(2).shape == (2, *image_shape)
    assert isinstance(gan.discriminator, DCGANDiscriminator)


def test_non_square_image_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(1, 28, 32\)"):
        DCGAN(image_shape=(1, 28, 32))


@pytest.mark.parametrize("preset", [VanillaGAN, DCGAN, WGANGP])
def test_checkpoint_loads_from_the_path_alone(tmp_path, preset):
    kwargs = {"image_shape": (1, 28, 28), "latent_dim": 8, "ema_decay": 0.5}
    if preset is VanillaGAN:
        kwargs.update(generator_hidden=(16,), discriminator_hidden=(16,))
    else:
        kwargs.update(features=4)
    gan = preset(**kwargs)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    cpu_trainer(max_steps=2, enable_checkpointing=True, callbacks=[checkpoint], default_root_dir=tmp_path).fit(
        gan, batch_loader(torch.rand(40, 1, 28, 28) * 2 - 1, batch_size=10)  # WGANGP: 5 critic micro-batches of 2
    )
    restored = preset.load_from_checkpoint(checkpoint.last_model_path)
    assert restored.hparams == gan.hparams
    for name, tensor in gan.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name


@needs_shared_mnist
def test_dcgan_trains_on_real_digits_with_shapes_read_from_the_data_module():
    from lightning_gan.data import MNISTDataModule

    data = MNISTDataModule(SHARED_MNIST, batch_size=32, download=False, train_split="test", holdout=2000, val_size=500)
    gan = DCGAN(image_shape=data.image_shape, latent_dim=16, features=8)
    trainer = cpu_trainer(max_steps=3, limit_val_batches=2)
    trainer.fit(gan, datamodule=data)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.logged_metrics["train/loss_g"])
