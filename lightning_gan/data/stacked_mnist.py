"""Stacked MNIST (Metz et al., 2017): three MNIST digits as the R, G and B channels of one image, 1,000 modes.

The mode-collapse benchmark of Unrolled GANs (Metz et al., 2017), VEEGAN (Srivastava et al., 2017) and PacGAN
(Lin et al., 2018): each image stacks three digits drawn independently and uniformly from an MNIST split, so
the data has ``10 ** 3 = 1000`` modes (the digit triples), all equally likely. A generator's coverage is counted
by classifying each channel of its samples with a digit classifier
(:mod:`lightning_gan.metrics.stacked_mnist`).

The digits are read, and cut into training / validation / test pools, exactly as
:class:`~lightning_gan.data.MNISTDataModule` does (same ``data_dir`` layouts, ``download``, ``train_split``,
``holdout``, ``val_size`` and ``seed``); each pool is then stacked by tensor indexing, with a generator seeded
from ``seed`` and the pool's name, so the stacked sets are the same in every run and every process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_gan.data.mnist import MNISTDataModule, _check_int, _InMemoryLoaders
from lightning_gan.data.resumable import SeededShuffling

__all__ = ["STACKED_MNIST_MODES", "StackedMNISTDataModule", "stack_digits"]

#: The number of modes of Stacked MNIST: one per triple of digits.
STACKED_MNIST_MODES = 1000

_IMAGE_SIZES = (28, 32)
_PLACE_VALUES = (100, 10, 1)  # the R digit is the hundreds of the mode index, B the units


def stack_digits(
    images: Tensor, labels: Tensor, num_samples: int, generator: Optional[torch.Generator] = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Stacks three digits drawn independently and uniformly from ``images`` into each of ``num_samples`` images.

    One ``torch.randint`` draws the ``(num_samples, 3)`` positions and one indexing gathers the images: no
    per-sample Python work.

    Args:
        images: Single-channel digits, ``(N, 1, H, W)`` or ``(N, H, W)``, any dtype.
        labels: Their digits ``(N,)``, integers in ``0..9``.
        num_samples: Stacked images to draw (0 gives empty tensors).
        generator: The random generator of the draw (torch's global one when ``None``).

    Returns:
        ``(stacked, modes, positions)``: images ``(num_samples, 3, H, W)`` whose channel ``c`` is
        ``images[positions[:, c]]``, int64 mode indices ``100 * d_R + 10 * d_G + d_B`` in ``0..999``, and the
        int64 positions ``(num_samples, 3)``.

    Raises:
        ValueError: If the shapes disagree, a label is not in ``0..9``, ``num_samples`` is not an integer
            ``>= 0``, or ``images`` is empty while ``num_samples > 0``.

    Example:
        >>> digits = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2)
        >>> stacked, modes, positions = stack_digits(digits, torch.arange(10), 4, torch.Generator().manual_seed(0))
        >>> stacked.shape
        torch.Size([4, 3, 2, 2])
        >>> bool((modes == stacked[:, :, 0, 0].long() @ torch.tensor([100, 10, 1])).all())
        True
    """
    _check_int("num_samples", num_samples, minimum=0)
    if images.dim() == 4:
        if images.shape[1] != 1:
            raise ValueError(f"`images` must be single-channel digits (N, 1, H, W), got shape {tuple(images.shape)}.")
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"`images` must have shape (N, 1, H, W) or (N, H, W), got {tuple(images.shape)}.")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"`labels` must have shape ({images.shape[0]},) like `images`, got {tuple(labels.shape)}.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise ValueError(f"`labels` must be digits in 0..9, got values in {int(labels.min())}..{int(labels.max())}.")
    if num_samples and not len(images):
        raise ValueError(f"Cannot stack {num_samples} images from an empty set of digits.")
    device = images.device
    if num_samples:
        positions = torch.randint(len(images), (num_samples, 3), generator=generator).to(device)
    else:
        positions = torch.empty(0, 3, dtype=torch.long, device=device)
    stacked = images[positions]  # (num_samples, 3, H, W): channel c is images[positions[:, c]]
    modes = (labels.long()[positions] * torch.tensor(_PLACE_VALUES, device=labels.device)).sum(dim=1)
    return stacked, modes, positions


