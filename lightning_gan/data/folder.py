"""A folder of the user's own images as a LightningDataModule."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Union

import pytorch_lightning as pl
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode

from lightning_gan.data.resumable import SeededShuffling
from lightning_gan.data.tensors import (
    BatchedTensorDataset,
    TensorDataModule,
    _check_batch_size,
    collate_batch,
    uint8_to_signed_unit,
)

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataModule"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
"""File name endings read as images (compared case-insensitively)."""


class ImageFolderDataModule(SeededShuffling, pl.LightningDataModule):
    """Every image under a folder, resized and centre-cropped to squares, as ``(images, labels)`` batches.

    Images are found recursively by extension (:data:`IMAGE_EXTENSIONS`, any case; hidden files and
    folders are skipped). As in torchvision's ``ImageFolder``, each subfolder of ``root`` is a class,
    labelled by the alphabetical order of the folder names; when the images lie directly in ``root``
    every label is 0. Each image is converted to RGB (``channels=3``) or greyscale (``channels=1``), its
    shorter side resized to ``image_size`` (bicubic, antialiased) and its centre cropped to
    ``image_size x image_size``.

    With ``in_memory=True`` every image is decoded once, in :meth:`setup`, into one uint8 tensor and
    served like :class:`~lightning_gan.data.TensorDataModule` (whole-batch slices, 1 byte per pixel in
    memory). With ``in_memory=False`` images are decoded per sample as batches are drawn: for folders
    too big for memory (use ``num_workers`` then). Both give the same samples.

    Batches are ``(images, labels)``: float images in ``[-1, 1]`` of shape ``(B, *image_shape)`` and
    int64 labels. The split into training and validation images depends only on the file list and
    ``seed``. The last incomplete training batch is dropped, unless it would be the only one.

    Args:
        root: The folder of images.
        image_size: Side of the square images served.
        channels: 3 for RGB, 1 for greyscale.
        batch_size: Images per batch.
        val_fraction: Share of the images held out for validation, in ``[0, 1)``; rounded to a whole
            number of images, and at least one image is kept for training.
        seed: Seed of the train/validation split.
        num_workers: ``DataLoader`` workers.
        in_memory: Decode all images once into memory (fast), or per sample as needed.

    Attributes:
        image_shape: ``(channels, image_size, image_size)``.
        num_classes: Number of class folders, or 1 when the images lie directly in ``root``.
        classes: The class folder names, in label order; empty when the images lie directly in ``root``.
        train_files: Paths of the training images, in file-name order.
        val_files: Paths of the validation images, in file-name order (the validation loader's order).

    Raises:
        FileNotFoundError: If ``root`` does not exist.
        ValueError: If ``root`` holds no image files, or an argument is out of range. A file that cannot
            be decoded raises ``ValueError`` naming it when it is loaded.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("cats", "dogs"):
        ...     (root / name).mkdir()
        ...     for i in range(3):
        ...         Image.new("RGB", (40, 30), (40 * i, 0, 0)).save(root / name / f"{i}.png")
        >>> dm = ImageFolderDataModule(root, image_size=16, batch_size=4, val_fraction=0.3)
        >>> dm.image_shape, dm.num_classes, dm.classes
        ((3, 16, 16), 2, ['cats', 'dogs'])
        >>> dm.setup("fit")
        >>> images, labels = next(iter(dm.val_dataloader()))
        >>> tuple(images.shape), labels.dtype
        ((2, 3, 16, 16), torch.int64)
    """

    def __init__(
        self,
        root: Union[str, Path],
        image_size: int,
        channels: int = 3,
        batch_size: int = 128,
        val_fraction: float = 0.05,
        seed: int = 42,
        num_workers: int = 0,
        in_memory: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"`image_size` must be an integer >= 1, got {image_size!r}.")
        if isinstance(channels, bool) or channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 (greyscale) or 3 (RGB), got {channels!r}.")
        _check_batch_size(batch_size)
        if (
            isinstance(val_fraction, bool)
            or not isinstance(val_fraction, (int, float))
            or not 0.0 <= val_fraction < 1.0
        ):
            raise ValueError(f"`val_fraction` must be a number in [0, 1), got {val_fraction!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"`seed` must be an integer, got {seed!r}.")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an integer >= 0, got {num_workers!r}.")
        if not isinstance(in_memory, bool):
            raise ValueError(f"`in_memory` must be True or False, got {in_memory!r}.")

        self.root = Path(root)
        self.image_size = image_size
        self.channels = channels
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.num_workers = num_workers
        self.in_memory = in_memory
        self.image_shape: tuple[int, ...] = (channels, image_size, image_size)

        self.classes, files, labels = _scan(self.root)
        self.num_classes = max(len(self.classes), 1)
        n_val = min(round(len(files) * val_fraction), len(files) - 1)
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
        # Sorting each split keeps the validation order independent of the permutation's internals.
        val_indices = sorted(order[:n_val].tolist())
        train_indices = sorted(order[n_val:].tolist())
        self.train_files: list[Path] = [files[i] for i in train_indices]
        self.val_files: list[Path] = [files[i] for i in val_indices]
        self._train_labels = torch.tensor([labels[i] for i in train_indices], dtype=torch.long)
        self._val_labels = torch.tensor([labels[i] for i in val_indices], dtype=torch.long)
        self._tensors: Optional[TensorDataModule] = None

    def setup(self, stage: str) -> None:
        if self.in_memory:
            self._decoded()

    def train_dataloader(self) -> DataLoader:
        if self.in_memory:
            images, labels = self._decoded()._splits["train"]
            dataset = BatchedTensorDataset(images, labels, transform=uint8_to_signed_unit)
            collate = {"collate_fn": collate_batch}
        else:
            dataset = _ImageFileDataset(self.train_files, self._train_labels, self.image_size, self.channels)
            collate = {}
        # Built here, not by the decoded TensorDataModule, which has no trainer to shard for.
        return self.training_loader(
            dataset,
            self.batch_size,
            self._drop_last(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **collate,
        )

    def val_dataloader(self) -> DataLoader:
        if not self.val_files:
            # The GAN module defines `validation_step`, so Lightning asks for this loader even with
            # `val_fraction=0`; an empty loader makes it skip validation instead of failing.
            empty = BatchedTensorDataset(
                torch.empty(0, *self.image_shape, dtype=torch.uint8),
                torch.empty(0, dtype=torch.long),
                transform=uint8_to_signed_unit,
            )
            return DataLoader(empty, batch_size=self.batch_size, collate_fn=collate_batch)
        if self.in_memory:
            return self._decoded().val_dataloader()
        dataset = _ImageFileDataset(self.val_files, self._val_labels, self.image_size, self.channels)
        return self._lazy_loader(dataset, shuffle=False, drop_last=False)

    def _decoded(self) -> TensorDataModule:
        """Decodes every image once (lazily, so the loaders also work without a prior :meth:`setup`)."""
        if self._tensors is None:
            files = self.train_files + self.val_files
            images = torch.empty(len(files), *self.image_shape, dtype=torch.uint8)
            _decode_into(images, files, self.image_size, self.channels)
            n_train = len(self.train_files)
            self._tensors = TensorDataModule(
                train=(images[:n_train], self._train_labels),
                val=(images[n_train:], self._val_labels) if self.val_files else None,
                batch_size=self.batch_size,
                drop_last=self._drop_last(),
                transform=uint8_to_signed_unit,
                num_workers=self.num_workers,
            )
        return self._tensors

    def _drop_last(self) -> bool:
        # A folder smaller than one batch would otherwise give epochs with no step at all.
        return len(self.train_files) >= self.batch_size

    def _lazy_loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


class _ImageFileDataset(Dataset):
    """Image files decoded one at a time: ``(image in [-1, 1], label)``, collated by the default collate."""

    def __init__(self, files: list[Path], labels: Tensor, image_size: int, channels: int) -> None:
        self.files = files
        self.labels = labels
        self.image_size = image_size
        self.channels = channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = _load_image(self.files[index], self.image_size, self.channels)
        return uint8_to_signed_unit(image), self.labels[index]


def _load_image(path: Union[str, Path], image_size: int, channels: int = 3) -> Tensor:
    """Reads an image file as a uint8 ``(channels, image_size, image_size)`` tensor.

    The shorter side is resized to ``image_size`` (bicubic, antialiased), then the centre is cropped.

    Raises:
        ValueError: If the file cannot be decoded (corrupt, truncated or not an image).
    """
    try:
        with Image.open(path) as image:
            # `convert` forces the full decode here, so a truncated file fails inside the `try`.
            image = image.convert("RGB" if channels == 3 else "L")
    # UnidentifiedImageError is an OSError; some broken files raise SyntaxError or EOFError from the plugins.
    except (OSError, SyntaxError, EOFError) as error:
        raise ValueError(f"Cannot decode image file {str(path)!r}: {error}") from error
    image = TF.resize(image, image_size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    image = TF.center_crop(image, [image_size, image_size])
    return TF.pil_to_tensor(image)


def _decode_into(out: Tensor, files: list[Path], image_size: int, channels: int) -> None:
    # Pillow releases the GIL while decoding and resizing, so threads speed up a big folder several-fold.
    workers = min(8, os.cpu_count() or 1, max(len(files), 1))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for i, image in enumerate(pool.map(lambda f: _load_image(f, image_size, channels), files)):
            out[i] = image
    finally:
        # On a bad file, skip the decodes still queued instead of finishing the whole folder first.
        pool.shutdown(wait=True, cancel_futures=True)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _images_under(folder: Path) -> list[Path]:
    found = []
    for directory, subdirectories, names in os.walk(folder, followlinks=True):
        # Hidden folders hold copies or metadata (.ipynb_checkpoints, .git), not training images.
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        found.extend(Path(directory, name) for name in names if _is_image(Path(name)))
    return sorted(found)


def _scan(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """Lists ``(class names, image files, labels)`` under ``root`` without opening any image."""
    if not root.exists():
        raise FileNotFoundError(f"`root` {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"`root` {str(root)!r} is not a folder.")
    entries = sorted(root.iterdir())
    direct = [p for p in entries if p.is_file() and _is_image(p)]
    per_class = {d.name: _images_under(d) for d in entries if d.is_dir() and not d.name.startswith(".")}
    # Like torchvision's `find_classes` would, but a folder without images is no class (it could never be sampled).
    per_class = {name: files for name, files in per_class.items() if files}
    if direct and per_class:
        raise ValueError(
            f"`root` {str(root)!r} holds both images ({direct[0].name!r}, ...) and class folders "
            f"({sorted(per_class)}); move the loose images into a class folder, or use one folder of images."
        )
    if per_class:
        classes = sorted(per_class)
        files = [f for name in classes for f in per_class[name]]
        labels = [label for label, name in enumerate(classes) for _ in per_class[name]]
        return classes, files, labels
    if direct:
        return [], direct, [0] * len(direct)
    raise ValueError(
        f"`root` {str(root)!r} holds no image files; accepted extensions (any case): {', '.join(IMAGE_EXTENSIONS)}."
    )

