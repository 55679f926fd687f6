"""Shared fixtures: small in-memory data and a quiet CPU trainer."""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

os.environ.setdefault("WANDB_MODE", "offline")
warnings.filterwarnings("ignore", ".*does not have many workers.*")


def batch_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True) -> DataLoader:
    """A loader that slices whole batches (no per-sample Python work), yielding ``(x, ...)`` tuples."""
    dataset = TensorDataset(*tensors)
    sampler = RandomSampler(dataset) if shuffle else range(len(dataset))
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=True))


def cpu_trainer(**kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


@pytest.fixture(autouse=True)
def _seed() -> None:
    pl.seed_everything(0, verbose=False)
