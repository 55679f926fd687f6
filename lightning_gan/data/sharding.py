"""A data set read in full, in a fixed order, split across processes without padding.

Evaluation code that reads "the real set" (FID's real statistics, KID's real features) cannot use the
loaders Lightning prepares: a training loader shuffles and drops the last partial batch, and under DDP
Lightning's ``DistributedSampler`` pads every shard to the same length by repeating samples, so some
images would count twice and others not at all. :class:`FixedOrderShards` reads the loader's *dataset*
instead: process ``r`` of ``W`` gets the contiguous block :func:`shard_bounds` gives it, in index order,
so the shards concatenated in rank order are exactly the single-process set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data._utils.collate import default_collate

__all__ = ["FixedOrderShards", "shard_bounds"]

# Samples hashed at each end of the set for its fingerprint: enough to tell data sets apart, cheap to read.
_FINGERPRINT_SAMPLES = 16


def shard_bounds(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """The ``[start, stop)`` block of ``total`` items that process ``rank`` of ``world_size`` reads.

    The first ``total % world_size`` ranks get one item more; no item is repeated or left out, and a
    rank may get none.

    Example:
        >>> [shard_bounds(41, r, 2) for r in range(2)]
        [(0, 21), (21, 41)]
        >>> shard_bounds(1, 1, 2)
        (1, 1)
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"`rank` must be in [0, world_size) with world_size >= 1, got rank={rank}, world_size={world_size}.")
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class FixedOrderShards:
    """Iterates a loader's map-style dataset in index order, this process's contiguous block only.

    Batches are built with the loader's own ``collate_fn`` (and worker count), so they look like the
    batches the model trains on; only the order, the batch size and the sharding are ours.

    Args:
        loader: A ``DataLoader`` over a map-style dataset (one with ``__len__`` and ``__getitem__``).
        batch_size: Samples per batch.

    Raises:
        TypeError: If the loader's dataset is iterable-style (it has no index order to shard by).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.arange(5.0)), batch_size=2, shuffle=True, drop_last=True)
        >>> shards = FixedOrderShards(loader, batch_size=2)
        >>> [batch[0].tolist() for batch in shards.batches(rank=0, world_size=2)]
        [[0.0, 1.0], [2.0]]
        >>> [batch[0].tolist() for batch in shards.batches(rank=1, world_size=2)]
        [[3.0, 4.0]]
    """

    def __init__(self, loader: DataLoader, batch_size: int) -> None:
        dataset = getattr(loader, "dataset", None)
        if dataset is None or isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"The real set must be a map-style dataset (with __len__ and __getitem__) so that it can be read in "
                f"full and split across processes without repeats; got {type(dataset).__name__}."
            )
        self.dataset: Dataset = dataset
        self.batch_size = int(batch_size)
        # A loader built with batch_size=None does no batching, and its collate_fn only converts.
        self.collate_fn = loader.collate_fn if loader.batch_size is not None else default_collate
        self.num_workers = loader.num_workers

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def batches(self, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        """This process's batches, in index order; none for an empty shard."""
        start, stop = shard_bounds(len(self), rank, world_size)
        yield from self._loader(range(start, stop))

    def fingerprint(self) -> str:
        """sha256 of the set's size and of its first and last samples (every process computes the same).

        Cheap (two small batches), and changes when the data change size or the files at either end
        differ: a cache keyed on it goes stale with the data, not with the name the user gave them.
        """
        n = len(self)
        hasher = hashlib.sha256(f"n={n}".encode())
        head = range(0, min(n, _FINGERPRINT_SAMPLES))
        tail = range(max(n - _FINGERPRINT_SAMPLES, 0), n)
        for indices in (head, tail):
            for batch in self._loader(indices, batch_size=_FINGERPRINT_SAMPLES, workers=0):
                _hash_tensors(hasher, batch)
        return hasher.hexdigest()

    def _loader(self, indices: range, batch_size: int | None = None, workers: int | None = None) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=batch_size or self.batch_size,
            sampler=list(indices),
            collate_fn=self.collate_fn,
            num_workers=self.num_workers if workers is None else workers,
            drop_last=False,
            # Creating a loader's iterator draws a base seed; from a generator of our own, so that
            # evaluating (FID, Parzen) never shifts training's global random stream.
            generator=torch.Generator().manual_seed(0),
        )


def _hash_tensors(hasher: Any, batch: Any) -> None:
    if isinstance(batch, Tensor):
        tensor = batch.detach().cpu().contiguous()
        hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(batch, dict):
        for key in sorted(batch, key=str):
            hasher.update(str(key).encode())
            _hash_tensors(hasher, batch[key])
    elif isinstance(batch, (list, tuple)):
        for item in batch:
            _hash_tensors(hasher, item)
    else:
        hasher.update(repr(batch).encode())
