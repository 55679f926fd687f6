"""lightning_gan.cli: the ``lightning-gan`` console script runs what examples/mnist_gan.py runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "examples"))
from example_runner import MNIST_GAN, SHARED_MNIST, explain, needs_shared_mnist, run_example  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "examples" / "configs" / "mnist_smoke.yaml"
# The smoke config, shorter and on one process, with the repository's copy of the test digits.
SHORT = ["--config", str(SMOKE), "--data.data_dir", str(SHARED_MNIST), "--devices", "1", "--max_steps", "4",
         "--trainer.limit_train_batches", "2", "--logger", "csv", "--trainer.enable_progress_bar", "false"]  # fmt: skip


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("lightning-gan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lightning_gan.cli"]


@needs_shared_mnist
def test_the_console_script_and_the_example_give_the_same_run(tmp_path):
    example_dir, script_dir = tmp_path / "example", tmp_path / "script"
    example_dir.mkdir(), script_dir.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "PYTHONWARNINGS": "ignore"}
    # The console script in the background while the example runs: two cores, half the wall time.
    by_script = subprocess.Popen([*_console_script(), "fit", *SHORT], cwd=script_dir, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    by_example = run_example(MNIST_GAN, SHORT, cwd=example_dir, timeout=180)
    _, script_stderr = by_script.communicate(timeout=180)
    assert by_example.returncode == 0, explain(by_example)
    assert by_script.returncode == 0, script_stderr[-4000:]
    assert "lightning-gan: stopped at generator step 4" in script_stderr
    states = [torch.load(d / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu",
                         weights_only=True)["state_dict"] for d in (example_dir, script_dir)]  # fmt: skip
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_the_example_is_a_short_file_over_the_package_cli():
    lines = MNIST_GAN.read_text().splitlines()
    assert len(lines) < 40 and "from lightning_gan.cli import main" in lines


@needs_shared_mnist
def test_the_console_script_trains_a_subclass_defined_in_a_test_module(tmp_path):
    (tmp_path / "my_package.py").write_text(
        "import torch\nfrom lightning_gan import DCGAN\n\n"
        "class MyGAN(DCGAN):\n"
        "    '''A least-squares DCGAN: one overridden hook.'''\n\n"
        "    def discriminator_loss(self, real_logits, fake_logits):\n"
        "        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()\n"
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    result = subprocess.run([*_console_script(), "fit", *SHORT, "--model", "my_package.MyGAN", "--model.features", "8",
                             "--model.latent_dim", "16"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)  # fmt: skip
    assert checkpoint["lightning_gan"]["class"] == "my_package.MyGAN" and checkpoint["global_step"] == 4


def test_the_console_script_hands_evaluate_to_the_evaluator_and_refuses_unknown_input(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    missing = subprocess.run([*_console_script(), "evaluate", str(tmp_path / "none.ckpt"), "--data", "MNISTDataModule"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "python -m lightning_gan.evaluate: error: checkpoint" in missing.stderr
    assert "does not exist" in missing.stderr
