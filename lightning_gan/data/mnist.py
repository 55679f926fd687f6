"""MNIST, Fashion-MNIST and CIFAR-10 as LightningDataModules, held in memory and served by slicing batches.

The images stay uint8 in memory (``(N, C, H, W)``) and are turned into float32 in ``[-1, 1]`` one whole
batch at a time (:func:`~lightning_gan.data.tensors.uint8_to_signed_unit`), through the same
:class:`~lightning_gan.data.tensors.BatchedTensorDataset` path as
:class:`~lightning_gan.data.tensors.TensorDataModule`: no per-sample Python work. Batches are
``(images, labels)``: float32 images of shape ``(B, C, H, W)`` and int64 labels.

MNIST and Fashion-MNIST are read straight from their IDX files (gzipped or not), checked against their
headers, so a truncated or corrupt file fails with a clear message instead of a bad tensor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import contextlib
import gzip
import io
import math
import zlib
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_gan.data.resumable import SeededShuffling
from lightning_gan.data.tensors import BatchedTensorDataset, collate_batch, tensor_loader, uint8_to_signed_unit

__all__ = ["CIFAR10DataModule", "DataNotAvailableError", "FashionMNISTDataModule", "MNISTDataModule"]

_SPLITS = ("train", "test")
_IDX_UBYTE = 0x08


class DataNotAvailableError(RuntimeError):
    """The data set is not on disk and could not be downloaded; the message names the files and the folder."""


class _InMemoryLoaders:
    """The loaders of a data module holding uint8 ``(images, labels)`` per split in ``self._data``.

    Needs ``batch_size``, ``num_workers``, ``val_size``, ``holdout`` and :class:`SeededShuffling`'s
    ``training_loader``; serves [-1, 1] floats.
    """

    _data: dict[str, tuple[Tensor, Tensor]]
    batch_size: int
    num_workers: int
    val_size: int
    holdout: Optional[int]

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> Union[DataLoader, list]:
        """The validation loader; an empty list when ``val_size=0`` (Lightning then skips validation)."""
        if self.val_size == 0:
            return []
        return self._loader("val", shuffle=False, drop_last=False)

    def test_dataloader(self) -> Union[DataLoader, list]:
        """The test loader; an empty list when ``holdout=0``."""
        if self.holdout == 0:
            return []
        return self._loader("test", shuffle=False, drop_last=False)

    # ------------------------------------------------------------------------------------------ internals

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        if split not in self._data:
            raise RuntimeError(
                f"The {split!r} split of {type(self).__name__} is not loaded: call `setup()` first "
                "(the Trainer does so)."
            )
        if shuffle:  # the training loader: its order survives a resume (lightning_gan.data.resumable)
            return self.training_loader(
                BatchedTensorDataset(*self._data[split], transform=uint8_to_signed_unit),
                self.batch_size,
                drop_last,
                collate_fn=collate_batch,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
            )
        return tensor_loader(
            self._data[split], self.batch_size, shuffle, drop_last, uint8_to_signed_unit, self.num_workers
        )


class _InMemoryVisionDataModule(_InMemoryLoaders, SeededShuffling, pl.LightningDataModule, ABC):
    """Shared logic of the data modules below; subclasses name the data set and how to read one split.

    Subclasses set ``dataset_name``, ``image_shape``, ``num_classes``, ``files`` (the file names of each
    of the data set's own splits, ``"train"`` and ``"test"``) and implement :meth:`_folders`,
    :meth:`_read_split` and :meth:`_download`.
    """

    dataset_name: ClassVar[str]
    image_shape: tuple[int, ...]
    num_classes: int = 10
    files: ClassVar[dict[str, tuple[str, ...]]]

    def __init__(
        self,
        data_dir: Union[str, Path] = "./data",
        batch_size: int = 128,
        num_workers: int = 0,
        download: bool = True,
        val_size: int = 5000,
        seed: int = 42,
        train_split: str = "train",
        holdout: Optional[int] = None,
        on_accelerator: bool = False,
    ) -> None:
        super().__init__()
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("num_workers", num_workers, minimum=0)
        _check_int("val_size", val_size, minimum=0)
        _check_int("seed", seed, minimum=None)
        if holdout is not None:
            _check_int("holdout", holdout, minimum=0)
        if train_split not in _SPLITS:
            raise ValueError(f"`train_split` must be one of {list(_SPLITS)}, got {train_split!r}.")
        if train_split == "test" and holdout is None:
            raise ValueError(
                "`train_split='test'` trains on the test split, so it needs `holdout=K` to keep its last K images "
                "apart as the test set (`holdout=0` for no test set)."
            )
        if on_accelerator and num_workers:
            raise ValueError(
                f"`on_accelerator=True` needs `num_workers=0` (workers cannot share device tensors), got {num_workers}."
            )
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.download = download
        self.val_size = val_size
        self.seed = seed
        self.train_split = train_split
        self.holdout = holdout
        self.on_accelerator = on_accelerator
        self._data: dict[str, tuple[Tensor, Tensor]] = {}
        self._indices: dict[str, Tensor] = {}
        self._loaded: set[str] = set()  # the data set's own splits already read and cut

    # ----------------------------------------------------------------------------------------- public API

    @property
    def splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """The splits set up so far: name -> ``(uint8 images (N, C, H, W), int64 labels (N,))``."""
        return dict(self._data)

    @property
    def split_indices(self) -> dict[str, Tensor]:
        """For each split set up so far, the positions of its samples in the data set split it was cut from.

        ``"train"`` and ``"val"`` index ``train_split``; ``"test"`` indexes ``train_split`` when ``holdout``
        is set, else the data set's own test split.
        """
        return dict(self._indices)

    def prepare_data(self) -> None:
        """Downloads the splits this configuration needs through torchvision, if ``download`` and missing."""
        if not self.download:
            return
        for split in self._sources_for(None):
            if self._find_folder(split) is None:
                self._download_or_explain(split)

    def _download_or_explain(self, split: str) -> None:
        # torchvision prints every mirror it tries and raises a bare RuntimeError naming a URL; say instead which
        # files belong where, and leave no empty folder behind.
        target = self._candidate_folders()[0]
        created = [d for d in (target, *target.parents) if not d.exists()]  # deepest first
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self._download(split)
        except Exception as error:
            for folder in created:  # only folders this call created, and only while empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            files = ", ".join(f"{name}[.gz]" for s in self._sources_for(None) for name in self.files[s])
            raise DataNotAvailableError(
                f"Could not download {self.dataset_name} into {target} ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]}). Without a network, copy its files ({files}) into {target} "
                f"(or any folder, then pass it as `data_dir`; `--data.data_dir DIR` on the command line) and pass "
                "`download=False`."
            ) from error

    def setup(self, stage: Optional[str] = None) -> None:
        """Loads the splits ``stage`` needs (all of them for ``None``) into memory, once.

        Raises:
            FileNotFoundError: If the files are missing (and were not downloaded).
            ValueError: If a file is corrupt, or the data set is too small for ``val_size`` and ``holdout``.
        """
        for source in self._sources_for(stage):
            if source not in self._loaded:
                self._cut(source, *self._read_split(source))
                self._loaded.add(source)
        if self.on_accelerator and self.trainer is not None:
            device = self.trainer.strategy.root_device
            self._data = {name: (x.to(device), y.to(device)) for name, (x, y) in self._data.items()}

    def _sources_for(self, stage: Optional[str]) -> tuple[str, ...]:
        """The data set's own splits ("train"/"test") that must be read for ``stage``."""
        if self.holdout is not None:
            return (self.train_split,)
        if stage in ("fit", "validate"):
            return ("train",)
        if stage in ("test", "predict"):
            return ("test",)
        return _SPLITS

    def _cut(self, source: str, images: Tensor, labels: Tensor) -> None:
        n = len(images)
        if self.holdout is not None:
            n_train = n - self.holdout - self.val_size
            if n_train < 1:
                raise ValueError(
                    f"The {self.dataset_name} {source!r} split has {n} images: too few for holdout={self.holdout} "
                    f"and val_size={self.val_size} with at least one training image left."
                )
            bounds = {"train": (0, n_train), "val": (n_train, n - self.holdout), "test": (n - self.holdout, n)}
            for name, (start, stop) in bounds.items():
                self._data[name] = (images[start:stop], labels[start:stop])
                self._indices[name] = torch.arange(start, stop)
        elif source == "train":
            if self.val_size >= n:
                raise ValueError(
                    f"`val_size={self.val_size}` leaves no training images: the {self.dataset_name} training split "
                    f"has {n}."
                )
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
            val, train = order[: self.val_size].sort().values, order[self.val_size :].sort().values
            for name, index in (("train", train), ("val", val)):
                self._data[name] = (images.index_select(0, index), labels.index_select(0, index))
                self._indices[name] = index
        else:
            self._data["test"] = (images, labels)
            self._indices["test"] = torch.arange(n)

    @abstractmethod
    def _candidate_folders(self) -> list[Path]:
        """Folders that may hold the files, most specific layout first."""

    def _find_folder(self, split: str) -> Optional[Path]:
        """The first candidate folder holding all files of ``split``, or None."""
        for folder in self._candidate_folders():
            if all(self._find_file(folder, name) is not None for name in self.files[split]):
                return folder
        return None

    @staticmethod
    def _find_file(folder: Path, name: str) -> Optional[Path]:
        path = folder / name
        return path if path.is_file() else None

    def _require_folder(self, split: str) -> Path:
        folder = self._find_folder(split)
        if folder is not None:
            return folder
        searched = ", ".join(str(f) for f in self._candidate_folders())
        message = (
            f"{self.dataset_name} {split!r} split not found: looked for {', '.join(self._expected_names(split))} "
            f"in {searched}. Pass `download=True` to download it, or point `data_dir` at a folder holding the files."
        )
        if split == "train" and self.train_split == "train" and self._find_folder("test") is not None:
            message += (
                " Only the test split was found: to train on it, pass `train_split='test'` with `holdout=K` "
                "(its last K images become the test set)."
            )
        raise FileNotFoundError(message)

    def _expected_names(self, split: str) -> list[str]:
        return list(self.files[split])

    @abstractmethod
    def _read_split(self, split: str) -> tuple[Tensor, Tensor]:
        """The whole ``split`` ("train" or "test") as uint8 images ``(N, C, H, W)`` and int64 labels."""

    @abstractmethod
    def _download(self, split: str) -> None:
        """Downloads ``split`` into ``data_dir`` (called by ``prepare_data`` on rank zero)."""


class _IDXDataModule(_InMemoryVisionDataModule):
    """MNIST-like data sets: IDX files in torchvision's ``<root>/<dataset_name>/raw/`` layout."""

    image_shape = (1, 28, 28)
    files = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    md5s: ClassVar[dict[str, str]]

    def _candidate_folders(self) -> list[Path]:
        d = self.data_dir
        return [d / self.dataset_name / "raw", d / "raw", d]

    @staticmethod
    def _find_file(folder: Path, name: str) -> Optional[Path]:
        # Prefer the uncompressed file torchvision extracts, else the .gz it downloads.
        return next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)

    def _expected_names(self, split: str) -> list[str]:
        return [f"{name}[.gz]" for name in self.files[split]]

    def _read_split(self, split: str) -> tuple[Tensor, Tensor]:
        folder = self._require_folder(split)
        image_file, label_file = (self._find_file(folder, name) for name in self.files[split])
        assert image_file is not None and label_file is not None
        images = _read_idx(image_file, ndim=3)
        labels = _read_idx(label_file, ndim=1)
        if tuple(images.shape[1:]) != self.image_shape[1:]:
            raise ValueError(
                f"{image_file}: images are {tuple(images.shape[1:])}, expected {self.image_shape[1:]} "
                f"for {self.dataset_name}."
            )
        if len(labels) != len(images):
            raise ValueError(f"{label_file} holds {len(labels)} labels but {image_file} holds {len(images)} images.")
        labels = labels.long()
        if labels.numel() and int(labels.max()) >= self.num_classes:
            raise ValueError(f"{label_file}: label {int(labels.max())} is out of range for {self.num_classes} classes.")
        return images.unsqueeze(1), labels

    def _download(self, split: str) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, self.dataset_name)(str(self.data_dir), train=split == "train", download=True)


