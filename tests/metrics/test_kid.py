"""KernelInceptionDistance: against torch-fidelity, against the paper's formula, unbiasedness, DDP.

Inception weights cannot be downloaded here: a randomly initialised (He-scaled) InceptionV3 state dict
stands in (see random_inception.py); it runs torch-fidelity's code path.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fidelity_inputs import UInt8Images, structured_images
from random_inception import random_inception_state_dict

from lightning_gan.metrics.features import FeatureExtractor
from lightning_gan.metrics.fid import FrechetInceptionDistance
from lightning_gan.metrics.inception_score import InceptionScore
from lightning_gan.metrics.kid import KernelInceptionDistance, kernel_inception_distance
from lightning_gan.metrics.precision_recall import PrecisionRecall

DDP_SCRIPT = Path(__file__).with_name("ddp_feature_metrics_script.py")


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def random_features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


# ------------------------------------------------------------------------------------ against torch-fidelity


def test_kid_and_inception_score_match_torch_fidelity_on_the_same_images(tmp_path, monkeypatch):
    import torch_fidelity
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # Cost: InceptionV3 at 299 x 299 takes ~0.25 s per image on one core, and both torch-fidelity and we
    # embed 200 images. Both read the resize target from this class attribute, so at 75 x 75 (the
    # smallest input InceptionV3 takes) the comparison stays exact: the same network, resize code and
    # layers, a 16th of the cost. (test_features.py compares the features at 299 x 299.)
    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)
    state = random_inception_state_dict(0)
    state["fc.weight"] *= 300.0  # logits of O(10), not O(0.1): an Inception Score well above 1
    weights = tmp_path / "random-inception.pth"
    torch.save(state, weights)
    generated, real = structured_images(100, "ramp", 1), structured_images(100, "board", 2)

    reference = torch_fidelity.calculate_metrics(
        input1=UInt8Images(generated), input2=UInt8Images(real), kid=True, isc=True,
        feature_extractor_weights_path=str(weights), cuda=False, verbose=False, cache=False,
        kid_subset_size=50, kid_subsets=20, isc_splits=4, batch_size=50, save_cpu_ram=True,
    )

    extractor = FeatureExtractor("inception-v3-compat", weights_path=weights)
    kid = KernelInceptionDistance(subsets=20, subset_size=50)
    isc = InceptionScore(splits=4)
    # Batches of 50 as torch-fidelity's (the convolutions' rounding depends on the batch size), then
    # updates of other sizes.
    generated_features = [extractor(part) for part in generated.split(50)]
    real_features = torch.cat([extractor(part)["2048"] for part in real.split(50)])
    for part in torch.cat([f["2048"] for f in generated_features]).split(30):
        kid.update(part, real=False)
    for part in torch.cat([f["logits_unbiased"] for f in generated_features]).split(45):
        isc.update(part)
    for part in real_features.split(45):
        kid.update(part, real=True)
    kid_mean, kid_std = kid.compute()
    isc_mean, isc_std = isc.compute()
    assert kid_mean.dtype == isc_mean.dtype == torch.float64

    ref_kid, ref_isc = reference["kernel_inception_distance_mean"], reference["inception_score_mean"]
    assert ref_kid > 10 * reference["kernel_inception_distance_std"] > 0, "the two sets barely differ"
    assert ref_isc > 1.2, "near-uniform logits: the Inception Score comparison would hide bugs"
    errors = {
        "kid_mean": rel(kid_mean.item(), ref_kid),
        "kid_std": rel(kid_std.item(), reference["kernel_inception_distance_std"]),
        "isc_mean": rel(isc_mean.item(), ref_isc),
        "isc_std": rel(isc_std.item(), reference["inception_score_std"]),
    }
    print(f"ours kid {kid_mean.item():.10g} is {isc_mean.item():.10g}; torch-fidelity {reference}; rel {errors}")
    # torch-fidelity computes the kernels in float32 NumPy, we in float64: the KID agrees to float32 rounding.
    assert errors["kid_mean"] < 1e-4 and errors["kid_std"] < 1e-3, errors
    # The Inception Score is float64 in both after the same permutation: equal to the last bits.
    assert errors["isc_mean"] < 1e-12 and errors["isc_std"] < 1e-9, errors


@pytest.mark.parametrize("degree, gamma, coef0", [(3, None, 1.0), (2, 0.3, 0.5)])
def test_equals_torch_fidelity_on_the_same_features(degree, gamma, coef0):
    from torch_fidelity.metric_kid import kid_features_to_metric

    fake, real = random_features(130, 16, 0, shift=0.2) * 0.7, random_features(90, 16, 1)
    kid = KernelInceptionDistance(subsets=15, subset_size=40, degree=degree, gamma=gamma, coef0=coef0, seed=7)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    mean, std = kid.compute()
    kwargs = dict(
        kid_subsets=15, kid_subset_size=40, kid_kernel="poly", kid_kernel_poly_degree=degree,
        kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0, rng_seed=7, verbose=False,
    )
    # torch-fidelity's input1 is the generated set: its subsets are drawn first.
    exact = kid_features_to_metric(fake.double(), real.double(), **kwargs)  # NumPy float64
    as_float32 = kid_features_to_metric(fake, real, **kwargs)  # what torch-fidelity does with its float32 features
    assert rel(mean.item(), exact["kernel_inception_distance_mean"]) < 1e-12
    assert rel(std.item(), exact["kernel_inception_distance_std"]) < 1e-10
    assert rel(mean.item(), as_float32["kernel_inception_distance_mean"]) < 1e-5


# --------------------------------------------------------------------------------- against the paper's formula


def numpy_kid(x: np.ndarray, y: np.ndarray, subsets: int, m: int, seed: int, degree=3, gamma=None, coef0=1.0):
    """Bińkowski et al. (2018), eq. (3) with k(a, b) = (a.b / d + 1)^3, written out with explicit pair loops."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)

    def k(a, b):
        return (gamma * float(a @ b) + coef0) ** degree

    values = []
    for _ in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        same = sum(k(xs[i], xs[j]) + k(ys[i], ys[j]) for i in range(m) for j in range(m) if i != j)
        cross = sum(k(xs[i], ys[j]) for i in range(m) for j in range(m))
        values.append(same / (m * (m - 1)) - 2 * cross / m**2)
    return float(np.mean(values)), float(np.std(values))


