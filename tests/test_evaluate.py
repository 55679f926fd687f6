"""`python -m lightning_gan.evaluate`: scores a checkpoint of examples/mnist_gan.py, and says what is wrong in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "examples"))
from example_runner import MNIST_GAN, SHARED_MNIST, SMALL_RUN, explain, needs_shared_mnist, run_example  # noqa: E402

DATA = ["--data", "MNISTDataModule", "--data.data_dir", str(SHARED_MNIST), "--data.download", "false",
        "--data.train_split", "test", "--data.holdout", "2000", "--data.val_size", "256"]  # fmt: skip
TOY = ["--data", "ToyDataModule", "--data.name", "ring8"]
SMALL_EVAL = ["--feature_extractor", "small", "--num_samples", "96", "--batch_size", "32", "--kid_subsets", "10",
              "--kid_subset_size", "48", "--is_splits", "2", "--parzen_samples", "64", "--accelerator", "cpu",
              "--devices", "1", "--progress", "false"]  # fmt: skip


def evaluate(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lightning_gan.evaluate", *args], cwd=cwd, capture_output=True, text=True, timeout=180,
        env={**__import__("os").environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""},
    )


@pytest.fixture(scope="module")
def example_checkpoint(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("example")
    run = run_example(MNIST_GAN, [*SMALL_RUN, "--max_steps", "4", "--logger", "csv", "--trainer.limit_val_batches", "0",
                                  "--fid.enabled", "false", "--parzen.enabled", "false", "--samples.enabled", "false",
                                  "--checkpoint.monitor", "null"], cwd=cwd, timeout=150)  # fmt: skip
    assert run.returncode == 0, explain(run)
    return cwd / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


@needs_shared_mnist
def test_the_evaluator_scores_an_example_checkpoint_and_writes_the_protocol(example_checkpoint, tmp_path):
    out = tmp_path / "scores.json"
    ais = ["--ais_points", "6", "--ais_steps", "4", "--ais_chains", "2", "--ais_bdmc_points", "2"]
    run = evaluate([str(example_checkpoint), *DATA, *SMALL_EVAL, *ais, "--metrics", "fid,kid,is,pr,parzen,ais", "--out",
                    str(out)], tmp_path)  # fmt: skip
    assert run.returncode == 0, explain(run)
    result = json.loads(out.read_text())
    metrics, protocol = result["metrics"], result["protocol"]
    for name in ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "parzen_log_likelihood",
                 "ais_log_likelihood", "ais_bdmc_gap"):
        assert isinstance(metrics[name], float) and metrics[name] == metrics[name], name
    assert 0.0 <= metrics["precision"] <= 1.0 and 0.0 <= metrics["recall"] <= 1.0
    assert metrics["fid"] > 0 and metrics["is_mean"] >= 1.0
    assert protocol["class"] == "lightning_gan.modules.presets.DCGAN" and protocol["generator"] == "ema"
    assert protocol["num_samples"] == 96 and protocol["real_count"] == 256 and protocol["real_split"] == "val"
    assert protocol["extractor"] == "small-random-conv" and len(protocol["weights_sha256"]) == 64
    assert protocol["package_version"] and protocol["global_step"] == 4
    assert protocol["parzen"]["units"] == "pixels in [0, 1]"
    assert protocol["ais"]["num_points"] == 6 and protocol["ais"]["num_steps"] == 4 and protocol["ais"]["num_chains"] == 2
    assert protocol["ais"]["sigmas"] and metrics["ais_sigma"] in protocol["ais"]["sigmas"]
    assert "fid:" in run.stdout and "ais_log_likelihood:" in run.stdout


def evaluate_here(args: list[str], capsys) -> subprocess.CompletedProcess:
    """``main(args)`` in this process: the error paths end before any Trainer, and an interpreter start is ~5 s."""
    from lightning_gan.evaluate import main

    capsys.readouterr()
    status = main(args)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["main", *args], status, captured.out, captured.err)


def _one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> None:
    assert run.returncode == 2, explain(run)
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in run.stderr, explain(run)
    assert lines and lines[-1].startswith("python -m lightning_gan.evaluate: error:"), explain(run)
    for fragment in fragments:
        assert fragment in lines[-1], explain(run)


def test_a_missing_checkpoint_is_one_line(tmp_path):
    _one_line_error(evaluate([str(tmp_path / "nope.ckpt"), *TOY], tmp_path), "does not exist")


def test_a_checkpoint_of_another_package_is_one_line(tmp_path, capsys):
    class Other(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(Other())
    path = tmp_path / "other.ckpt"
    trainer.save_checkpoint(path)
    _one_line_error(evaluate_here([str(path), *TOY], capsys), "records no lightning_gan class", "--model")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    _one_line_error(evaluate_here([str(garbage), *TOY], capsys), "not a checkpoint")


@needs_shared_mnist
def test_a_wrong_class_is_one_line(example_checkpoint, capsys):
    _one_line_error(evaluate_here([str(example_checkpoint), *DATA, "--model", "lightning_gan.WGANGP"], capsys),
                    "does not match", "DCGAN")


@needs_shared_mnist
def test_the_evaluator_uses_two_processes_and_counts_every_sample_once(example_checkpoint, tmp_path):
    out = tmp_path / "ddp.json"
    args = [str(example_checkpoint), *DATA, *SMALL_EVAL, "--metrics", "fid,kid", "--out", str(out)]
    args[args.index("--devices") + 1] = "2"
    run = evaluate(args, tmp_path)
    assert run.returncode == 0, explain(run)
    result = json.loads(out.read_text())
    assert result["protocol"]["world_size"] == 2 and result["protocol"]["num_samples"] == 96
    assert result["protocol"]["real_count"] == 256
    assert result["metrics"]["fid"] > 0 and result["metrics"]["kid_mean"] == result["metrics"]["kid_mean"]