class StackedMNISTDataModule(_InMemoryLoaders, SeededShuffling, pl.LightningDataModule):
    """Stacked MNIST (3 x 28 x 28 or 3 x 32 x 32, 1,000 modes) in memory; batches of images in ``[-1, 1]``.

    Each image stacks three MNIST digits, drawn independently and uniformly, as its R, G and B channels (the
    data set of Metz et al., 2017, VEEGAN and PacGAN, which stack 128,000 images); its label is the mode
    index ``100 * d_R + 10 * d_G + d_B`` (``0..999``), so batches are ``(images, labels)`` with float32 images
    ``(B, 3, S, S)`` and int64 labels, as from :class:`~lightning_gan.data.MNISTDataModule`.

    The digits are read and cut into pools exactly as :class:`~lightning_gan.data.MNISTDataModule` cuts its
    splits, with the same arguments (``data_dir``, ``download``, ``val_size``, ``seed``, ``train_split``,
    ``holdout``), and each pool is stacked by tensor indexing (:func:`stack_digits`):

    * the training set holds ``num_samples`` images stacked from the training digits;
    * the validation and test sets hold as many images as their pools hold digits (``val_size``, and the
      test split or ``holdout``), stacked from those digits only, so no digit of theirs is in a training image.

    Every draw is seeded by ``seed`` and the pool's name: the stacked sets are the same in every run and in
    every process, whichever stage is set up first. Images stay uint8 in memory (128,000 images take
    301 MB at 28 x 28, 393 MB at 32 x 32) and are turned into floats one batch at a time. The training
    order survives a resume and is sharded under DDP (:mod:`lightning_gan.data.resumable`); the last
    incomplete training batch is dropped.

    ``image_size=32`` resizes each digit (bilinear) to 32 x 32 before stacking, for the 32 x 32 networks.

    Args:
        data_dir: Where the MNIST files are, or are downloaded to (as for :class:`MNISTDataModule`).
        batch_size: Images per batch.
        num_workers: ``DataLoader`` workers; 0 is fastest for tensors already in memory.
        download: Download missing MNIST files through torchvision in :meth:`prepare_data`.
        num_samples: Stacked images in the training set.
        image_size: Height and width of the images: 28, or 32 to resize the digits.
        val_size: Digits set apart from ``train_split`` for the validation set (0: none).
        seed: Seeds the train/validation cut of the digits and every stacking draw.
        train_split: The MNIST split ("train" or "test") the training digits come from.
        holdout: Cut ``train_split`` in order and keep its last ``holdout`` digits for the test set
            (``train_split="test"`` requires it; ``holdout=0`` for no test set).
        on_accelerator: Keep the tensors on the training device (use with ``num_workers=0``).

    Raises:
        ValueError: For a ``num_samples < 1``, an ``image_size`` other than 28 or 32, and every argument
            :class:`MNISTDataModule` refuses; in :meth:`setup`, for a corrupt file or sizes that leave no
            training digits.
        FileNotFoundError: In :meth:`setup`, when the files are missing.
        DataNotAvailableError: In :meth:`prepare_data`, when missing files cannot be downloaded.

    Example:
        >>> dm = StackedMNISTDataModule("data", download=False, image_size=32)
        >>> dm.image_shape, dm.num_classes
        ((3, 32, 32), 1000)
    """

    num_classes: int = STACKED_MNIST_MODES

    def __init__(
        self,
        data_dir: Union[str, Path] = "./data",
        batch_size: int = 128,
        num_workers: int = 0,
        download: bool = True,
        num_samples: int = 128_000,
        image_size: int = 28,
        val_size: int = 5000,
        seed: int = 42,
        train_split: str = "train",
        holdout: Optional[int] = None,
        on_accelerator: bool = False,
    ) -> None:
        super().__init__()
        _check_int("num_samples", num_samples, minimum=1)
        if isinstance(image_size, bool) or image_size not in _IMAGE_SIZES:
            raise ValueError(f"`image_size` must be one of {list(_IMAGE_SIZES)}, got {image_size!r}.")
        if on_accelerator and num_workers:
            raise ValueError(
                f"`on_accelerator=True` needs `num_workers=0` (workers cannot share device tensors), got {num_workers}."
            )
        # The digits: read, checked, downloaded and cut by MNISTDataModule (which checks its own arguments).
        self._digits = MNISTDataModule(
            data_dir, batch_size=batch_size, num_workers=num_workers, download=download, val_size=val_size,
            seed=seed, train_split=train_split, holdout=holdout,
        )
        self.data_dir = self._digits.data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.download = download
        self.num_samples = num_samples
        self.image_size = image_size
        self.val_size = val_size
        self.seed = seed
        self.train_split = train_split
        self.holdout = holdout
        self.on_accelerator = on_accelerator
        self.image_shape: tuple[int, int, int] = (3, image_size, image_size)
        self._data: dict[str, tuple[Tensor, Tensor]] = {}
        self._indices: dict[str, Tensor] = {}

    # ----------------------------------------------------------------------------------------- public API

    @property
    def splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """The stacked splits set up so far: name -> ``(uint8 images (N, 3, S, S), int64 modes (N,))``."""
        return dict(self._data)

    @property
    def split_indices(self) -> dict[str, Tensor]:
        """For each stacked split, ``(N, 3)`` positions of its R, G and B digits in the MNIST split they came from.

        The training and validation digits come from ``train_split``; the test digits from ``train_split``
        when ``holdout`` is set, else from the MNIST test split.
        """
        return dict(self._indices)

    @property
    def digit_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """The single-channel digit pools set up so far (28 x 28 uint8 images, int64 digits), e.g. to train a
        digit classifier for :func:`~lightning_gan.metrics.stacked_mnist.stacked_mnist_modes`."""
        return self._digits.splits

    def prepare_data(self) -> None:
        """Downloads the MNIST splits this configuration needs through torchvision, if ``download`` and missing."""
        self._digits.prepare_data()

    def setup(self, stage: Optional[str] = None) -> None:
        """Loads the digits ``stage`` needs (all of them for ``None``) and stacks each pool, once.

        Raises:
            FileNotFoundError: If the files are missing (and were not downloaded).
            ValueError: If a file is corrupt, or MNIST is too small for ``val_size`` and ``holdout``.
        """
        self._digits.setup(stage)
        for name, (images, labels) in self._digits.splits.items():
            if name in self._data:
                continue
            if self.image_size != images.shape[-1]:
                images = _resize_uint8(images, self.image_size)
            count = self.num_samples if name == "train" else len(images)
            stacked, modes, positions = stack_digits(images, labels, count, _split_generator(self.seed, name))
            self._data[name] = (stacked, modes)
            self._indices[name] = self._digits.split_indices[name][positions]
        if self.on_accelerator and self.trainer is not None:
            device = self.trainer.strategy.root_device
            self._data = {name: (x.to(device), y.to(device)) for name, (x, y) in self._data.items()}


def _split_generator(seed: int, split: str) -> torch.Generator:
    """A generator seeded by ``seed`` and the split's name: each split's draw is independent of the others'."""
    digest = hashlib.sha256(f"stacked-mnist/{seed}/{split}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _resize_uint8(images: Tensor, size: int, chunk: int = 8192) -> Tensor:
    """Bilinear resize of uint8 ``(N, C, H, W)`` images to ``size`` x ``size``, rounded back to uint8, by chunks."""
    out = torch.empty(*images.shape[:2], size, size, dtype=torch.uint8, device=images.device)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].float()
        resized = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out

