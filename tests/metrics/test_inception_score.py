"""InceptionScore: against torch-fidelity (images and logits), against the paper's formula, edge cases.

The multi-process case is tested with KID and precision/recall in test_kid.py
(ddp_feature_metrics_script.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fidelity_inputs import UInt8Images, structured_images
from random_inception import random_inception_state_dict

from lightning_gan.metrics.features import FeatureExtractor
from lightning_gan.metrics.inception_score import InceptionScore, inception_score


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def random_logits(n: int, c: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    return scale * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shuffle, seed, splits", [(True, 2020, 4), (False, 5, 3)])
def test_matches_torch_fidelity_on_the_same_images(tmp_path, monkeypatch, shuffle, seed, splits):
    import torch_fidelity
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # 75 x 75 instead of 299 x 299 in both pipelines (the class attribute both read): a 16th of the cost,
    # the same network and code; test_features.py compares the features at full size.
    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)
    state = random_inception_state_dict(0)
    state["fc.weight"] *= 300.0  # confident logits: an Inception Score well above its minimum of 1
    weights = tmp_path / "random-inception.pth"
    torch.save(state, weights)
    pixels = torch.cat([structured_images(45, "ramp", 0), structured_images(45, "board", 1)])

    reference = torch_fidelity.calculate_metrics(
        input1=UInt8Images(pixels), isc=True, feature_extractor_weights_path=str(weights), cuda=False,
        verbose=False, cache=False, isc_splits=splits, samples_shuffle=shuffle, rng_seed=seed, batch_size=45,
        save_cpu_ram=True,
    )
    extractor = FeatureExtractor(layers=["logits_unbiased"], weights_path=weights)
    metric = InceptionScore(splits=splits, shuffle=shuffle, seed=seed)
    logits = torch.cat([extractor(part)["logits_unbiased"] for part in pixels.split(45)])  # torch-fidelity's batches
    for part in logits.split(16):
        metric.update(part)
    mean, std = metric.compute()
    assert mean.dtype == std.dtype == torch.float64
    assert reference["inception_score_mean"] > 1.2
    errors = (rel(mean.item(), reference["inception_score_mean"]), rel(std.item(), reference["inception_score_std"]))
    print(f"ours {mean.item():.12g} +- {std.item():.6g}; torch-fidelity {reference}; rel {errors}")
    assert errors[0] < 1e-12 and errors[1] < 1e-9


@pytest.mark.parametrize("n, splits", [(100, 10), (97, 7), (5, 5)])
def test_equals_torch_fidelity_on_the_same_logits(n, splits):
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = random_logits(n, 12, n)
    for shuffle in (True, False):
        expected = isc_features_to_metric(logits, splits=splits, shuffle=shuffle, rng_seed=2020)
        mean, std = inception_score(logits, splits=splits, shuffle=shuffle, seed=2020)
        assert rel(mean.item(), expected["inception_score_mean"]) < 1e-12
        assert abs(std.item() - expected["inception_score_std"]) <= 1e-12 * mean.item()


def numpy_inception_score(logits: np.ndarray, splits: int, permutation: np.ndarray) -> tuple[float, float]:
    """Salimans et al. (2016): exp(E_x KL(p(y|x) || p(y))), per split, from scratch in NumPy."""
    logits = logits[permutation].astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    scores = []
    for part in np.array_split(p, splits):  # sizes differ by at most 1, larger parts first
        marginal = part.mean(axis=0)
        kl = np.sum(part * (np.log(part) - np.log(marginal)), axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_matches_a_numpy_reference_of_the_formula():
    n, splits = 120, 6  # n divisible by splits: np.array_split and torch-fidelity's i * n // splits agree
    logits = random_logits(n, 20, 0)
    metric = InceptionScore(splits=splits, seed=9)
    metric.update(logits)
    mean, std = metric.compute()
    ref_mean, ref_std = numpy_inception_score(logits.numpy(), splits, np.random.RandomState(9).permutation(n))
    assert rel(mean.item(), ref_mean) < 1e-6 and rel(std.item(), ref_std) < 1e-6


def test_known_values():
    uniform = InceptionScore(splits=2)
    uniform.update(torch.zeros(10, 7))
    assert uniform.compute()[0].item() == pytest.approx(1.0, abs=1e-12)  # no confidence: the minimum
    one_hot = InceptionScore(splits=1)
    one_hot.update(1e4 * torch.eye(7).repeat(3, 1))  # confident and every class equally often: the maximum
    assert one_hot.compute()[0].item() == pytest.approx(7.0, rel=1e-9)


def test_errors():
    metric = InceptionScore(splits=10)
    metric.update(random_logits(9, 4, 0))
    with pytest.raises(ValueError, match=r"splits.*\(10\).*got 9"):
        metric.compute()
    metric = InceptionScore(splits=2)
    bad = random_logits(10, 4, 0)
    bad[2, 2] = float("inf")
    metric.update(bad)
    with pytest.raises(ValueError, match="1 logits feature vector"):
        metric.compute()
    with pytest.raises(ValueError, match="logits"):
        metric.update(torch.zeros(3))
    with pytest.raises(TypeError, match="no real side"):
        metric.set_real_features(torch.zeros(3, 4))


def test_reset_and_batches_do_not_change_the_value():
    logits = random_logits(64, 10, 3)
    whole = InceptionScore(splits=4)
    whole.update(logits)
    expected = whole.compute()
    whole.reset()
    for part in logits.split(5):
        whole.update(part)
    whole.update(logits[:0])  # an empty batch is fine
    assert all(torch.equal(a, b) for a, b in zip(whole.compute(), expected))
