"""ImageSampler and LatentInterpolation: grids from fixed latents, to CSV (PNG) and offline W&B."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import batch_loader, cpu_trainer
from PIL import Image
from pytorch_lightning.loggers import CSVLogger

from lightning_gan import DCGAN, VanillaGAN
from lightning_gan.callbacks.samples import ImageSampler, LatentInterpolation, slerp


def tiny_dcgan() -> DCGAN:
    return DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4)


def images(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28) * 2 - 1


def test_grid_is_saved_as_png_for_a_csv_logger_every_n_epochs(tmp_path):
    sampler = ImageSampler(num_samples=16, nrow=4, every_n_epochs=2)
    trainer = cpu_trainer(max_epochs=4, limit_train_batches=1, logger=CSVLogger(tmp_path), callbacks=[sampler])
    trainer.fit(tiny_dcgan(), batch_loader(images(), batch_size=8))
    assert len(sampler.saved_paths) == 2
    for path in sampler.saved_paths:
        with Image.open(path) as png:
            assert png.size == (4 * 30 + 2, 4 * 30 + 2)  # make_grid pads 2 pixels around each image


def test_fixed_latents_give_identical_grids_for_identical_weights():
    gan = tiny_dcgan().eval()
    sampler = ImageSampler(num_samples=4, seed=3)
    first = sampler.make_image(gan)
    torch.manual_seed(123)  # the global RNG must not matter
    assert torch.equal(first, sampler.make_image(gan))
    assert not torch.equal(first, ImageSampler(num_samples=4, seed=4).make_image(gan))


def test_two_dimensional_data_is_drawn_as_a_scatter_over_the_discriminator(tmp_path):
    gan = VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,),
                     maxout_pieces=1, dropout=0.0, output_activation="identity").eval()
    image = ImageSampler(num_samples=50).make_image(gan)
    assert image.shape == (3, 256, 256)
    red = (image[0] == 1) & (image[1] == 0) & (image[2] == 0)
    assert 1 <= int(red.sum()) <= 50


def test_grid_is_logged_to_an_offline_wandb_run(tmp_path, monkeypatch):
    from pytorch_lightning.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="test")
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, logger=logger, callbacks=[ImageSampler(num_samples=4)])
    try:
        trainer.fit(tiny_dcgan(), batch_loader(images(), batch_size=8))
        logger.experiment.finish()
    finally:
        # wandb leaves its service address in the environment; child processes of later tests would attach
        # to this (finished) service and lose their runs.
        os.environ.pop("WANDB_SERVICE", None)
    pngs = list(tmp_path.glob("wandb/offline-run-*/files/media/images/samples_*.png"))
    assert len(pngs) == 1


def test_latent_interpolation_rows_start_and_end_at_the_fixed_latents():
    gan = tiny_dcgan().eval()
    interpolation = LatentInterpolation(num_pairs=2, steps=5)
    z = interpolation.latents(gan)
    ends = interpolation._fixed_latent(gan, 4)
    assert z.shape == (10, 8)
    torch.testing.assert_close(z[0], ends[0])
    torch.testing.assert_close(z[4], ends[1])
    torch.testing.assert_close(z[5], ends[2])
    assert interpolation.make_image(gan).shape == (3, 2 * 30 + 2, 5 * 30 + 2)


def test_slerp_keeps_the_norm_between_equal_norm_latents():
    a, b = torch.randn(64), torch.randn(64)
    b = b / b.norm() * a.norm()
    path = slerp(a, b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(7), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("factory", "match"), [
    (lambda: ImageSampler(num_samples=0), "num_samples"),
    (lambda: ImageSampler(every_n_epochs=0), "every_n_epochs"),
    (lambda: LatentInterpolation(steps=1), "steps"),
])
def test_bad_arguments_are_rejected(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def conditional_dcgan(num_classes: int = 3):
    from lightning_gan import ConditionalGAN

    return ConditionalGAN(num_classes=num_classes, image_shape=(1, 28, 28), latent_dim=8, features=4)


def record_generate_calls(gan, monkeypatch) -> list:
    calls = []
    original = gan.generate

    def recording(n, z=None, labels=None):
        calls.append((None if z is None else z.clone(), None if labels is None else torch.as_tensor(labels).clone()))
        return original(n, z=z, labels=labels)

    monkeypatch.setattr(gan, "generate", recording)
    return calls


def test_conditional_grid_has_one_row_per_class_with_the_same_latents_in_every_row(tmp_path, monkeypatch):
    gan = conditional_dcgan(num_classes=3).eval()
    calls = record_generate_calls(gan, monkeypatch)
    image = ImageSampler(num_samples=64, nrow=5).make_image(gan)
    assert image.shape == (3, 3 * 30 + 2, 5 * 30 + 2)  # 3 class rows of 5 images
    z, labels = calls[-1]
    assert torch.equal(labels, torch.tensor([0] * 5 + [1] * 5 + [2] * 5))
    assert torch.equal(z[:5], z[5:10]) and torch.equal(z[:5], z[10:]) and not torch.equal(z[0], z[1])
    # Rows differ: the class changes the images (through the generator's label embedding).
    row = 30
    assert not torch.allclose(image[:, 2:row, :], image[:, row + 2:2 * row, :])

    # In training, through a CSV logger, as a PNG of that size.
    sampler = ImageSampler(nrow=4)
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, logger=CSVLogger(tmp_path), callbacks=[sampler])
    trainer.fit(conditional_dcgan(num_classes=3), batch_loader(images(), torch.arange(32) % 3, batch_size=8))
    with Image.open(sampler.saved_paths[0]) as png:
        assert png.size == (4 * 30 + 2, 3 * 30 + 2)


def test_conditional_interpolation_rows_and_two_dimensional_scatter(monkeypatch):
    from lightning_gan import ConditionalGAN

    gan = conditional_dcgan(num_classes=2).eval()
    calls = record_generate_calls(gan, monkeypatch)
    LatentInterpolation(num_pairs=3, steps=4).make_image(gan)
    assert torch.equal(calls[-1][1], torch.tensor([0] * 4 + [1] * 4 + [0] * 4))

    toy = ConditionalGAN(num_classes=4, image_shape=(2,), latent_dim=2, architecture="mlp", generator_hidden=(8,),
                         discriminator_hidden=(8,), output_activation="identity").eval()
    calls = record_generate_calls(toy, monkeypatch)
    image = ImageSampler(num_samples=40).make_image(toy)
    assert image.shape == (3, 256, 256)
    assert torch.equal(calls[-1][1], torch.arange(40) % 4)
    red = (image[0] == 1) & (image[1] == 0) & (image[2] == 0)
    assert 1 <= int(red.sum()) <= 40
