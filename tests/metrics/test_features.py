"""FeatureExtractor (torch-fidelity's extractors by name, several layers per pass) and weights resolution.

Nothing is downloaded: randomly initialised, He-scaled InceptionV3 and VGG16 state dicts stand in for
the real weights (random_inception.py, random_vgg.py), and downloads are replaced by fakes.
"""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import pytest
import torch
from random_inception import save_random_inception_weights
from random_vgg import save_random_vgg16_weights

from lightning_gan.metrics import fid
from lightning_gan.metrics.features import (
    FeatureExtractor,
    FeatureWeightsNotFoundError,
    default_layers,
    default_weights_path,
    extractor_names,
    metric_layer,
    resolve_weights,
    weights_env_var,
)
from lightning_gan.metrics.fid import InceptionWeightsNotFoundError


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    return save_random_inception_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth")


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory) -> Path:
    return save_random_vgg16_weights(tmp_path_factory.mktemp("vgg") / "random-vgg16.pth")


def images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def torch_fidelity_extractor(name: str, layer: str, weights: Path):
    from torch_fidelity.utils import create_feature_extractor

    return create_feature_extractor(name, [layer], cuda=False, feature_extractor_weights_path=str(weights), verbose=False)


# ------------------------------------------------------------------------------- the same features, one pass


def test_one_inception_pass_gives_torch_fidelitys_pool_features_and_logits(inception_weights):
    # Full size (299 x 299): the features themselves are compared here; 4 images keep it at a few seconds.
    pixels = images(4, 0)
    extractor = FeatureExtractor(weights_path=inception_weights)
    assert extractor.layers == ("2048", "logits_unbiased")
    assert extractor.num_features == {"2048": 2048, "logits_unbiased": 1008}
    features = extractor(pixels)
    assert set(features) == {"2048", "logits_unbiased"}
    for layer in ("2048", "logits_unbiased"):
        (reference,) = torch_fidelity_extractor("inception-v3-compat", layer, inception_weights)(pixels)
        assert features[layer].dtype == torch.float32
        assert features[layer].shape == (4, extractor.num_features[layer])
        assert torch.equal(features[layer], reference), layer
    assert features["2048"].std() > 0.05  # He-scaled random weights: features of O(0.1-1), not collapsed


def test_one_vgg16_pass_gives_torch_fidelitys_features(vgg_weights):
    pixels = images(2, 1)
    extractor = FeatureExtractor("vgg16", layers=["fc2", "fc2_relu"], weights_path=vgg_weights)
    assert extractor.num_features == {"fc2": 4096, "fc2_relu": 4096}
    features = extractor(pixels)
    (reference,) = torch_fidelity_extractor("vgg16", "fc2", vgg_weights)(pixels)  # VGG16 loads slowly: one
    assert torch.equal(features["fc2"], reference)
    assert torch.equal(features["fc2_relu"], features["fc2"].clamp(min=0))
    assert features["fc2"].std() > 0.1
    assert default_layers("vgg16") == ("fc2_relu",)  # torch-fidelity's prc layer


def test_float_and_grey_images_and_eval_mode(inception_weights, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)  # speed: the path is what is tested
    extractor = FeatureExtractor(layers=["2048"], weights_path=inception_weights)
    pixels = images(3, 2)
    signed = pixels.float() / 127.5 - 1.0  # a tanh generator's range
    assert torch.equal(extractor(signed)["2048"], extractor(pixels)["2048"])
    unit = FeatureExtractor(layers=["2048"], weights_path=inception_weights, value_range=(0, 1))
    assert unit.name == "inception-v3-compat-range0_1" and extractor.name == "inception-v3-compat"
    assert torch.equal(unit(pixels.float() / 255)["2048"], extractor(pixels)["2048"])
    grey = pixels[:, :1]
    assert torch.equal(extractor(grey)["2048"], extractor(grey.repeat(1, 3, 1, 1))["2048"])
    extractor.train()
    assert not extractor.training and not extractor.net.training
    with pytest.raises(ValueError, match="shape"):
        extractor(pixels[0])
    with pytest.raises(ValueError, match="NaN"):
        extractor(torch.full((1, 3, 8, 8), float("nan")))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert extractor(pixels)["2048"].dtype == torch.float32


def test_fingerprint_is_the_weights_sha256(inception_weights):
    extractor = FeatureExtractor(layers=["64"], weights_path=inception_weights)
    assert extractor.fingerprint() == hashlib.sha256(inception_weights.read_bytes()).hexdigest()
    assert fid.extractor_fingerprint(extractor) == extractor.fingerprint()
    assert fid.extractor_name(extractor) == "inception-v3-compat"


# -------------------------------------------------------------------------------------------------- names


