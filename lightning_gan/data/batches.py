"""What a batch of this package's data looks like, in one place: its samples are found here."""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor

__all__ = ["samples_of"]


def samples_of(batch: Any) -> Optional[Tensor]:
    """The samples of a batch: the batch itself, its first element, or its ``"image"`` entry; else ``None``.

    Example:
        >>> import torch
        >>> samples_of((torch.zeros(2, 3), torch.tensor([0, 1]))).shape
        torch.Size([2, 3])
        >>> samples_of({"label": torch.zeros(2)}) is None
        True
    """
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("image"), Tensor):
        return batch["image"]
    return None
