"""GenerativeMetricsCallback: FID, KID, IS and precision/recall from one feature pass, exact under DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cpu_trainer
from torch import nn

from lightning_gan import DCGAN
from lightning_gan.callbacks.generative_metrics import GenerativeMetricsCallback
from lightning_gan.data.tensors import TensorDataModule

DDP_SCRIPT = Path(__file__).with_name("ddp_generative_metrics_script.py")
KEYS = ("val/fid", "val/kid_mean", "val/kid_std", "val/is_mean", "val/is_std", "val/precision", "val/recall")


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.net(x)


def test_all_metrics_are_logged_from_one_pass_per_image():
    extractor = Recorder()
    callback = GenerativeMetricsCallback(num_samples=48, batch_size=16, feature_extractor=extractor, kid_subsets=5,
                                         kid_subset_size=24, is_splits=2)
    trainer = cpu_trainer(max_epochs=2, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    data = TensorDataModule(torch.rand(32, 1, 28, 28) * 2 - 1, val=torch.rand(40, 1, 28, 28) * 2 - 1, batch_size=8)
    trainer.fit(DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4), datamodule=data)
    for key in KEYS:
        assert math.isfinite(trainer.callback_metrics[key].item()), key
        assert callback.last_values[key] == pytest.approx(trainer.callback_metrics[key].item(), rel=1e-6)
    assert 0 <= callback.last_values["val/precision"] <= 1 and callback.last_values["val/is_mean"] >= 1
    # probe (1), the real set once (40 = 16 + 16 + 8), then 48 samples in 3 chunks per epoch, each embedded once
    assert extractor.sizes == [1, 16, 16, 8] + [16, 16, 16] * 2


def test_kid_subset_larger_than_the_samples_is_refused_at_construction():
    with pytest.raises(ValueError, match="kid_subset_size"):
        GenerativeMetricsCallback(num_samples=100, kid_subset_size=1000)
    GenerativeMetricsCallback(metrics=("fid",), num_samples=100)  # no KID, no constraint


def test_two_cpu_ranks_equal_one_process_for_every_metric(tmp_path):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(DDP_SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    reference = ranks[0]["reference"]
    for report in ranks:
        assert set(report["values"]) == set(KEYS)
        for key in KEYS:
            assert report["values"][key] == pytest.approx(reference[key], rel=1e-6, abs=1e-12), key
            assert report["logged"][key] == pytest.approx(reference[key], rel=1e-6, abs=1e-7), key


def test_the_cache_keeps_the_real_features_for_kid_and_precision_recall(tmp_path):
    extractor = Recorder()
    data = TensorDataModule(torch.rand(32, 1, 28, 28) * 2 - 1, val=torch.rand(40, 1, 28, 28) * 2 - 1, batch_size=8)

    def run() -> GenerativeMetricsCallback:
        torch.manual_seed(0)  # the same model, so the same samples, in both runs
        callback = GenerativeMetricsCallback(num_samples=48, batch_size=16, feature_extractor=extractor, kid_subsets=5,
                                             kid_subset_size=24, is_splits=2, cache_dir=tmp_path, dataset_name="noise")
        trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
        trainer.fit(DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4), datamodule=data)
        return callback

    first = run()
    assert first.protocol["real_from_cache"] is False and extractor.sizes.count(8) == 1
    extractor.sizes.clear()
    second = run()
    assert second.protocol["real_from_cache"] is True and 8 not in extractor.sizes  # the real set not embedded
    for key in KEYS:
        assert second.last_values[key] == pytest.approx(first.last_values[key], rel=1e-9, abs=1e-12), key


def test_evaluating_leaves_training_randomness_alone():
    # Reading the real set, fingerprinting it and drawing latents must not touch the global random stream:
    # a run with the callback trains exactly the weights of a run without it.
    weights = []
    data = TensorDataModule(torch.rand(32, 1, 28, 28) * 2 - 1, val=torch.rand(40, 1, 28, 28) * 2 - 1, batch_size=8)
    for callbacks in ([], [GenerativeMetricsCallback(num_samples=48, batch_size=16, feature_extractor=Recorder(),
                                                     kid_subsets=5, kid_subset_size=24, is_splits=2)]):
        torch.manual_seed(0)
        gan = DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4)
        trainer = cpu_trainer(max_epochs=2, limit_train_batches=2, num_sanity_val_steps=0, callbacks=callbacks)
        trainer.fit(gan, datamodule=data)
        weights.append(torch.cat([p.detach().flatten() for p in gan.generator.parameters()]))
    assert torch.equal(weights[0], weights[1])
