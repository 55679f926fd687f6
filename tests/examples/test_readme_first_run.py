"""The README's first MNIST command, run as a new user would: a copy of the repository with no ../shared beside it.

Offline (a proxy that refuses every connection, so nothing can be downloaded even on a machine with internet)
and with an empty ./data, it stops with one line naming the four files, their folder and the flag; with the
digits copied where that line says (only the test split is at hand here, hence ``--data.train_split test``),
the same command trains.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from example_runner import REPO, SHARED_MNIST, explain, needs_shared_mnist, run_example

OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}  # fmt: skip


def _readme_cpu_command() -> list[str]:
    text = (REPO / "README.md").read_text()
    (line,) = [l for l in text.splitlines() if l.startswith("python examples/mnist_gan.py --config examples/configs/mnist_cpu")]
    assert "shared" not in text, "the README must not name the repository's test-only data"
    return line.split()[1:]  # after `python`


def _fresh_copy(tmp_path: Path) -> Path:
    clone = tmp_path / "lightning_gan_clone"
    shutil.copytree(REPO / "examples", clone / "examples")
    shutil.copy(REPO / "README.md", clone / "README.md")
    assert not (clone.parent / "shared").exists()
    return clone


@needs_shared_mnist
def test_the_readme_cpu_command_explains_missing_data_then_trains_once_the_files_are_there(tmp_path):
    clone = _fresh_copy(tmp_path)
    script, *args = _readme_cpu_command()
    quick = ["--max_steps", "6", "--trainer.val_check_interval", "3", "--parzen.num_samples", "64",
             "--data.val_size", "64", "--trainer.enable_progress_bar", "false"]  # fmt: skip

    offline = run_example(clone / script, [*args, *quick], cwd=clone, timeout=180, env=OFFLINE)
    assert offline.returncode != 0
    lines = [line for line in offline.stderr.splitlines() if line.startswith("mnist_gan.py:")]
    assert len(lines) == 1 and "Traceback" not in offline.stderr, explain(offline)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in lines[0]
    assert re.search(r"into data/MNIST/raw", lines[0]) and "--data.data_dir" in lines[0], lines[0]
    assert not (clone / "data").exists()  # no empty folder left behind

    shutil.copytree(SHARED_MNIST / "raw", clone / "data" / "MNIST" / "raw")
    trained = run_example(clone / script, [*args, *quick, "--data.train_split", "test", "--data.holdout", "2000"],
                          cwd=clone, timeout=180, env=OFFLINE)  # fmt: skip
    assert trained.returncode == 0, explain(trained)
    run = clone / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and list((run / "samples").glob("*.png"))
    assert "val/parzen_log_likelihood" in (run / "metrics.csv").read_text()
