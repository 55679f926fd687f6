"""Shared by the example tests: run ``examples/*.py`` in a subprocess, read an offline W&B run back."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional


REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
MNIST_GAN = EXAMPLES / "mnist_gan.py"
from conftest import SHARED_MNIST, needs_shared_mnist  # noqa: F401  (re-exported; tests/ is on sys.path)

# A DCGAN small enough to train in seconds on two CPU cores, on the shared test split (8,000 training images,
# 256 validation images), with the small FID extractor and small metric sample counts.
SMALL_RUN = [
    "--accelerator", "cpu",
    "--data.data_dir", str(SHARED_MNIST),
    "--data.train_split", "test",
    "--data.holdout", "2000",
    "--data.val_size", "256",
    "--data.batch_size", "32",
    "--model.features", "8",
    "--model.latent_dim", "16",
    "--fid.feature_extractor", "small",
    "--fid.num_samples", "128",
    "--fid.batch_size", "64",
    "--parzen.num_samples", "128",
    "--samples.num_samples", "16",
    "--samples.nrow", "4",
    "--trainer.limit_val_batches", "2",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


def run_example(
    script: Path, args: Sequence[str], cwd: Path, timeout: float = 120, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess:
    """Runs ``python script args`` in ``cwd``, W&B offline, and returns the finished process."""
    # No W&B variable of this process: an earlier test's `wandb.init` leaves WANDB_SERVICE pointing at this
    # process's wandb service, which would then write the child's run relative to this process's directory.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    full_env = {**inherited, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def explain(process: subprocess.CompletedProcess) -> str:
    return (
        f"exit code {process.returncode}\n--- stdout ---\n{process.stdout[-4000:]}\n"
        f"--- stderr ---\n{process.stderr[-6000:]}"
    )


def read_wandb_records(path: Path) -> list[Any]:
    """The protobuf records of an offline run's ``run-<id>.wandb`` file.

    wandb >= 0.19 no longer ships a Python reader for it, so this reads the format directly: a 7-byte header
    (``:W&B``, magic 0xBEE1, version 0), then LevelDB-log records in 32 KiB blocks, each a 7-byte header
    (CRC32C, length, type: 1 full, 2 first, 3 middle, 4 last) and a chunk of a serialised ``wandb.proto.Record``.
    """
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    raw = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", raw[:header])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B transaction log"
    position, pending, payloads = header, b"", []
    while position + header <= len(raw):
        if block - position % block < header:  # the rest of a block too small for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[position : position + header])
        position += header
        chunk = raw[position : position + length]
        position += length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
            pending = b""
        elif kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        else:
            raise AssertionError(f"{path}: unexpected record type {kind} at byte {position - length - header}")
    records = []
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records
