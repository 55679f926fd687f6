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
# The callback embeds real and generated images in chunks of FAKE_BATCH; 40 real images end in a chunk of
# REAL_TAIL, which no generated chunk has, so each such call marks one pass over the real set.
REAL_BATCH, FAKE_BATCH, REAL_TAIL = 16, 32, 8


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
        """Passes over the real set."""
        return self.sizes.count(REAL_TAIL)

    @property
    def fake_calls(self) -> int:
        """Chunks of generated samples (each real pass has one full chunk too)."""
        return self.sizes.count(FAKE_BATCH) - self.real_calls


class StepCounter(pl.Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, *args) -> None:
        self.steps += 1


def tiny_dcgan() -> DCGAN:
    return DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4)


def data() -> TensorDataModule:
    # 40 validation images (embedded as 32 + 8); generated samples come in chunks of 32.
    return TensorDataModule(
        torch.rand(64, 1, 28, 28) * 2 - 1, val=torch.rand(40, 1, 28, 28) * 2 - 1, batch_size=REAL_BATCH
    )


def fit(
    callback: FIDCallback, max_epochs: int = 1, model: DCGAN | None = None, datamodule: TensorDataModule | None = None
) -> pl.Trainer:
    trainer = cpu_trainer(max_epochs=max_epochs, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    trainer.fit(model or tiny_dcgan(), datamodule=datamodule or data())
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
    assert extractor.real_calls == 1  # the real set once, not once per epoch
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

    same_data = data()
    fit(callback(), datamodule=same_data)
    assert extractor.real_calls == 1 and len(list(tmp_path.glob("fid-real-*.pt"))) == 1
    extractor.sizes.clear()
    fit(callback(), datamodule=same_data)
    assert extractor.real_calls == 0 and extractor.fake_calls == 2  # a hit: FID computed, real set not embedded

    with torch.no_grad():
        extractor.fid_probe_conv.weight.add_(0.1)  # different weights, different hash
    extractor.sizes.clear()
    fit(callback(), datamodule=same_data)
    assert extractor.real_calls == 1 and len(list(tmp_path.glob("fid-real-*.pt"))) == 2


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


def test_two_cpu_ranks_log_the_same_value_and_count_every_real_image_once(tmp_path):
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
        # 41 real images: Lightning's DistributedSampler would pad the shards to 21 + 21 = 42.
        assert report["real_count"] == 41
        # The union of the two shards has the one-process statistics of all 41 images.
        assert report["mean_error"] < 1e-12 and report["cov_error"] < 1e-12
    # probe (1); contiguous real shards of 21 and 20 in batches of 10; 17 / 16 samples by 10
    assert ranks[0]["sizes"] == [1, 10, 10, 1, 10, 7]
    assert ranks[1]["sizes"] == [1, 10, 10, 10, 6]


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
    module = TensorDataModule((images, torch.arange(64) % 3), val=(images[:40], torch.arange(40) % 3),
                              batch_size=REAL_BATCH)
    trainer.fit(gan, datamodule=module)
    assert math.isfinite(trainer.callback_metrics["val/fid"].item())
    assert extractor.fake_calls == 2 and extractor.real_calls == 1
    generated_labels = torch.cat([labels for labels in drawn if len(labels) == FAKE_BATCH])
    assert len(generated_labels) == 64 and set(generated_labels.tolist()) == {0, 1, 2}


# ------------------------------------------------------------------ the real set: full, fixed, fresh


def _fit_with_cache(images: torch.Tensor, extractor: nn.Module, cache_dir) -> FIDCallback:
    callback = FIDCallback(
        num_samples=64, batch_size=FAKE_BATCH, feature_extractor=extractor, cache_dir=cache_dir, dataset_name="mydata"
    )
    pl.seed_everything(0, verbose=False)  # the same model and samples in every run: only the real side differs
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    trainer.fit(tiny_dcgan(), datamodule=TensorDataModule(images, val=images, batch_size=REAL_BATCH))
    return callback


def test_a_cache_written_for_other_data_under_the_same_name_is_recomputed_not_reused(tmp_path):
    extractor = CountingExtractor()
    data_a = torch.rand(40, 1, 28, 28) * 2 - 1
    data_b = (torch.rand(40, 1, 28, 28) * 2 - 1).clamp(max=0.0)  # same size, other images
    _fit_with_cache(data_a, extractor, tmp_path)
    fresh_b = _fit_with_cache(data_b, extractor, None).last_value
    extractor.sizes.clear()
    with pytest.warns(UserWarning, match="other data.*recomputing"):
        cached_b = _fit_with_cache(data_b, extractor, tmp_path)
    assert extractor.real_calls == 1  # embedded again
    assert cached_b.last_value == pytest.approx(fresh_b, rel=1e-9)
    assert cached_b.protocol["real_from_cache"] is False
    extractor.sizes.clear()
    again = _fit_with_cache(data_b, extractor, tmp_path)  # the file now holds B: a hit
    assert extractor.real_calls == 0 and again.protocol["real_from_cache"] is True
    assert again.last_value == pytest.approx(fresh_b, rel=1e-9)


def test_train_split_real_set_is_used_in_full_and_in_a_fixed_order():
    # 70 training images in loader batches of 16 with drop_last: the loader serves only 64 of them.
    images = torch.rand(70, 1, 28, 28) * 2 - 1
    extractor = CountingExtractor()
    callback = FIDCallback(num_samples=64, batch_size=FAKE_BATCH, feature_extractor=extractor, real_images="train")
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    trainer.fit(tiny_dcgan(), datamodule=TensorDataModule(images, val=images[:16], batch_size=REAL_BATCH))
    mean, covariance, count = callback._metrics["fid"].real_statistics()
    assert count == 70
    with torch.no_grad():
        features = extractor(images).double()
    assert torch.allclose(mean, features.mean(0), rtol=0, atol=1e-12)
    assert torch.allclose(covariance, torch.cov(features.T), rtol=0, atol=1e-12)
    assert callback.protocol["real_count"] == 70 and callback.protocol["real_split"] == "train"


def test_samples_outside_value_range_are_refused_naming_the_observed_range():
    gan = tiny_dcgan()
    generate = gan.generate
    gan.generate = lambda n, z=None: generate(n, z) + 2.0  # type: ignore[method-assign]
    with pytest.raises(ValueError, match=r"generated samples span \[-?\d.*outside `value_range` \(-1, 1\)"):
        fit(FIDCallback(num_samples=8, batch_size=8, feature_extractor=CountingExtractor()), model=gan)


def test_a_sigmoid_generator_is_scored_in_its_own_value_range():
    # Samples and data in [0, 1]: value_range=(0, 1) maps them to pixels 0..255, as they should be.
    gan = tiny_dcgan()
    generate = gan.generate
    gan.generate = lambda n, z=None: (generate(n, z) + 1) / 2  # type: ignore[method-assign]
    images = torch.rand(48, 1, 28, 28)
    seen: list[torch.Tensor] = []

    class PixelRecorder(nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.flatten(1)[:, :8]

    from lightning_gan.metrics.fid import images_to_uint8

    recorder = PixelRecorder()
    callback = FIDCallback(num_samples=16, batch_size=16, feature_extractor=recorder, value_range=(0.0, 1.0))
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0, callbacks=[callback])
    trainer.fit(gan, datamodule=TensorDataModule(images, val=images, batch_size=REAL_BATCH))
    assert math.isfinite(callback.last_value)
    assert int(images_to_uint8(images, (0.0, 1.0)).min()) == 0
    # With the default (-1, 1) the same real images would only reach pixels 128..255: warned.
    with pytest.warns(UserWarning, match=r"value_range=\(0, 1\)"):
        cpu_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0,
                    callbacks=[FIDCallback(num_samples=16, batch_size=16, feature_extractor=PixelRecorder())]).fit(
            tiny_dcgan(), datamodule=TensorDataModule(images, val=images, batch_size=REAL_BATCH))


@pytest.mark.parametrize("value_range", [(1.0, -1.0), (0.0, float("inf")), "wide"])
def test_bad_value_range_is_refused(value_range):
    with pytest.raises(ValueError, match="value_range"):
        FIDCallback(value_range=value_range)
