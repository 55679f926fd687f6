"""FIDCallback end to end on CPU with small extractors: logging, one real pass, cache, errors, DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import cpu_trainer
from torch import nn

from lightning_gan import DCGAN
from lightning_gan.callbacks.fid import FIDCallback
from lightning_gan.data.tensors import TensorDataModule
from lightning_gan.metrics.fid import WEIGHTS_ENV_VAR, InceptionWeightsNotFoundError

DDP_SCRIPT = Path(__file__).with_name("ddp_fid_callback_script.py")
REAL_BATCH, FAKE_BATCH = 16, 32  # distinct sizes tell real from generated extractor calls


class CountingExtractor(nn.Module):
    """A small conv net (16-d features) that records the batch size of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.fid_probe_conv = nn.Conv2d(1, 4, 3, stride=2)
        self.pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.pool(self.fid_probe_conv(x))

    @property
    def real_calls(self) -> int:
        return self.sizes.count(REAL_BATCH)

    @property
    def fake_calls(self) -> int:
        return self.sizes.count(FAKE_BATCH)


class StepCounter(pl.Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, *args) -> None:
        self.steps += 1


def tiny_dcgan() -> DCGAN:
    return DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4)


def data() -> TensorDataModule:
    # 48 validation images = 3 batches of 16; generated samples come in chunks of 32.
    return TensorDataModule(
        torch.rand(64, 1, 28, 28) * 2 - 1, val=torch.rand(48, 1, 28, 28) * 2 - 1, batch_size=REAL_BATCH
    )


def fit(callback: FIDCallback, max_epochs: int = 1, model: DCGAN | None = None) -> pl.Trainer:
    trainer = cpu_trainer(max_epochs=max_epochs, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    trainer.fit(model or tiny_dcgan(), datamodule=data())
    return trainer


def test_fid_is_logged_every_n_epochs_and_the_real_set_is_embedded_once(tmp_path):
    extractor = CountingExtractor()
    callback = FIDCallback(num_samples=64, batch_size=FAKE_BATCH, every_n_epochs=2, feature_extractor=extractor)
    gan = tiny_dcgan()
    keys_before = set(gan.state_dict())
    trainer = fit(callback, max_epochs=4, model=gan)

    value = trainer.callback_metrics["val/fid"]
    assert value.dtype == torch.float32 and math.isfinite(value.item()) and value.item() > 0
    assert callback.last_value == pytest.approx(value.item(), rel=1e-6)
    assert extractor.real_calls == 3  # 48 real images once, not once per epoch
    assert extractor.fake_calls == 2 * 2  # 64 samples in chunks of 32, in epochs 2 and 4 only
    assert not extractor.training

    # The extractor is the callback's, not the module's: not in the state dict or the checkpoint.
    assert set(gan.state_dict()) == keys_before
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert set(checkpoint["state_dict"]) == keys_before
    assert not any("fid_probe" in k for k in checkpoint["state_dict"])


def test_cache_hit_skips_the_real_set_and_new_weights_miss(tmp_path):
    extractor = CountingExtractor()

    def callback() -> FIDCallback:
        return FIDCallback(
            num_samples=64, batch_size=FAKE_BATCH, feature_extractor=extractor, cache_dir=tmp_path, dataset_name="toy"
        )

    fit(callback())
    assert extractor.real_calls == 3 and len(list(tmp_path.glob("fid-real-*.pt"))) == 1
    extractor.sizes.clear()
    fit(callback())
    assert extractor.real_calls == 0 and extractor.fake_calls == 2  # a hit: FID computed, real set not embedded

    with torch.no_grad():
        extractor.fid_probe_conv.weight.add_(0.1)  # different weights, different hash
    extractor.sizes.clear()
    fit(callback())
    assert extractor.real_calls == 3 and len(list(tmp_path.glob("fid-real-*.pt"))) == 2


def test_missing_weights_fail_at_setup_before_any_step(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    for callback, expected in (
        (FIDCallback(weights_path=tmp_path / "missing.pth"), "weights_path"),  # an explicit path
        (FIDCallback(), str(tmp_path / "torch-home" / "hub" / "checkpoints")),  # the default, offline
    ):
        steps = StepCounter()
        trainer = cpu_trainer(max_epochs=1, limit_train_batches=2, callbacks=[callback, steps])
        with pytest.raises(InceptionWeightsNotFoundError) as info:
            trainer.fit(tiny_dcgan(), datamodule=data())
        assert expected in str(info.value) and WEIGHTS_ENV_VAR in str(info.value)
        assert steps.steps == 0 and trainer.global_step == 0

    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(tmp_path / "nowhere.pth"))
    with pytest.raises(InceptionWeightsNotFoundError, match=WEIGHTS_ENV_VAR):
        cpu_trainer(max_epochs=1, callbacks=[FIDCallback()]).fit(tiny_dcgan(), datamodule=data())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_samples=1), "num_samples"),
        (dict(every_n_epochs=0), "every_n_epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(real_images="test"), "real_images"),
        (dict(feature_extractor="inception-v4"), "feature_extractor"),
        (dict(cache_dir="/tmp/x"), "dataset_name"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FIDCallback(**kwargs)


def test_an_extractor_giving_three_dimensional_output_is_refused_with_its_shape():
    callback = FIDCallback(num_samples=8, batch_size=8, feature_extractor=nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match=r"\(1, 2, 26, 26\)"):
        fit(callback)


def test_non_finite_samples_raise():
    gan = tiny_dcgan()
    generate = gan.generate
    gan.generate = lambda n, z=None: generate(n, z) * float("nan")  # type: ignore[method-assign]
    callback = FIDCallback(num_samples=8, batch_size=8, feature_extractor=CountingExtractor())
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit(callback, model=gan)


def test_two_cpu_ranks_log_the_same_value_with_uneven_sample_counts(tmp_path):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(DDP_SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["fid"] == ranks[1]["fid"] and math.isfinite(ranks[0]["fid"])
    for report in ranks:
        assert report["logged"] == pytest.approx(report["fid"], rel=1e-6)
        assert report["real_count"] == 40  # each rank's 20, summed
    # probe (1); the real shard of 20 in loader batches of 16 (split 10 + 6) and 4; 17 / 16 samples by 10
    assert ranks[0]["sizes"] == [1, 10, 6, 4, 10, 7]
    assert ranks[1]["sizes"] == [1, 10, 6, 4, 10, 6]


def test_fid_of_a_conditional_gan_uses_uniformly_drawn_labels():
    from lightning_gan import ConditionalGAN

    gan = ConditionalGAN(num_classes=3, image_shape=(1, 28, 28), latent_dim=8, features=4)
    drawn: list[torch.Tensor] = []
    original = gan.sample_labels
    gan.sample_labels = lambda n: drawn.append(original(n)) or drawn[-1]
    extractor = CountingExtractor()
    callback = FIDCallback(num_samples=64, batch_size=FAKE_BATCH, feature_extractor=extractor)
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    module = TensorDataModule((images, torch.arange(64) % 3), val=(images[:48], torch.arange(48) % 3),
                              batch_size=REAL_BATCH)
    trainer.fit(gan, datamodule=module)
    assert math.isfinite(trainer.callback_metrics["val/fid"].item())
    assert extractor.fake_calls == 2 and extractor.real_calls == 3
    generated_labels = torch.cat([labels for labels in drawn if len(labels) == FAKE_BATCH])
    assert len(generated_labels) == 64 and set(generated_labels.tolist()) == {0, 1, 2}