def test_layers_follow_torch_fidelitys_choice_for_every_extractor_and_metric():
    from torch_fidelity.utils import resolve_feature_layer_for_metric

    for name in extractor_names():
        for metric in ("fid", "kid", "isc", "prc"):
            assert metric_layer(metric, name) == resolve_feature_layer_for_metric(
                metric, feature_extractor=name, **{metric: True}
            )
    assert default_layers("inception-v3-compat") == ("2048", "logits_unbiased")
    assert default_layers("vgg16") == ("fc2_relu",)
    assert default_layers("dinov2-vit-s-14") == ("dinov2",)


def test_unknown_names_and_layers_are_clear_errors(inception_weights):
    with pytest.raises(ValueError, match=r"Unknown feature extractor 'resnet50'.*'inception-v3-compat'.*'vgg16'"):
        FeatureExtractor("resnet50")
    with pytest.raises(ValueError, match=r"Unknown layer 'pool3'.*'2048'.*'logits_unbiased'"):
        FeatureExtractor(layers=["pool3"], weights_path=inception_weights)
    with pytest.raises(ValueError, match="twice"):
        FeatureExtractor(layers=["2048", "2048"], weights_path=inception_weights)
    with pytest.raises(ValueError, match="metric"):
        metric_layer("ppl")


# ------------------------------------------------------------------------------------------------ weights


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for name in extractor_names():
        monkeypatch.delenv(weights_env_var(name), raising=False)
    return tmp_path / "hub"


def test_weights_come_from_path_then_env_var_then_hub_cache(hub_dir, tmp_path, monkeypatch):
    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"x")
    assert resolve_weights("vgg16", explicit) == explicit

    cached = default_weights_path("vgg16")
    assert cached == hub_dir / "checkpoints" / "vgg16-397923af.pth"  # where torchvision's download lands
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"y")
    assert resolve_weights("vgg16") == cached

    from_env = tmp_path / "env.pth"
    from_env.write_bytes(b"z")
    monkeypatch.setenv("LIGHTNING_GAN_VGG16_WEIGHTS", str(from_env))
    assert resolve_weights("vgg16") == from_env  # the variable wins over the cache
    monkeypatch.setenv("LIGHTNING_GAN_VGG16_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(FeatureWeightsNotFoundError, match="LIGHTNING_GAN_VGG16_WEIGHTS"):
        resolve_weights("vgg16")


@pytest.mark.parametrize("name", ["inception-v3-compat", "vgg16", "clip-vit-b-32"])
def test_one_download_attempt_from_torch_fidelitys_url_then_a_clear_error(name, hub_dir, monkeypatch):
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    expected_url = {
        "inception-v3-compat": URL_INCEPTION_V3,
        "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
        "clip-vit-b-32": MODEL_URLS["clip-vit-b-32"],
    }[name]
    expected_hash = {
        "inception-v3-compat": None, "vgg16": "397923af", "clip-vit-b-32": MODEL_METADATA["clip-vit-b-32"]["hash"],
    }[name]
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(InceptionWeightsNotFoundError) as info:  # the FID extractor's error still catches it
        resolve_weights(name)
    assert isinstance(info.value, FeatureWeightsNotFoundError)
    default = default_weights_path(name)
    assert calls == [(expected_url, str(default), expected_hash)]
    message = str(info.value)
    assert expected_url in message and str(default) in message and weights_env_var(name) in message

    def online(url, dst, hash_prefix=None, progress=True):
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", online)
    assert resolve_weights(name) == default and default.read_bytes() == b"weights"
    if name == "clip-vit-b-32":  # torch-fidelity's own cache file name for CLIP
        assert default.name == f"clip-vit-b-32-{MODEL_METADATA['clip-vit-b-32']['hash']}.pt"


def test_inception_env_var_is_shared_with_the_fid_extractor(hub_dir, inception_weights, monkeypatch):
    assert weights_env_var("inception-v3-compat") == fid.WEIGHTS_ENV_VAR
    monkeypatch.setenv(fid.WEIGHTS_ENV_VAR, str(inception_weights))
    assert resolve_weights("inception-v3-compat") == inception_weights
    assert default_weights_path("inception-v3-compat") == hub_dir / "checkpoints" / Path(fid.INCEPTION_WEIGHTS_URL).name


def test_dinov2_takes_no_weights_file_and_says_so(hub_dir, monkeypatch):
    with pytest.raises(ValueError, match="no local weights file.*torch.hub.load"):
        resolve_weights("dinov2-vit-s-14")
    with pytest.raises(ValueError, match="no local weights file"):
        FeatureExtractor("dinov2-vit-s-14", weights_path="/some/file.pth")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(FeatureWeightsNotFoundError, match="dinov2-vit-s-14.*TORCH_HOME"):
        FeatureExtractor("dinov2-vit-s-14")
