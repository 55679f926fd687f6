"""Training loaders whose order survives a resume: shuffled by (seed, epoch), resumable mid-epoch.

A ``DataLoader(shuffle=True)`` draws each epoch's order from torch's global generator when its iterator
is created, and whether Lightning creates one (or draws anything else first) after a resume depends on
its loop configuration (``max_epochs`` or ``max_steps``, a validation loader or none). So the package's
data modules shuffle with a :class:`~torch.utils.data.DistributedSampler` given the run's seed (one
replica on one process): the order of an epoch is then a function of the seed and the epoch number
alone, which Lightning sets at every epoch start. Lightning keeps such a sampler under DDP, as it would
put one there anyway. The seed is the data module's state (saved in checkpoints), and the loader's own
state (how many batches of which epoch were served) lets a mid-epoch checkpoint resume where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Optional

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["ResumableDataLoader", "SeededShuffling", "resumable_loader"]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that numbers its epochs itself and resumes in the middle of one.

    Each iteration is one epoch: the loader sets its sampler's epoch before iterating (so a
    ``DistributedSampler`` shuffles by seed and epoch) and counts the batches it serves. Lightning saves
    the ``state_dict()`` of training loaders that have one in every checkpoint and loads it when it
    resumes with ``max_steps`` or in the middle of an epoch; the next iteration then serves the rest of
    the saved epoch, or the epoch after it if that one was complete. Without a loaded state the first
    iteration takes the epoch Lightning set (``max_epochs`` resumes at an epoch's end load no loader
    state, and there Lightning's number is right; after a ``max_steps`` resume it is one too high).

    Skipping costs no data loading with ``num_workers=0`` (only indices are drawn); with workers the
    skipped batches are loaded and dropped, once per resume.

    Example:
        >>> import torch
        >>> loader = resumable_loader(torch.arange(6.0), batch_size=2, seed=0)
        >>> first = next(iter(loader))
        >>> resumed = resumable_loader(torch.arange(6.0), batch_size=2, seed=0)
        >>> resumed.load_state_dict(loader.state_dict())
        >>> len(list(resumed))  # the epoch's two other batches
        2
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch: Optional[int] = None  # the epoch being served (None before the first iteration)
        self._served = 0
        self._resume_at: Optional[dict[str, int]] = None

    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing happens until the first batch is asked for, after Lightning's set_epoch.
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        self._check_replicas()
        epoch, skip = self._next_epoch()
        self._resume_at = None
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        iterator = DataLoader.__iter__(self)
        if skip and self.num_workers == 0 and hasattr(iterator, "_sampler_iter"):
            for _ in range(skip):  # indices only: nothing is loaded
                next(iterator._sampler_iter, None)
        else:
            for _ in range(skip):
                next(iterator, None)
        self._epoch, self._served = epoch, skip
        for batch in iterator:
            self._served += 1
            yield batch

    def _check_replicas(self) -> None:
        # Lightning keeps a loader's own DistributedSampler under DDP: one built for another number of processes
        # (e.g. a data module's loader asked for before the trainer was attached) would feed every rank the same data.
        replicas = getattr(self.sampler, "num_replicas", None)
        if replicas is None or not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size()
        if replicas != world:
            raise ValueError(
                f"This training loader shards its data for {replicas} process(es) but {world} are training: ask the "
                "data module for it inside `fit` (its `train_dataloader` reads the attached trainer), or pass "
                f"`num_replicas={world}` and this process's `rank` to `resumable_loader`."
            )

    def _next_epoch(self) -> tuple[int, int]:
        """The epoch the next iteration serves, and how many of its batches to skip."""
        saved = self._resume_at
        if saved is not None:
            if saved["batches"] < len(self):
                return saved["epoch"], saved["batches"]
            return saved["epoch"] + 1, 0
        if self._epoch is None:
            return int(getattr(self.sampler, "epoch", 0)), 0
        return self._epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        """The epoch being served and how many of its batches were served."""
        return {"epoch": self._epoch if self._epoch is not None else 0, "batches": self._served}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Makes the next iteration continue where the saved one stopped."""
        self._resume_at = {"epoch": int(state_dict["epoch"]), "batches": int(state_dict["batches"])}


def resumable_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    drop_last: bool = False,
    num_replicas: int = 1,
    rank: int = 0,
    **kwargs: Any,
) -> ResumableDataLoader:
    """A shuffled training loader whose order is a function of ``seed`` and the epoch, resumable mid-epoch.

    Args:
        dataset: The training samples.
        batch_size: Samples per batch.
        seed: The shuffling seed; pass the same one to a resumed run (the package's data modules save it).
        drop_last: Drop the last incomplete batch.
        num_replicas: Number of processes (``trainer.world_size``); each gets a disjoint share, as with
            Lightning's own ``DistributedSampler``.
        rank: This process's rank (``trainer.global_rank``).
        **kwargs: Other ``DataLoader`` arguments (``collate_fn``, ``num_workers``, ...).
    """
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
    return ResumableDataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **kwargs)


class SeededShuffling:
    """Data-module mixin: the training order's seed, saved in and restored from checkpoints.

    The seed is the run's (``seed_everything``'s ``PL_GLOBAL_SEED``, else 0, as Lightning's own
    ``DistributedSampler``) unless a checkpoint restored another, so a resumed run that seeds differently
    still repeats the original run's order. Lightning restores a data module's state before it asks for
    the training loader.
    """

    _restored_shuffle_seed: Optional[int] = None
    _shuffle_seed_in_use: Optional[int] = None

    def shuffle_seed(self) -> int:
        """The seed the training loader shuffles with."""
        if self._restored_shuffle_seed is not None:
            seed = self._restored_shuffle_seed
        else:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        self._shuffle_seed_in_use = seed
        return seed

    def training_loader(self, dataset: Dataset, batch_size: int, drop_last: bool, **kwargs: Any) -> ResumableDataLoader:
        """:func:`resumable_loader` over ``dataset``, sharded over the processes of the attached trainer.

        ``batch_size`` is the number of real samples one network update sees. A module that trains on
        several micro-batches per loader batch (a :class:`~lightning_gan.GAN` with ``steps_per_batch`` or
        fresh critic data) says how many in ``micro_batches_per_batch``, and the loader's batch holds that
        many, so ``MNISTDataModule(batch_size=64)`` with ``WGANGP()`` trains every critic step on 64 fresh
        samples, as the paper does.
        """
        trainer = getattr(self, "trainer", None)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        batch_size *= int(getattr(module, "micro_batches_per_batch", 1))
        return resumable_loader(dataset, batch_size, self.shuffle_seed(), drop_last, replicas, rank, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        seed = self._shuffle_seed_in_use if self._shuffle_seed_in_use is not None else self.shuffle_seed()
        return {"shuffle_seed": seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "shuffle_seed" in state_dict:
            self._restored_shuffle_seed = int(state_dict["shuffle_seed"])
