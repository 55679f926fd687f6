"""examples/mnist_gan.py with two CPU processes (gan_ddp) and W&B offline: the run logs what it should, from rank 0."""

from __future__ import annotations

import json

import pytest
from example_runner import MNIST_GAN, SMALL_RUN, explain, needs_shared_mnist, read_wandb_records, run_example

pytestmark = needs_shared_mnist


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("wandb_run")
    args = [*SMALL_RUN, "--devices", "2", "--max_steps", "30", "--logger", "wandb",
            "--trainer.limit_train_batches", "10", "--trainer.log_every_n_steps", "5"]  # fmt: skip
    process = run_example(MNIST_GAN, args, cwd=cwd, timeout=150)
    assert process.returncode == 0, explain(process)
    runs = sorted((cwd / "lightning_logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run (rank 0 only), found {runs}\n{explain(process)}"
    (log,) = runs[0].glob("run-*.wandb")
    return process, runs[0], read_wandb_records(log)


def history(records) -> list[dict]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


def test_the_run_trains_under_ddp_and_says_it_is_offline(wandb_run):
    process, _, _ = wandb_run
    lines = [line for line in process.stderr.splitlines() if line.startswith("mnist_gan.py:")]
    offline = [line for line in lines if "W&B logs offline" in line]
    assert len(offline) == 1 and "wandb sync lightning_logs/wandb/offline-run-*" in offline[0], lines
    assert any("stopped at generator step 30" in line for line in lines), lines


def test_scalars_are_logged_on_the_generator_step_axis(wandb_run):
    _, _, records = wandb_run
    rows = history(records)
    keys = set().union(*rows)
    for key in ("train/loss_g", "train/loss_d", "val/fid", "val/parzen_log_likelihood", "val/d_real"):
        assert key in keys, sorted(keys)
    # Every row carries the x-axis WandbLogger declares; it counts generator steps (30 in all, 3 epochs of 10).
    assert all("trainer/global_step" in row for row in rows)
    fid_steps = [row["trainer/global_step"] for row in rows if "val/fid" in row]
    assert len(fid_steps) == 3, fid_steps
    assert max(row["trainer/global_step"] for row in rows) == 30
    assert all(row["val/fid"] > 0 for row in rows if "val/fid" in row)
    metrics = [r.metric for r in records if r.WhichOneof("record_type") == "metric"]
    assert any(m.glob_name == "*" and m.step_metric == "trainer/global_step" for m in metrics), metrics


def test_sample_grids_are_logged_as_images(wandb_run):
    _, run_dir, records = wandb_run
    images = [row for row in history(records) if row.get("samples/_type") == "images/separated"]
    assert len(images) == 3  # one grid per epoch
    files = sorted((run_dir / "files" / "media" / "images").glob("samples_*.png"))
    assert len(files) == 3
    for row in images:
        assert (run_dir / "files" / row["samples/filenames"][0]).is_file()


def test_hyperparameters_are_logged(wandb_run):
    _, _, records = wandb_run
    config = {}
    for record in records:
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    assert config["lr_g"] == 2e-4 and config["features"] == 8 and config["image_shape"] == [1, 28, 28]
    assert config["cli"]["model"]["class_path"] == "lightning_gan.DCGAN"
    assert str(config["cli"]["trainer"]["devices"]) == "2"
