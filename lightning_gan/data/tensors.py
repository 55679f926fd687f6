"""In-memory tensors as a LightningDataModule, served by slicing whole batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_gan.data.resumable import SeededShuffling

__all__ = ["BatchedTensorDataset", "TensorDataModule", "collate_batch", "tensor_loader", "uint8_to_signed_unit"]

TensorsLike = Union[Tensor, Sequence[Tensor]]


def uint8_to_signed_unit(images: Tensor) -> Tensor:
    """Maps uint8 pixels in [0, 255] to floats in [-1, 1], the range of a ``tanh`` generator.

    Example:
        >>> uint8_to_signed_unit(torch.tensor([0, 255], dtype=torch.uint8))
        tensor([-1.,  1.])
    """
    return images.float().div_(127.5).sub_(1.0)


class BatchedTensorDataset(Dataset):
    """Tensors indexed along their first dimension, fetched a whole batch at a time.

    PyTorch's ``DataLoader`` calls ``__getitems__`` with a batch's indices when a dataset defines it, so
    a batch is one ``index_select`` per tensor instead of ``batch_size`` Python-level ``__getitem__``
    calls and a ``torch.stack``. Use it with :func:`collate_batch` (the batch is already collated).
    Works with any sampler, including the ``DistributedSampler`` Lightning adds under DDP.

    Args:
        *tensors: Tensors with the same first dimension (e.g. images and labels); may live on a GPU.
        transform: Applied to each batch of the first tensor (e.g. :func:`uint8_to_signed_unit`), so
            data can stay compact (uint8) in memory.

    Example:
        >>> ds = BatchedTensorDataset(torch.arange(10.0).view(5, 2), torch.arange(5))
        >>> ds.__getitems__([4, 0])
        (tensor([[8., 9.],
                [0., 1.]]), tensor([4, 0]))
    """

    def __init__(self, *tensors: Tensor, transform: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        if not tensors:
            raise ValueError("`tensors` must hold at least one tensor.")
        lengths = {len(t) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"All tensors must have the same first dimension, got {[len(t) for t in tensors]}.")
        self.tensors = tensors
        self.transform = transform

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.tensors[0].device)
        first, *rest = (t.index_select(0, index) for t in self.tensors)
        if self.transform is not None:
            first = self.transform(first)
        return (first, *rest)


def collate_batch(batch: Any) -> Any:
    """The collate function for :class:`BatchedTensorDataset`: its batches arrive already collated."""
    return batch


def tensor_loader(
    tensors: Sequence[Tensor],
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` that serves ``tensors`` by whole-batch slices (see :class:`BatchedTensorDataset`).

    Every in-memory data module of the package builds its loaders here. No sampler of its own: under DDP
    Lightning swaps in a ``DistributedSampler`` (it keeps ``shuffle`` and ``collate_fn``).

    Example:
        >>> loader = tensor_loader((torch.arange(6.0),), batch_size=4, shuffle=False, drop_last=False)
        >>> [b[0].tolist() for b in loader]
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]
    """
    return DataLoader(
        BatchedTensorDataset(*tensors, transform=transform),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=collate_batch,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


class TensorDataModule(SeededShuffling, pl.LightningDataModule):
    """A data module over tensors already in memory: the fast path for small data sets.

    Each split is a tensor of samples or a ``(samples, labels)`` pair. Batches are slices of the tensors
    in shuffled order (no per-sample Python work); with ``on_accelerator=True`` the tensors are moved
    once to the device training runs on, so no host-to-device copy happens per batch. The training order
    depends on the run's seed and the epoch only, so a resumed run repeats it, and under DDP each rank
    gets a disjoint share of every epoch (:mod:`lightning_gan.data.resumable`).

    Batches are ``(samples, labels)`` when labels are given, else ``(samples,)``.

    Args:
        train: Training samples, or ``(samples, labels)``.
        val: Validation split, same form; optional.
        test: Test split, same form; optional.
        batch_size: Samples per batch.
        drop_last: Drop the last incomplete training batch (keeps batch statistics comparable).
        transform: Applied to each batch of samples (e.g. :func:`uint8_to_signed_unit`).
        on_accelerator: Keep the tensors on the training device (use with ``num_workers=0``).
        num_workers: ``DataLoader`` workers; 0 is fastest for tensors already in memory.

    Raises:
        ValueError: If ``batch_size < 1``, a split is empty or its tensors disagree in length.

    Example:
        >>> dm = TensorDataModule(torch.randn(100, 2), batch_size=32)
        >>> dm.setup("fit")
        >>> [tuple(b[0].shape) for b in dm.train_dataloader()]
        [(32, 2), (32, 2), (32, 2)]
        >>> dm.image_shape
        (2,)
    """

    def __init__(
        self,
        train: TensorsLike,
        val: Optional[TensorsLike] = None,
        test: Optional[TensorsLike] = None,
        batch_size: int = 128,
        drop_last: bool = True,
        transform: Optional[Callable[[Tensor], Tensor]] = None,
        on_accelerator: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        _check_batch_size(batch_size)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an integer >= 0, got {num_workers!r}.")
        if on_accelerator and num_workers:
            raise ValueError(
                f"`on_accelerator=True` needs `num_workers=0` (workers cannot share device tensors), got {num_workers}."
            )
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.transform = transform
        self.on_accelerator = on_accelerator
        self.num_workers = num_workers
        self._splits = {
            name: _as_tensors(name, value) for name, value in (("train", train), ("val", val), ("test", test)) if value is not None
        }
        samples = self._splits["train"][0]
        self.image_shape: tuple[int, ...] = tuple(samples.shape[1:])
        labels = self._splits["train"][1] if len(self._splits["train"]) > 1 else None
        self.num_classes: Optional[int] = int(labels.max()) + 1 if labels is not None and labels.numel() else None

    def setup(self, stage: str) -> None:
        if self.on_accelerator and self.trainer is not None:
            device = self.trainer.strategy.root_device
            self._splits = {name: tuple(t.to(device) for t in tensors) for name, tensors in self._splits.items()}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        # A split that was not given serves zero batches, so Lightning skips that loop instead of failing:
        # GAN modules define a validation step, and most GAN training has no validation data.
        tensors = self._splits.get(split) or tuple(t[:0] for t in self._splits["train"])
        if shuffle:  # the training loader: its order survives a resume (lightning_gan.data.resumable)
            return self.training_loader(
                BatchedTensorDataset(*tensors, transform=self.transform),
                self.batch_size,
                drop_last,
                collate_fn=collate_batch,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
            )
        return tensor_loader(tensors, self.batch_size, shuffle, drop_last, self.transform, self.num_workers)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")


def _as_tensors(name: str, value: TensorsLike) -> tuple[Tensor, ...]:
    tensors = (value,) if isinstance(value, Tensor) else tuple(value)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"`{name}` must be a tensor or a sequence of tensors, got {type(value).__name__}.")
    if len(tensors[0]) == 0:
        raise ValueError(f"`{name}` is empty: it needs at least one sample.")
    if len({len(t) for t in tensors}) != 1:
        raise ValueError(f"The tensors of `{name}` differ in length: {[len(t) for t in tensors]}.")
    return tensors
