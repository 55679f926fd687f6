"""Batches per second: TensorDataModule's whole-batch slicing vs torchvision MNIST with per-sample transforms.

The baseline is the usual way to feed a GAN: ``torchvision.datasets.MNIST`` with
``ToTensor() + Normalize((0.5,), (0.5,))`` through a ``DataLoader`` (batch 128, shuffled). The package
serves the same digits, held as uint8 in memory, through :class:`lightning_gan.data.MNISTDataModule`
(the same path as ``TensorDataModule``). Goal: at least 20x the baseline's batches per second.

Uses the real MNIST test split from ``shared/data/MNIST`` (offline), or ``--data_dir`` with torchvision's
layout. ``python benchmarks/data_pipeline.py [--device cuda]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from lightning_gan.data import MNISTDataModule

GOAL = 20.0
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "MNIST"


def batches_per_second(loader, device: torch.device, max_batches: int) -> float:
    start, count = time.perf_counter(), 0
    for images, labels in loader:
        images.to(device, non_blocking=True)
        count += 1
        if count == max_batches:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def torchvision_root(data_dir: Path, scratch: Path) -> Path:
    """torchvision's MNIST wants all four unzipped files under ``<root>/MNIST/raw`` even to read one split.

    Only the test split is offline here: unzip it, and stand its copies in for the training files
    (``train=False`` never reads them).
    """
    raw = scratch / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (data_dir / "raw").glob("t10k-*.gz"):
        with gzip.open(gz) as source, open(raw / gz.stem, "wb") as target:
            shutil.copyfileobj(source, target)
        train_name = raw / gz.stem.replace("t10k", "train")
        if not train_name.exists():
            shutil.copy(raw / gz.stem, train_name)
    return scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as scratch:
        baseline_dataset = datasets.MNIST(
            torchvision_root(args.data_dir, Path(scratch)), train=False, download=False,
            transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]),
        )
        baseline = DataLoader(baseline_dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)
        data = MNISTDataModule(args.data_dir, batch_size=args.batch_size, download=False, train_split="test",
                               holdout=0, val_size=0)
        data.setup("fit")
        package = data.train_dataloader()
        n = min(len(baseline), len(package))
        base_rates, package_rates = [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both sides alike
            base_rates.append(batches_per_second(baseline, device, n))
            package_rates.append(batches_per_second(package, device, n))
    base, fast = statistics.median(base_rates), statistics.median(package_rates)
    ratio = fast / base
    print(f"torchvision MNIST + per-sample transforms: {base:9.1f} batches/s")
    print(f"lightning_gan in-memory batches:           {fast:9.1f} batches/s")
    print(f"ratio {ratio:.1f}x  (goal >= {GOAL}x)  {'MET' if ratio >= GOAL else 'NOT MET'}")
    print(json.dumps({"benchmark": "data_pipeline", "device": args.device, "batch_size": args.batch_size,
                      "baseline_batches_per_s": base, "package_batches_per_s": fast, "ratio": ratio, "goal": GOAL}))


if __name__ == "__main__":
    main()