class MNISTDataModule(_IDXDataModule):
    """MNIST handwritten digits (1 x 28 x 28, 10 classes) in memory; batches of images in ``[-1, 1]``.

    Splits, all deterministic:

    * ``train_split="train"``, ``holdout=None`` (default): ``val_size`` images drawn from the 60,000
      training images by ``torch.randperm`` seeded with ``seed`` form the validation set, the rest the
      training set (both kept in file order); the test set is the 10,000-image test split.
    * ``holdout=K``: only ``train_split`` is read, and cut in file order into
      ``[train | val | test]``: its first ``N - K - val_size`` images train, the next ``val_size``
      validate, the last ``K`` test (``seed`` is unused). ``train_split="test"`` (which requires
      ``holdout``) serves folders holding only the test files, e.g. the first 8,000 test digits to train
      and the last 2,000 held out: ``train_split="test", holdout=2000, val_size=0``.

    ``data_dir`` may be a torchvision root (holding ``MNIST/raw/``), the ``MNIST`` folder or its ``raw``
    folder; each file may be gzipped (``.gz``) or not.

    Args:
        data_dir: Where the files are, or are downloaded to (as a torchvision root).
        batch_size: Images per batch.
        num_workers: ``DataLoader`` workers; 0 is fastest for tensors already in memory.
        download: Download missing files through torchvision in :meth:`prepare_data`.
        val_size: Images in the validation set (0: none; ``val_dataloader`` returns ``[]``).
        seed: Seeds the train/validation draw.
        train_split: The data set's split ("train" or "test") the training set is cut from.
        holdout: Cut ``train_split`` in order and keep its last ``holdout`` images as the test set.
        on_accelerator: Keep the tensors on the training device (use with ``num_workers=0``).

    Raises:
        ValueError: For a ``batch_size < 1``, a negative ``val_size``/``holdout``/``num_workers``, an
            unknown ``train_split``, or ``train_split="test"`` without ``holdout``; in :meth:`setup`, for a
            corrupt file or sizes that leave no training images.
        FileNotFoundError: In :meth:`setup`, when the files are missing.

    Example:
        >>> dm = MNISTDataModule("data", download=False)
        >>> dm.image_shape, dm.num_classes
        ((1, 28, 28), 10)
    """

    dataset_name = "MNIST"
    md5s = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


