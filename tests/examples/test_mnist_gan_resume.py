"""examples/mnist_gan.py stopped after a checkpoint and rerun with ``--ckpt_path last`` goes on from the saved step."""

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


def test_a_stopped_run_resumes_from_its_last_checkpoint(tmp_path):
    first = run_example(MNIST_GAN, [*RESUMABLE, "--max_steps", "10"], cwd=tmp_path, timeout=120)
    assert first.returncode == 0, explain(first)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 10

    second = run_example(MNIST_GAN, [*RESUMABLE, "--max_steps", "20", "--ckpt_path", "last"], cwd=tmp_path, timeout=120)
    assert second.returncode == 0, explain(second)
    assert "stopped at generator step 20" in second.stderr, explain(second)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 20

    # The first run logged generator steps 0-9; the second went on at 10 instead of starting again at 0.
    assert logged_steps(tmp_path / "lightning_logs" / "version_0" / "metrics.csv") == list(range(10))
    assert logged_steps(tmp_path / "lightning_logs" / "version_1" / "metrics.csv") == list(range(10, 20))