def test_matches_a_numpy_reference_of_the_formula():
    fake, real = random_features(60, 5, 3, shift=0.3), random_features(70, 5, 4)
    mean, std = kernel_inception_distance(fake, real, subsets=6, subset_size=25, seed=11)
    ref_mean, ref_std = numpy_kid(fake.double().numpy(), real.double().numpy(), 6, 25, 11)
    assert rel(mean.item(), ref_mean) < 1e-6 and rel(std.item(), ref_std) < 1e-6


# ----------------------------------------------------------------------------------------- unbiasedness


def biased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """The V-statistic (diagonals kept): biased upwards by O(1/m); here to show the tests below can fail."""
    x, y = x.double(), y.double()
    gamma = 1.0 / x.shape[1]
    k = lambda a, b: (a @ b.T * gamma + 1.0) ** 3  # noqa: E731
    return (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()).item()


def test_same_distribution_averages_to_zero():
    d, m, seeds = 4, 20, 200
    values, biased = [], []
    for seed in range(seeds):
        x, y = random_features(m, d, 2 * seed + 1000), random_features(m, d, 2 * seed + 1001)
        kid = KernelInceptionDistance(subsets=1, subset_size=m)
        kid.update(x, real=True)
        kid.update(y, real=False)
        values.append(kid.compute()[0].item())
        biased.append(biased_mmd2(x, y))
    values_np = np.array(values)
    standard_error = values_np.std(ddof=1) / math.sqrt(seeds)
    assert abs(values_np.mean()) < 2 * standard_error, (values_np.mean(), standard_error)
    # The check has power: the biased estimator on the same data is far from 0.
    biased_np = np.array(biased)
    assert biased_np.mean() > 5 * biased_np.std(ddof=1) / math.sqrt(seeds)


