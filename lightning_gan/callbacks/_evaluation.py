"""Pieces of the evaluation callbacks: image-range checks, rank-ordered gathers, seeded sampling, argument checks."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from lightning_gan.data.batches import samples_of

class _Bounds:
    """The smallest and largest finite value seen, to check images against ``value_range``."""

    def __init__(self) -> None:
        self.low = float("inf")
        self.high = float("-inf")

    def add(self, images: Tensor) -> None:
        if not images.is_floating_point() or images.numel() == 0:
            return
        finite = images[torch.isfinite(images)]
        if finite.numel():
            low, high = torch.aminmax(finite)
            self.low, self.high = min(self.low, float(low)), max(self.high, float(high))

    def check(self, value_range: tuple[float, float], what: str, device: torch.device, real: bool = False) -> None:
        """Raises on every rank together if any rank saw values outside the range (one small collective)."""
        low, high = value_range
        seen = torch.tensor([-self.low, self.high], dtype=torch.float64, device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(seen, op=torch.distributed.ReduceOp.MAX)
        seen_low, seen_high = -float(seen[0]), float(seen[1])
        if seen_low > seen_high:  # no float images anywhere (uint8 data, or no samples)
            return
        # Half a pixel: values closer to the range than that round to its end pixel anyway.
        margin = (high - low) / 510.0
        if seen_low < low - margin or seen_high > high + margin:
            raise ValueError(
                f"The {what} span [{seen_low:.4g}, {seen_high:.4g}], outside `value_range` ({low:g}, {high:g}) "
                f"by more than half a pixel; pass the range your {'data' if real else 'generator'} produce "
                "(e.g. value_range=(0, 1) for a sigmoid output) so that they map to the right pixels."
            )
        if real and seen_low >= low + 0.45 * (high - low):
            warnings.warn(
                f"The real images span [{seen_low:.4g}, {seen_high:.4g}], only the upper part of `value_range` "
                f"({low:g}, {high:g}): they reach the extractor as pixels of {round(255 * (seen_low - low) / (high - low))} "
                "and up. If they are in [0, 1], pass value_range=(0, 1).",
                UserWarning,
                stacklevel=3,
            )


def _gather_in_rank_order(local: Tensor, trainer: pl.Trainer) -> Tensor:
    """Every rank's rows, concatenated in rank order (shards may differ in size, or be empty)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) or trainer.world_size == 1:
        return local
    world = trainer.world_size
    size = torch.tensor([local.shape[0]], device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    torch.distributed.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = local.new_zeros((max(max(counts), 1), *local.shape[1:]))
    padded[: local.shape[0]] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:c] for g, c in zip(gathered, counts)])


def _check_int(name: str, value: Any, minimum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}{why}, got {value!r}.")


def _check_range(value_range: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"`value_range` must be a pair (low, high) of numbers, got {value_range!r}.") from None
    if not (low < high and torch.isfinite(torch.tensor([low, high])).all()):
        raise ValueError(f"`value_range` must be finite with low < high, got {value_range!r}.")
    return low, high


def _chunks(total: int, size: int) -> Iterator[int]:
    """Chunk sizes of ``size`` (the last one smaller) adding up to ``total``."""
    for start in range(0, total, size):
        yield min(size, total - start)


def _first_loader(loaders: Any) -> Any:
    if isinstance(loaders, (list, tuple)):
        return loaders[0] if loaders else None
    if isinstance(loaders, dict):
        return next(iter(loaders.values()), None)
    return loaders


def _real_from_batch(pl_module: pl.LightningModule, batch: Any) -> Tensor:
    """The real samples of a batch, as the module finds them (``real_from_batch``), else by GAN's rules."""
    hook = getattr(pl_module, "real_from_batch", None)
    if callable(hook):
        return hook(batch)
    samples = samples_of(batch)
    if samples is not None:
        return samples
    raise TypeError(
        f"Cannot find the real samples in a batch of type {type(batch).__name__}: expected a tensor, a "
        "(samples, ...) tuple, a dict with an 'image' tensor, or a module with a `real_from_batch` method."
    )


@contextlib.contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Seeds the CPU generator and ``device``'s inside a forked RNG, restoring both afterwards."""
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
