"""Shared fixtures: small in-memory data, a quiet CPU trainer, and the repository's copy of the MNIST test split."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

os.environ.setdefault("WANDB_MODE", "offline")

#: The real MNIST test split (torchvision's layout, the two t10k files), a sibling of the repository: it exists
#: for this repository's CI and development machines only, never in a user's command. Tests that read it are
#: marked ``needs_shared_mnist``: they fail when it is missing under CI (LIGHTNING_GAN_REQUIRE_SHARED_DATA=1, set
#: by .ci/run) and are skipped elsewhere, with the reason in pytest's summary (``-rs``).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_MNIST = SHARED_DATA / "MNIST"
needs_shared_mnist = pytest.mark.needs_shared_mnist


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_shared_mnist: reads the MNIST test split in ../shared/data/MNIST")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_shared_mnist") is None or (SHARED_MNIST / "raw").is_dir():
        return
    message = (
        f"the real MNIST test split is not at {SHARED_MNIST / 'raw'} (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; "
        "a sibling of the repository): this test reads real digits and downloads nothing"
    )
    if os.environ.get("LIGHTNING_GAN_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{message}. CI must provide it.", pytrace=False)
    pytest.skip(message)
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

def fraction_near_own_component(gan: Any, data: Any, per_class: int = 1000) -> list[float]:
    """For each class k of a toy mixture, the fraction of the samples a conditional GAN draws for k within 3 std of component k."""
    means, stds = data.distribution.means.float(), data.distribution.stds.float()
    fractions = []
    for k in range(data.num_classes):
        samples = gan.generate(per_class, labels=torch.full((per_class,), k))
        fractions.append(((samples - means[k]).norm(dim=1) < 3 * stds[k]).float().mean().item())
    return fractions


@pytest.fixture(autouse=True)
def _seed() -> None:
    pl.seed_everything(0, verbose=False)