def expected_cubic_mmd2(d: int, shift: float) -> float:
    r"""E[MMD²_u] between N(0, I_d) and N(shift·1, I_d) for k(x, y) = (x·y / d + 1)^3.

    The unbiased estimator's expectation is E k(x, x') + E k(y, y') - 2 E k(x, y) over independent
    pairs; with gamma = 1/d and s = x·y, E k = 1 + 3 gamma E[s] + 3 gamma^2 E[s^2] + gamma^3 E[s^3].
    For x ~ N(a, I), y ~ N(b, I) independent: given y, s ~ N(a·y, |y|^2), so
    E[s | y] = a·y, E[s^2 | y] = (a·y)^2 + |y|^2, E[s^3 | y] = (a·y)^3 + 3 (a·y) |y|^2.
    With y = b + z, z ~ N(0, I), t = a·y ~ N(m, |a|^2) where m = a·b, and |y|^2 = |b|^2 + 2 b·z + |z|^2:
    E[t] = m, E[t^2] = m^2 + |a|^2, E[t^3] = m^3 + 3 m |a|^2, E|y|^2 = |b|^2 + d,
    E[t |y|^2] = m (|b|^2 + d) + 2 E[(a·z)(b·z)] = m (|b|^2 + d) + 2 m (odd moments of z vanish).
    Hence E[s] = m, E[s^2] = m^2 + |a|^2 + |b|^2 + d, E[s^3] = m^3 + 3 m (|a|^2 + |b|^2 + d + 2).
    """

    def expected_kernel(a_sq: float, b_sq: float, m: float) -> float:
        gamma = 1.0 / d
        s1 = m
        s2 = m**2 + a_sq + b_sq + d
        s3 = m**3 + 3 * m * (a_sq + b_sq + d + 2)
        return 1 + 3 * gamma * s1 + 3 * gamma**2 * s2 + gamma**3 * s3

    mu_sq = d * shift**2  # |shift·1|^2
    k_xx = expected_kernel(0.0, 0.0, 0.0)
    k_yy = expected_kernel(mu_sq, mu_sq, mu_sq)
    k_xy = expected_kernel(0.0, mu_sq, 0.0)
    return k_xx + k_yy - 2 * k_xy


def test_shifted_gaussians_match_the_closed_form_expectation():
    # The per-seed spread of the estimate is ~5% of the expectation here (d = 32, n = 500), so 200 seeds
    # give a standard error of ~0.35%: the 2% tolerance is ~6 standard errors. (At d = 4 the cubic
    # kernel's heavy tails make the spread 3x larger.)
    d, shift, n, seeds = 32, 0.5, 500, 200
    expected = expected_cubic_mmd2(d, shift)  # 0.98974609375; a Monte Carlo check of 2e6 pairs agrees
    values, biased = [], []
    for seed in range(seeds):
        x, y = random_features(n, d, 2 * seed), random_features(n, d, 2 * seed + 1, shift=shift)
        kid = KernelInceptionDistance(subsets=1, subset_size=n)
        kid.update(x, real=True)
        kid.update(y, real=False)
        values.append(kid.compute()[0].item())
        biased.append(biased_mmd2(x[:20], y[:20]))
    mean = float(np.mean(values))
    assert abs(mean / expected - 1) < 0.02, (mean, expected)
    # Power: with subsets of 20, the biased estimator misses the expectation by far more than 2%.
    assert abs(np.mean(biased) / expected - 1) > 0.1


# ------------------------------------------------------------------------------------------- behaviour


def test_subset_size_larger_than_a_set_is_a_clear_error():
    kid = KernelInceptionDistance(subsets=2, subset_size=50)
    kid.update(random_features(60, 3, 0), real=True)
    kid.update(random_features(40, 3, 1), real=False)
    with pytest.raises(ValueError, match=r"subset_size \(50\).*60 real and 40 generated"):
        kid.compute()


