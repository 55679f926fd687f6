"""examples/mnist_gan.py: each run in its own folder, and ``--ckpt_path last`` goes on from the most recent run's last step."""

from __future__ import annotations

import csv

import torch
from example_runner import MNIST_GAN, SMALL_RUN, explain, needs_shared_mnist, run_example

pytestmark = needs_shared_mnist

# Two processes, a checkpoint every 5 generator steps, every step logged to CSV; no metric callbacks (speed).
RESUMABLE = [*SMALL_RUN, "--devices", "2", "--logger", "csv", "--checkpoint.every_n_train_steps", "5",
             "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0",
             "--fid.enabled", "false", "--parzen.enabled", "false", "--samples.enabled", "false"]  # fmt: skip


def logged_steps(metrics_csv) -> list[int]:
    with open(metrics_csv, newline="") as f:
        return sorted({int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss_g")})


def _step(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_runs_are_versioned_and_ckpt_path_last_resumes_the_most_recent_run(tmp_path):
    # The first two runs on one process (faster); the resumed one on two, whose second process must find the same file.
    single = ["1" if i and RESUMABLE[i - 1] == "--devices" else arg for i, arg in enumerate(RESUMABLE)]
    first = run_example(MNIST_GAN, [*single, "--max_steps", "10"], cwd=tmp_path, timeout=120)
    assert first.returncode == 0, explain(first)
    second = run_example(MNIST_GAN, [*single, "--max_steps", "5"], cwd=tmp_path, timeout=120)
    assert second.returncode == 0, explain(second)
    # Two runs in a row: two folders, nothing shared, no last-v1.ckpt.
    runs = tmp_path / "lightning_logs"
    assert _step(runs / "version_0" / "checkpoints" / "last.ckpt") == 10
    assert _step(runs / "version_1" / "checkpoints" / "last.ckpt") == 5
    assert not list(tmp_path.rglob("last-v*.ckpt"))

    third = run_example(MNIST_GAN, [*RESUMABLE, "--max_steps", "8", "--ckpt_path", "last"], cwd=tmp_path, timeout=120)
    assert third.returncode == 0, explain(third)
    resumed_from = runs / "version_1" / "checkpoints" / "last.ckpt"
    assert f"mnist_gan.py: resuming from {resumed_from} (the most recent run's last checkpoint)" in third.stderr
    assert "stopped at generator step 8" in third.stderr, explain(third)
    assert _step(runs / "version_2" / "checkpoints" / "last.ckpt") == 8
    # The resumed run went on at step 5 (both processes from the same file) instead of starting again at 0.
    assert logged_steps(runs / "version_1" / "metrics.csv") == list(range(5))
    assert logged_steps(runs / "version_2" / "metrics.csv") == list(range(5, 8))
