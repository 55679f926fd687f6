"""examples/mnist_gan.py where something is missing: the data (one line, no traceback), the Inception weights."""

from __future__ import annotations

from example_runner import MNIST_GAN, SMALL_RUN, explain, needs_shared_mnist, run_example

# No test may download anything: urllib (torchvision's MNIST download, torch hub) honours these, and nothing
# listens on port 9, so every download fails at once, with or without a network.
_NOWHERE = "http://127.0.0.1:9"
NO_NETWORK = {"http_proxy": _NOWHERE, "https_proxy": _NOWHERE, "HTTP_PROXY": _NOWHERE, "HTTPS_PROXY": _NOWHERE,
              "no_proxy": "", "NO_PROXY": ""}  # fmt: skip


def one_line(process) -> str:
    """The example's own lines on stderr: there must be exactly one, and no traceback anywhere."""
    assert "Traceback" not in process.stderr + process.stdout, explain(process)
    lines = [line for line in process.stderr.splitlines() if line.startswith("mnist_gan.py:")]
    assert len(lines) == 1, explain(process)
    return lines[0]


def test_missing_data_without_download_stops_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--accelerator", "cpu", "--data.data_dir", str(empty), "--data.download", "false"]
    process = run_example(MNIST_GAN, args, cwd=tmp_path, timeout=90, env=NO_NETWORK)
    assert process.returncode != 0
    line = one_line(process)
    assert "MNIST 'train' split not found" in line and "--data.data_dir" in line and "--data.download true" in line
    assert not list(tmp_path.rglob("*.ckpt"))


def test_missing_data_that_cannot_be_downloaded_stops_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    process = run_example(MNIST_GAN, ["--accelerator", "cpu", "--data.data_dir", str(empty)],
                          cwd=tmp_path, timeout=90, env=NO_NETWORK)  # fmt: skip
    assert process.returncode != 0
    line = one_line(process)
    assert "could not be downloaded" in line and "--data.data_dir" in line and "--data.train_split test" in line
    assert "FID" not in line  # the missing Inception weights are not the news here


@needs_shared_mnist
def test_without_inception_weights_fid_is_off_and_training_goes_on(tmp_path):
    args = [a for a in SMALL_RUN if a not in ("--fid.feature_extractor", "small")]
    env = {**NO_NETWORK, "LIGHTNING_GAN_INCEPTION_WEIGHTS": str(tmp_path / "none.pth")}
    process = run_example(MNIST_GAN, [*args, "--max_steps", "3", "--trainer.limit_train_batches", "3"], cwd=tmp_path,
                          timeout=120, env=env)  # fmt: skip
    assert process.returncode == 0, explain(process)
    assert "Traceback" not in process.stderr
    fid_lines = [line for line in process.stderr.splitlines() if line.startswith("mnist_gan.py: FID is off")]
    assert len(fid_lines) == 1 and "--fid.weights_path" in fid_lines[0], explain(process)
    assert "stopped at generator step 3" in process.stderr and "best val/fid" not in process.stderr
    assert len(list(tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt"))) == 1
