"""ImageFolderDataModule on small PNG/JPEG/BMP/WebP trees written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cpu_trainer
from PIL import Image

from lightning_gan import VanillaGAN
from lightning_gan.data.folder import IMAGE_EXTENSIONS, ImageFolderDataModule

RED, BLUE = (220, 20, 20), (20, 20, 220)


def write_image(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    (image.convert(mode) if mode != "RGB" else image).save(path)
    return path


@pytest.fixture
def two_classes(tmp_path: Path) -> Path:
    """cats are red, dogs blue; sizes, modes, extensions (and their case) and nesting all vary."""
    root = tmp_path / "images"
    write_image(root / "cats" / "a.png", (40, 30), RED)
    write_image(root / "cats" / "b.PNG", (30, 50), RED, mode="RGBA")
    write_image(root / "cats" / "nested" / "deeper" / "c.jpg", (64, 64), RED)
    write_image(root / "dogs" / "a.bmp", (17, 23), BLUE)
    write_image(root / "dogs" / "b.webp", (50, 20), BLUE)
    write_image(root / "dogs" / "c.jpeg", (16, 16), BLUE)
    write_image(root / "dogs" / "d.png", (90, 33), BLUE, mode="P")
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


def all_batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


@pytest.mark.parametrize("in_memory", [True, False])
def test_batches_have_the_requested_shape_range_and_folder_labels(two_classes, in_memory):
    dm = ImageFolderDataModule(two_classes, image_size=12, batch_size=7, val_fraction=0.0, in_memory=in_memory)
    assert dm.image_shape == (3, 12, 12) and dm.num_classes == 2 and dm.classes == ["cats", "dogs"]
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 1
    images, labels = batches[0]
    assert images.shape == (7, 3, 12, 12) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 1]
    assert images.min() >= -1.0 and images.max() <= 1.0
    red_dominant = images[:, 0].mean((1, 2)) > images[:, 2].mean((1, 2))
    assert torch.equal(red_dominant, labels == 0)


def test_classes_follow_the_alphabetical_order_of_folder_names_not_creation_order(tmp_path):
    write_image(tmp_path / "zebra" / "1.png", (8, 8), BLUE)
    write_image(tmp_path / "ant" / "1.png", (8, 8), RED)
    write_image(tmp_path / "Moth" / "1.png", (8, 8), RED)
    dm = ImageFolderDataModule(tmp_path, image_size=4, batch_size=3, val_fraction=0.0)
    assert dm.classes == ["Moth", "ant", "zebra"] and dm.num_classes == 3
    files = [f.parent.name for f in dm.train_files]
    labels = dm.train_dataloader().dataset.tensors[1].tolist()
    assert [dm.classes[label] for label in labels] == files


def test_images_directly_under_root_are_one_class(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", (10, 10), RED)
    dm = ImageFolderDataModule(tmp_path, image_size=8, batch_size=3, val_fraction=0.0)
    assert dm.num_classes == 1 and dm.classes == []
    _, labels = next(iter(dm.train_dataloader()))
    assert labels.tolist() == [0, 0, 0]


def test_hidden_files_and_folders_and_image_free_folders_are_ignored(tmp_path):
    write_image(tmp_path / "cats" / "a.png", (8, 8), RED)
    write_image(tmp_path / "cats" / ".ipynb_checkpoints" / "a-checkpoint.png", (8, 8), RED)
    (tmp_path / "cats" / "._a.png").write_bytes(b"AppleDouble metadata, not a PNG")
    write_image(tmp_path / ".hidden" / "x.png", (8, 8), RED)
    (tmp_path / "empty").mkdir()
    dm = ImageFolderDataModule(tmp_path, image_size=4, batch_size=1, val_fraction=0.0)
    assert dm.classes == ["cats"] and dm.train_files == [tmp_path / "cats" / "a.png"]


def test_greyscale_has_one_channel(two_classes):
    dm = ImageFolderDataModule(two_classes, image_size=6, channels=1, batch_size=7, val_fraction=0.0)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (7, 1, 6, 6) and dm.image_shape == (1, 6, 6)


@pytest.mark.parametrize("scale", [1, 3])
def test_shorter_side_is_resized_then_the_centre_cropped(tmp_path, scale):
    """Red | green | blue thirds of a 3:1 image: the centre square is the green third."""
    stripes = np.zeros((20 * scale, 60 * scale, 3), dtype=np.uint8)
    stripes[:, : 20 * scale, 0] = 255
    stripes[:, 20 * scale : 40 * scale, 1] = 255
    stripes[:, 40 * scale :, 2] = 255
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    dm = ImageFolderDataModule(tmp_path, image_size=20, batch_size=1, val_fraction=0.0)
    image, _ = next(iter(dm.train_dataloader()))
    # Bicubic resampling blurs a few pixels at the stripe edges; the middle is pure green.
    middle = image[0, :, :, 4:16]
    assert torch.equal(middle, torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand_as(middle))


def make_numbered_images(root: Path, n: int) -> None:
    for i in range(n):
        write_image(root / ("even" if i % 2 == 0 else "odd") / f"{i:02d}.png", (9, 9), (i * 10, 0, 0))


def test_split_is_deterministic_disjoint_and_sized_by_val_fraction(tmp_path):
    make_numbered_images(tmp_path, 20)
    first = ImageFolderDataModule(tmp_path, image_size=4, val_fraction=0.25, seed=1)
    again = ImageFolderDataModule(tmp_path, image_size=4, val_fraction=0.25, seed=1)
    other = ImageFolderDataModule(tmp_path, image_size=4, val_fraction=0.25, seed=2)
    assert first.val_files == again.val_files and first.train_files == again.train_files
    assert set(first.val_files) != set(other.val_files)
    assert len(first.val_files) == 5 and len(first.train_files) == 15
    assert sorted(first.val_files + first.train_files) == sorted(tmp_path.rglob("*.png"))


def test_at_least_one_image_stays_in_training(tmp_path):
    write_image(tmp_path / "only.png", (8, 8), RED)
    dm = ImageFolderDataModule(tmp_path, image_size=4, val_fraction=0.9)
    assert len(dm.train_files) == 1 and dm.val_files == []


def test_in_memory_and_lazy_loading_serve_the_same_data(two_classes):
    kwargs = dict(image_size=10, batch_size=2, val_fraction=0.5, seed=3)
    memory = ImageFolderDataModule(two_classes, in_memory=True, **kwargs)
    lazy = ImageFolderDataModule(two_classes, in_memory=False, **kwargs)
    memory.setup("fit")
    lazy.setup("fit")
    for a, b in zip(all_batches(memory.val_dataloader()), all_batches(lazy.val_dataloader()), strict=True):
        assert torch.equal(a, b)
    # Both shuffle with a RandomSampler drawing from the global generator, so one seed gives one order.
    torch.manual_seed(5)
    memory_train = all_batches(memory.train_dataloader())
    torch.manual_seed(5)
    lazy_train = all_batches(lazy.train_dataloader())
    for a, b in zip(memory_train, lazy_train, strict=True):
        assert torch.equal(a, b)
    # 7 * 0.5 rounds to 4 validation images; of the 3 left for training the last, incomplete batch is dropped.
    assert len(memory.val_files) == 4 and len(memory_train[0]) == 2


def test_lazy_loading_works_with_worker_processes(two_classes):
    dm = ImageFolderDataModule(two_classes, image_size=8, batch_size=3, val_fraction=0.0, in_memory=False, num_workers=1)
    images, labels = all_batches(dm.train_dataloader())
    assert images.shape == (6, 3, 8, 8) and labels.shape == (6,)


def test_a_folder_smaller_than_a_batch_still_gives_one_batch(two_classes):
    dm = ImageFolderDataModule(two_classes, image_size=4, batch_size=128, val_fraction=0.0)
    assert [len(images) for images, _ in dm.train_dataloader()] == [7]


def test_no_validation_share_gives_an_empty_validation_loader(two_classes):
    dm = ImageFolderDataModule(two_classes, image_size=4, batch_size=2, val_fraction=0.0)
    assert list(dm.val_dataloader()) == []


def test_missing_root_is_a_file_not_found_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        ImageFolderDataModule(missing, image_size=8)


def test_root_without_images_is_refused_listing_the_accepted_extensions(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("hello")
    with pytest.raises(ValueError, match="no image files") as error:
        ImageFolderDataModule(tmp_path, image_size=8)
    assert str(tmp_path) in str(error.value)
    assert all(extension in str(error.value) for extension in IMAGE_EXTENSIONS)


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    write_image(tmp_path / "loose.png", (8, 8), RED)
    write_image(tmp_path / "cats" / "a.png", (8, 8), RED)
    with pytest.raises(ValueError, match=r"loose\.png.*cats"):
        ImageFolderDataModule(tmp_path, image_size=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(image_size=0), r"image_size.*0"),
        (dict(image_size=8.0), r"image_size.*8\.0"),
        (dict(image_size=True), r"image_size.*True"),
        (dict(image_size=8, channels=2), r"channels.*2"),
        (dict(image_size=8, channels=4), r"channels.*4"),
        (dict(image_size=8, batch_size=0), r"batch_size.*0"),
        (dict(image_size=8, val_fraction=1.0), r"val_fraction.*1\.0"),
        (dict(image_size=8, val_fraction=-0.1), r"val_fraction.*-0\.1"),
        (dict(image_size=8, num_workers=-1), r"num_workers.*-1"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_any_file_is_read(tmp_path, kwargs, match):
    # The root does not exist: the argument error must come first.
    with pytest.raises(ValueError, match=match):
        ImageFolderDataModule(tmp_path / "missing", **kwargs)


def write_truncated_png(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_truncated_image_is_a_value_error_naming_the_file(two_classes, in_memory):
    broken = write_truncated_png(two_classes / "dogs" / "broken.png")
    dm = ImageFolderDataModule(two_classes, image_size=8, batch_size=8, val_fraction=0.0, in_memory=in_memory)
    with pytest.raises(ValueError, match="broken.png") as error:
        dm.setup("fit")
        list(dm.train_dataloader())
    assert str(broken) in str(error.value)


def test_a_file_that_is_not_an_image_at_all_is_a_value_error_naming_it(two_classes):
    (two_classes / "cats" / "fake.jpg").write_bytes(b"<html>not a jpeg</html>")
    dm = ImageFolderDataModule(two_classes, image_size=8)
    with pytest.raises(ValueError, match="fake.jpg"):
        dm.setup("fit")


def test_a_gan_fits_on_a_folder(two_classes):
    dm = ImageFolderDataModule(two_classes, image_size=8, batch_size=2, val_fraction=0.3)
    gan = VanillaGAN(image_shape=dm.image_shape, latent_dim=4, generator_hidden=(16,), discriminator_hidden=(16,))
    trainer = cpu_trainer(max_epochs=2)
    trainer.fit(gan, dm)
    assert trainer.global_step == 4 and "val/d_real" in trainer.callback_metrics