class FashionMNISTDataModule(_IDXDataModule):
    """Fashion-MNIST clothing images (1 x 28 x 28, 10 classes), the same way as :class:`MNISTDataModule`.

    Same arguments, split rules and file names as :class:`MNISTDataModule`; the torchvision folder is
    ``FashionMNIST`` (``data_dir`` may be a root holding ``FashionMNIST/raw/``, that folder, or ``raw``).

    Example:
        >>> dm = FashionMNISTDataModule("data", download=False)
        >>> dm.image_shape, dm.num_classes
        ((1, 28, 28), 10)
    """

    dataset_name = "FashionMNIST"
    md5s = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }


class CIFAR10DataModule(_InMemoryVisionDataModule):
    """CIFAR-10 (3 x 32 x 32, 10 classes) in memory, the same way as :class:`MNISTDataModule`.

    Same arguments and split rules as :class:`MNISTDataModule` (50,000 training and 10,000 test images).
    The files are torchvision's ``cifar-10-batches-py`` folder; ``data_dir`` may be the root holding it
    or that folder itself. They are read with ``torchvision.datasets.CIFAR10`` (which checks their md5s).

    Example:
        >>> dm = CIFAR10DataModule("data", download=False)
        >>> dm.image_shape, dm.num_classes
        ((3, 32, 32), 10)
    """

    dataset_name = "CIFAR10"
    image_shape = (3, 32, 32)
    base_folder: ClassVar[str] = "cifar-10-batches-py"
    files = {
        "train": ("batches.meta",) + tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("batches.meta", "test_batch"),
    }

    def _candidate_folders(self) -> list[Path]:
        d = self.data_dir
        # torchvision reads <root>/cifar-10-batches-py, so data_dir may be that folder but no other.
        return [d / self.base_folder] + ([d] if d.name == self.base_folder else [])

    def _read_split(self, split: str) -> tuple[Tensor, Tensor]:
        import torchvision.datasets

        folder = self._require_folder(split)
        try:
            dataset = torchvision.datasets.CIFAR10(str(folder.parent), train=split == "train", download=False)
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted."
            raise ValueError(f"CIFAR-10 files in {folder} are corrupt (md5 mismatch): {error}") from error
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        labels = torch.as_tensor(dataset.targets, dtype=torch.long)
        return images, labels

    def _download(self, split: str) -> None:
        import torchvision.datasets

        torchvision.datasets.CIFAR10(str(self.data_dir), train=split == "train", download=True)


def _read_idx(path: Path, ndim: int) -> Tensor:
    """Reads an IDX file of unsigned bytes (gzipped when its name ends in ``.gz``) as a uint8 tensor.

    Checks the magic number (type 0x08, ``ndim`` dimensions) and that the data size matches the header.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = bytearray(f.read())
        else:
            raw = bytearray(path.read_bytes())
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"{path}: cannot decompress, the file is truncated or corrupt ({error}).") from error
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than an IDX header; the file is truncated or corrupt.")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] != ndim:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{bytes(raw[:4]).hex()}, expected 0x0000{_IDX_UBYTE:02x}{ndim:02x} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}); the file is corrupt or not this kind."
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise ValueError(
            f"{path}: the header says {' x '.join(map(str, dims))} = {expected - header} data bytes but the file "
            f"holds {len(raw) - header}; it is truncated or corrupt."
        )
    if expected == header:
        return torch.empty(dims, dtype=torch.uint8)
    return torch.frombuffer(raw, dtype=torch.uint8, offset=header, count=expected - header).view(*dims)


def _check_int(name: str, value: Any, minimum: Optional[int]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"`{name}` must be an integer{bound}, got {value!r}.")