def test_non_finite_features_raise_in_compute():
    kid = KernelInceptionDistance(subsets=2, subset_size=5)
    bad = random_features(10, 3, 0)
    bad[3, 1] = float("nan")
    kid.update(bad, real=False)  # no error here: under DDP the other ranks would wait forever
    kid.update(random_features(10, 3, 1), real=True)
    with pytest.raises(ValueError, match="1 fake feature vector"):
        kid.compute()


def test_shape_checks():
    kid = KernelInceptionDistance(num_features=3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        kid.update(torch.zeros(4, 5), real=True)
    kid = KernelInceptionDistance()
    kid.update(torch.zeros(4, 5), real=True)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        kid.update(torch.zeros(4, 6), real=False)
    with pytest.raises(ValueError, match="subset_size"):
        KernelInceptionDistance(subset_size=1)


def test_fixed_real_features_survive_reset_and_give_the_same_value():
    real, fake = random_features(80, 6, 0), random_features(70, 6, 1, shift=0.4)
    kid = KernelInceptionDistance(subsets=5, subset_size=30)
    for part in real.split(25):
        kid.update(part, real=True)
    kid.update(fake, real=False)
    expected = kid.compute()
    cached = kid.real_features()
    assert torch.equal(cached, real)  # in the order given

    kid.reset()
    kid.set_real_features(cached)
    assert kid.has_real_features
    with pytest.raises(ValueError, match="set_real_features"):
        kid.update(real, real=True)
    for _ in range(2):  # two evaluations against the same fixed real set
        kid.update(fake, real=False)
        assert all(torch.equal(a, b) for a, b in zip(kid.compute(), expected))
        kid.reset()
    kid.clear_real_features()
    assert not kid.has_real_features


# --------------------------------------------------------------------------------------------------- DDP


def test_two_gloo_ranks_with_uneven_and_empty_shards_equal_one_process(tmp_path):
    """FID, KID, IS and precision/recall on 2 processes (one holding no real features) equal one process's values."""
    sys.path.insert(0, str(DDP_SCRIPT.parent))
    try:
        import ddp_feature_metrics_script as script
    finally:
        sys.path.pop(0)
    data = script.global_data()
    kid = KernelInceptionDistance(**script.KID_ARGS)
    kid.update(data["real"], real=True)
    kid.update(data["fake"], real=False)
    isc = InceptionScore(**script.ISC_ARGS)
    isc.update(data["logits"])
    prc = PrecisionRecall(**script.PRC_ARGS)
    prc.update(data["real"], real=True)
    prc.update(data["fake"], real=False)
    kid_mean, kid_std = kid.compute()
    isc_mean, isc_std = isc.compute()
    pr = prc.compute()
    fid = FrechetInceptionDistance(script.DIM)
    fid.update(data["real"], real=True)
    fid.update(data["fake"], real=False)
    expected = {
        "kid_mean": kid_mean.item(), "kid_std": kid_std.item(), "isc_mean": isc_mean.item(),
        "isc_std": isc_std.item(), "precision": pr["precision"].item(), "recall": pr["recall"].item(),
        "fid": fid.compute().item(),
    }
    assert 0 < expected["precision"] < 1 and 0 < expected["recall"] < 1

    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    # A new session, killed as a whole on timeout: a hung collective fails the test in under a minute
    # and leaves no rank behind (the script also gives gloo a 30 s collective timeout).
    process = subprocess.Popen(
        [sys.executable, str(DDP_SCRIPT), str(out), str(tmp_path / "init")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=50)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail("the DDP script hung (a rank waited in a collective):\n" + stdout[-2000:] + stderr[-3000:])
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    for report in ranks:
        for key, value in expected.items():
            assert rel(report[key], value) < 1e-6, (report["rank"], key, report[key], value)
            if key != "fid":  # the fixed-real-features path is KID's and PR's
                assert rel(report[f"fixed_{key}"], value) < 1e-6, (report["rank"], key, report[f"fixed_{key}"], value)
        assert report["real_count"] == len(data["real"])
        assert report["real_features_equal"]
        assert report["nonfinite_error_raised"]
