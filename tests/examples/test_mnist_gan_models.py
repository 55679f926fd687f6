"""examples/mnist_gan.py with the SNGAN and ConditionalGAN models: their defaults, and short real runs."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import yaml
from example_runner import MNIST_GAN, SMALL_RUN, explain, needs_shared_mnist, run_example
from PIL import Image


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mnist_gan_models_example", MNIST_GAN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def printed_model_config(example, monkeypatch, capsys, tmp_path, args) -> dict:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mnist_gan.py"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        example.main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)["model"]


def test_model_sngan_gets_the_papers_settings_and_stays_unconditional(example, monkeypatch, capsys, tmp_path):
    model = printed_model_config(example, monkeypatch, capsys, tmp_path, ["--model", "SNGAN"])
    args = model["init_args"]
    assert model["class_path"] == "lightning_gan.SNGAN"
    assert (args["loss"], args["n_critic"], args["lr_d"], args["betas"]) == ("hinge", 5, 2e-4, [0.0, 0.9])
    assert args["num_classes"] is None and args["ema_decay"] == 0.999


def test_model_conditional_gan_takes_its_classes_from_the_data(example, monkeypatch, capsys, tmp_path):
    model = printed_model_config(example, monkeypatch, capsys, tmp_path, ["--model", "ConditionalGAN"])
    assert model["class_path"] == "lightning_gan.ConditionalGAN"
    # Linked from the data module at instantiation, like the image shape: not a flag to type.
    assert "num_classes" not in model["init_args"] and "image_shape" not in model["init_args"]
    assert (model["init_args"]["loss"], model["init_args"]["spectral_norm"]) == ("hinge", True)


def small_run(model_args: list[str]) -> list[str]:
    skip = {"--model.features", "--model.latent_dim"}
    rest, i = [], 0
    while i < len(SMALL_RUN):
        if SMALL_RUN[i] in skip:
            i += 2
            continue
        rest.append(SMALL_RUN[i])
        i += 1
    return [*model_args, *rest, "--logger", "csv", "--max_steps", "3", "--max_epochs", "1",
            "--trainer.limit_train_batches", "3"]


@needs_shared_mnist
def test_conditional_gan_trains_on_mnist_and_logs_one_grid_row_per_digit(tmp_path):
    args = small_run(["--model", "ConditionalGAN", "--model.features", "8", "--model.latent_dim", "16"])
    result = run_example(MNIST_GAN, args, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, explain(result)
    checkpoint = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=False)
    assert checkpoint["hyper_parameters"]["num_classes"] == 10
    (grid,) = sorted(tmp_path.glob("lightning_logs/version_0/samples/samples_step*.png"))
    with Image.open(grid) as png:
        assert png.size == (4 * 30 + 2, 10 * 30 + 2)  # --samples.nrow 4 columns, 10 class rows


@needs_shared_mnist
def test_sngan_trains_on_mnist_with_two_cpu_processes(tmp_path):
    args = small_run(["--model", "SNGAN", "--model.generator_features", "8", "--model.discriminator_features", "8",
                      "--model.latent_dim", "16"]) + ["--devices", "2"]
    result = run_example(MNIST_GAN, args, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, explain(result)
    assert "stopped at generator step 3" in result.stderr, explain(result)
    checkpoint = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=False)
    assert checkpoint["hyper_parameters"]["loss"] == "hinge" and checkpoint["hyper_parameters"]["n_critic"] == 5


def test_an_explicit_num_classes_is_kept_not_overridden_by_the_data(example, monkeypatch, capsys, tmp_path):
    model = printed_model_config(example, monkeypatch, capsys, tmp_path,
                                 ["--model", "ConditionalGAN", "--model.num_classes", "12"])
    assert model["init_args"]["num_classes"] == 12
