"""examples/mnist_gan.py as a command line: config round trip, model choice, short flags, the small extractor."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml
from example_runner import MNIST_GAN

from lightning_gan import _wandb, cli


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mnist_gan_example", MNIST_GAN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture()
def print_config(example, monkeypatch, capsys, tmp_path):
    """``mnist_gan.py ARGS --print_config`` run in this process (fast: no interpreter start-up): its stdout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mnist_gan.py"])

    def run(args) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            example.main([*args, "--print_config"])
        assert exit_info.value.code in (0, None)
        return capsys.readouterr().out

    return run


# ------------------------------------------------------------------------------------------------ the config


def test_print_config_round_trips_through_a_yaml_file(print_config, tmp_path):
    first = print_config(["--model.lr_g", "3e-4", "--devices", "2", "--accelerator", "cpu", "--logger", "wandb",
                          "--fid.feature_extractor", "small", "--data.train_split", "test", "--data.holdout", "2000",
                          "--seed_everything", "7", "--ckpt_path", "last"])  # fmt: skip
    (tmp_path / "run.yaml").write_text(first)
    second = print_config(["--config", "run.yaml"])
    assert second == first
    config = yaml.safe_load(first)
    assert config["model"]["class_path"] == "lightning_gan.DCGAN"
    assert config["model"]["init_args"]["lr_g"] == 3e-4 and config["model"]["init_args"]["ema_decay"] == 0.999
    assert "image_shape" not in config["model"]["init_args"]  # linked from the data module
    assert config["trainer"]["logger"]["class_path"].endswith("WandbLogger")
    assert config["fid"]["feature_extractor"] == "small" and config["seed_everything"] == 7
    assert config["checkpoint"]["monitor"] == "val/fid" and config["checkpoint"]["save_last"] is True
    # Flags after --config still win.
    third = yaml.safe_load(print_config(["--config", "run.yaml", "--model.lr_d", "1e-3"]))
    assert third["model"]["init_args"]["lr_d"] == 1e-3 and third["model"]["init_args"]["lr_g"] == 3e-4


def test_choosing_another_model_gets_its_own_defaults(print_config):
    config = yaml.safe_load(print_config(["--model", "WGANGP", "--model.lr_g", "2e-4"]))
    args = config["model"]["init_args"]
    assert config["model"]["class_path"] == "lightning_gan.WGANGP"
    # WGAN-GP's own defaults, not DCGAN's carried over (jsonargparse would otherwise keep them)...
    assert (args["loss"], args["n_critic"], args["gp_weight"], args["lr_d"]) == ("wasserstein", 5, 10.0, 1e-4)
    assert args["betas"] == [0.0, 0.9]
    # ...with the flags given and the example's moving-average default.
    assert args["lr_g"] == 2e-4 and args["ema_decay"] == 0.999


def test_a_users_own_subclass_by_import_path(print_config, tmp_path, monkeypatch):
    (tmp_path / "my_gans.py").write_text(
        "from lightning_gan import DCGAN\n\n"
        "class LeastSquaresDCGAN(DCGAN):\n"
        "    def discriminator_loss(self, real_logits, fake_logits):\n"
        "        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = yaml.safe_load(print_config(["--model", "my_gans.LeastSquaresDCGAN", "--model.features", "16"]))
    assert config["model"]["class_path"] == "my_gans.LeastSquaresDCGAN"
    assert config["model"]["init_args"]["features"] == 16


def test_short_flags_stand_for_trainer_flags(example):
    assert cli.expand_aliases(["--devices", "4", "--accelerator=cpu", "--model.lr_g", "1e-3"]) == [
        "--trainer.devices", "4", "--trainer.accelerator", "cpu", "--model.lr_g", "1e-3",
    ]  # fmt: skip
    assert cli.expand_aliases(["--logger", "wandb"])[:2] == ["--trainer.logger", "WandbLogger"]
    assert cli.expand_aliases(["--logger=csv"])[:2] == ["--trainer.logger", "CSVLogger"]
    assert cli.expand_aliases(["--trainer.devices", "2"]) == ["--trainer.devices", "2"]


@pytest.mark.parametrize(
    ("accelerator", "devices", "nodes", "expected"),
    [("cpu", 2, 1, 2), ("cpu", "2", 1, 2), ("cpu", "auto", 1, 1), ("gpu", [0, 1, 2], 1, 3), ("gpu", "0,1", 2, 4),
     ("cpu", 1, 1, 1)],
)  # fmt: skip
def test_several_processes_train_with_gan_ddp(example, accelerator, devices, nodes, expected):
    trainer = SimpleNamespace(accelerator=accelerator, devices=devices, num_nodes=nodes)
    assert cli._process_count(trainer) == expected


def test_the_small_feature_extractor_is_fixed_and_takes_any_channels():
    from lightning_gan.metrics import SmallFeatureExtractor

    a, b = SmallFeatureExtractor(), SmallFeatureExtractor()
    images = torch.rand(5, 3, 32, 32) * 2 - 1
    assert torch.equal(a(images), b(images)) and a(images).shape == (5, a.num_features)
    assert a(torch.rand(2, 1, 28, 28)).shape == (2, 128)
    assert not any(p.requires_grad for p in a.parameters())


@pytest.mark.parametrize("name", ["mnist_dcgan", "mnist_wgangp", "mnist_smoke", "mnist_sngan", "mnist_conditional", "mnist_cpu"])
def test_the_shipped_configs_parse(print_config, name):
    path = MNIST_GAN.parent / "configs" / f"{name}.yaml"
    config = yaml.safe_load(print_config(["--config", str(path)]))
    shipped = yaml.safe_load(path.read_text())
    assert config["model"]["class_path"] == shipped["model"]["class_path"]
    for key, value in shipped["model"].get("init_args", {}).items():
        assert config["model"]["init_args"][key] == value, key
    if name == "mnist_wgangp":  # the class's own defaults fill what the file leaves out
        assert config["model"]["init_args"]["n_critic"] == 5 and config["model"]["init_args"]["loss"] == "wasserstein"
    if name == "mnist_sngan":
        assert config["model"]["init_args"]["n_critic"] == 5 and config["model"]["init_args"]["loss"] == "hinge"
    if name == "mnist_conditional":  # linked from the data module, so not in the printed model arguments
        assert "num_classes" not in config["model"]["init_args"]


def wandb_spec(**init_args):
    from jsonargparse import Namespace

    return Namespace(class_path="pytorch_lightning.loggers.WandbLogger", init_args=Namespace(**init_args))


def test_wandb_without_an_api_key_goes_offline_and_says_so(example, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))  # not the user's `wandb login`
    note = _wandb._prepare_wandb(wandb_spec(save_dir="runs"))
    assert os.environ["WANDB_MODE"] == "offline"
    assert "no W&B API key" in note and "wandb sync runs/wandb/offline-run-*" in note and "\n" not in note


def test_wandb_with_a_key_but_no_server_goes_offline(example, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("WANDB_MODE", raising=False)
    note = _wandb._prepare_wandb([wandb_spec(save_dir=".")])
    assert os.environ["WANDB_MODE"] == "offline" and "cannot reach 127.0.0.1:9" in note


def test_other_loggers_leave_wandb_alone(example, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert _wandb._prepare_wandb(None) is None and _wandb._prepare_wandb(False) is None
    assert "WANDB_MODE" not in os.environ
