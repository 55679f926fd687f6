"""The Parzen-window log-likelihood against a naive NumPy loop, its invariances, its metric, and DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from lightning_gan.metrics.parzen import ParzenLogLikelihood, default_sigmas, parzen_log_likelihood

DDP_SCRIPT = Path(__file__).with_name("ddp_parzen_script.py")


def naive_parzen(x: np.ndarray, centres: np.ndarray, sigmas) -> np.ndarray:
    """Goodfellow et al.'s loop, in float64: for each test point, a log-sum-exp over all centres."""
    x = x.reshape(len(x), -1).astype(np.float64)
    centres = centres.reshape(len(centres), -1).astype(np.float64)
    d = x.shape[1]
    out = np.empty((len(x), len(sigmas)))
    for i, point in enumerate(x):
        squared = ((point - centres) ** 2).sum(axis=1)
        for k, sigma in enumerate(sigmas):
            out[i, k] = logsumexp(-squared / (2 * sigma**2)) - math.log(len(centres)) - d * math.log(sigma * math.sqrt(2 * math.pi))
    return out


def test_point_on_its_only_centre_at_unit_sigma_is_minus_half_d_log_two_pi():
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(1, 1, 28, 28, dtype=dtype)
        value = parzen_log_likelihood(x, x.clone(), [1.0]).item()
        assert value == pytest.approx(-720.4478, abs=1e-4)
        assert value == pytest.approx(-784 / 2 * math.log(2 * math.pi), abs=1e-9)


def test_float64_matches_naive_loop_to_a_micro_nat():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 20, generator=g, dtype=torch.float64)
    centres = torch.randn(500, 20, generator=g, dtype=torch.float64)
    sigmas = [0.3, 0.7, 1.5]
    ours = parzen_log_likelihood(x, centres, sigmas, chunk_size=128)
    assert ours.dtype == torch.float64 and ours.shape == (300, 3)
    np.testing.assert_allclose(ours.numpy(), naive_parzen(x.numpy(), centres.numpy(), sigmas), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["uniform", "binary", "near_copies"])
def test_float32_at_784_dims_is_within_a_milli_nat_per_point(kind):
    g = torch.Generator().manual_seed(1)
    if kind == "uniform":  # images in [-1, 1]
        x, centres = torch.rand(200, 784, generator=g) * 2 - 1, torch.rand(300, 784, generator=g) * 2 - 1
    elif kind == "binary":  # mostly -1 pixels: large norms, and many centres at equal distances
        x = (torch.rand(200, 784, generator=g) < 0.2).float() * 2 - 1
        centres = (torch.rand(300, 784, generator=g) < 0.2).float() * 2 - 1
    else:  # each test point close to one centre (a memorising model)
        centres = torch.rand(300, 784, generator=g)
        x = centres[:200] + 0.05 * torch.randn(200, 784, generator=g)
    sigmas = default_sigmas()
    ours = parzen_log_likelihood(x, centres, sigmas)
    reference = naive_parzen(x.numpy(), centres.numpy(), sigmas.tolist())
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=1e-3)


def test_order_of_centres_and_chunk_size_do_not_matter():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 3, 4, generator=g, dtype=torch.float64)
    centres = torch.randn(130, 3, 4, generator=g, dtype=torch.float64)
    sigmas = [0.5, 1.0, 2.0]
    base = parzen_log_likelihood(x, centres, sigmas)
    permuted = parzen_log_likelihood(x, centres[torch.randperm(130, generator=g)], sigmas)
    torch.testing.assert_close(permuted, base, rtol=0, atol=1e-6)
    for chunk_size in (7, 64, 10000):
        torch.testing.assert_close(parzen_log_likelihood(x, centres, sigmas, chunk_size=chunk_size), base, rtol=0, atol=1e-6)
    # float32 inputs: the blocks change which centres get their distances refined, not the result.
    x32, centres32 = x.float(), centres.float()
    base32 = parzen_log_likelihood(x32, centres32, sigmas)
    for chunk_size in (7, 64):
        torch.testing.assert_close(parzen_log_likelihood(x32, centres32, sigmas, chunk_size=chunk_size), base32, rtol=0, atol=1e-5)


def test_sigma_grid_equals_separate_calls_per_sigma():
    g = torch.Generator().manual_seed(3)
    x, centres = torch.randn(40, 5, generator=g), torch.randn(70, 5, generator=g)
    sigmas = [0.2, 0.5, 1.0, 3.0]
    grid = parzen_log_likelihood(x, centres, sigmas, chunk_size=16)
    for k, sigma in enumerate(sigmas):
        torch.testing.assert_close(grid[:, k], parzen_log_likelihood(x, centres, sigma, chunk_size=16)[:, 0], rtol=0, atol=1e-9)


def test_explicit_float64_dtype_is_exact_for_float32_inputs():
    g = torch.Generator().manual_seed(4)
    x, centres = torch.rand(30, 784, generator=g), torch.rand(40, 784, generator=g)
    ours = parzen_log_likelihood(x, centres, [0.1, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(ours.numpy(), naive_parzen(x.numpy(), centres.numpy(), [0.1, 1.0]), rtol=0, atol=1e-6)


def test_metric_mean_stderr_and_best_sigma():
    g = torch.Generator().manual_seed(5)
    x, centres = torch.randn(90, 4, generator=g, dtype=torch.float64), torch.randn(60, 4, generator=g, dtype=torch.float64)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 5.0])
    metric = ParzenLogLikelihood(sigmas=sigmas, chunk_size=32)
    metric.set_centres(centres)
    for part in x.split(25):
        metric.update(part)
    result = metric.compute()
    per_point = parzen_log_likelihood(x, centres, sigmas)
    torch.testing.assert_close(result["log_likelihood"], per_point.mean(0), rtol=0, atol=1e-9)
    torch.testing.assert_close(result["stderr"], per_point.std(0, unbiased=False) / math.sqrt(90), rtol=0, atol=1e-9)
    best = int(per_point.mean(0).argmax())
    assert result["best_sigma"].item() == pytest.approx(sigmas[best].item())
    assert result["best_log_likelihood"].item() == pytest.approx(per_point.mean(0)[best].item(), abs=1e-9)
    assert result["best_stderr"].item() == pytest.approx(result["stderr"][best].item(), abs=1e-12)
    assert result["bits_per_dim"].item() == pytest.approx(-result["best_log_likelihood"].item() / (4 * math.log(2)))
    assert all(v.dtype == torch.float64 for v in result.values())
    metric.reset()
    metric.set_centres(centres[:1])
    metric.update(centres[:1])
    assert metric.compute()["log_likelihood"].shape == (4,)
    single = ParzenLogLikelihood(sigmas=[0.5])
    single.set_centres(centres)
    single.update(x[:1])
    result = single.compute()
    assert result["log_likelihood"].shape == result["stderr"].shape == result["sigmas"].shape == (1,)
    assert result["best_log_likelihood"].shape == ()


def test_metric_default_sigmas_are_the_original_grid():
    metric = ParzenLogLikelihood()
    torch.testing.assert_close(metric.sigmas, torch.logspace(-1, 0, 10, dtype=torch.float64))


def test_bad_inputs_are_refused_clearly():
    metric = ParzenLogLikelihood(sigmas=[1.0])
    with pytest.raises(RuntimeError, match="set_centres"):
        metric.update(torch.zeros(2, 3))
    metric.set_centres(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(5, 3\)"):
        metric.update(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        metric.update(torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        metric.set_centres(torch.tensor([[0.0, float("inf"), 0.0]]))
    with pytest.raises(RuntimeError, match="saw no samples"), pytest.warns(UserWarning, match="before the ``update``"):
        ParzenLogLikelihood(sigmas=[1.0]).compute()
    for sigmas in ([], [1.0, 0.0], [-0.5], [float("nan")]):
        with pytest.raises(ValueError, match="sigma"):
            ParzenLogLikelihood(sigmas=sigmas)
        with pytest.raises(ValueError, match="sigma"):
            parzen_log_likelihood(torch.zeros(1, 2), torch.zeros(1, 2), sigmas)
    with pytest.raises(ValueError, match=r"\(1, 2\).*\(1, 3\)"):
        parzen_log_likelihood(torch.zeros(1, 2), torch.zeros(1, 3), [1.0])
    with pytest.raises(ValueError, match="chunk_size"):
        parzen_log_likelihood(torch.zeros(1, 2), torch.zeros(1, 2), [1.0], chunk_size=0)
    with pytest.raises(ValueError, match="at least one sample"):
        parzen_log_likelihood(torch.zeros(1, 2), torch.zeros(0, 2), [1.0])


def _metric(x, centres, sigmas, parts: int = 1, **kwargs) -> dict:
    metric = ParzenLogLikelihood(sigmas=sigmas, **kwargs)
    metric.set_centres(centres)
    for part in x.tensor_split(parts):
        metric.update(part)
    return metric.compute()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_value_range_reports_in_unit_pixel_units(dtype):
    """Images in [-1, 1] declared as such score as the same images in [0, 1]: d ln 2 above the old numbers."""
    g = torch.Generator().manual_seed(8)
    d = 784
    x01 = torch.rand(40, d, generator=g, dtype=torch.float64)
    centres01 = torch.rand(60, d, generator=g, dtype=torch.float64)
    x11, centres11 = (2 * x01 - 1).to(dtype), (2 * centres01 - 1).to(dtype)
    sigmas = [0.2, 0.4, 0.8]
    tol = 1e-9 if dtype == torch.float64 else 1e-3
    declared = _metric(x11, centres11, sigmas, parts=3, value_range=(-1.0, 1.0))
    unit = _metric(x01.to(dtype), centres01.to(dtype), sigmas, value_range=(0.0, 1.0))
    np.testing.assert_allclose(declared["log_likelihood"].numpy(), unit["log_likelihood"].numpy(), rtol=0, atol=tol)
    np.testing.assert_allclose(declared["stderr"].numpy(), unit["stderr"].numpy(), rtol=1e-6, atol=0)
    # The old behaviour, scoring [-1, 1] values as given: the same windows are twice as wide in those units,
    # and every log-likelihood is d ln 2 = 543.4 nats lower.
    old = _metric(x11, centres11, [2 * s for s in sigmas])
    np.testing.assert_allclose(declared["log_likelihood"].numpy() - old["log_likelihood"].numpy(),
                               np.full(3, d * math.log(2)), rtol=0, atol=tol)
    assert declared["best_sigma"].item() == pytest.approx(unit["best_sigma"].item())
    assert declared["bits_per_dim"].item() == pytest.approx(old["bits_per_dim"].item() - 1.0, abs=1e-9)
    # Naive reference in [0, 1] units.
    reference = naive_parzen(x01.numpy(), centres01.numpy(), sigmas).mean(axis=0)
    np.testing.assert_allclose(declared["log_likelihood"].numpy(), reference, rtol=0, atol=tol)


def test_value_range_is_validated_and_data_outside_it_warns_once():
    for bad in ((1.0, -1.0), (0.0, 0.0), (0.0, float("inf"))):
        with pytest.raises(ValueError, match=r"`value_range` must be finite with low < high"):
            ParzenLogLikelihood(value_range=bad)
    for bad in ((0.0, 1.0, 2.0), "01", 1.0, ("a", "b")):
        with pytest.raises(TypeError, match="`value_range`"):
            ParzenLogLikelihood(value_range=bad)
    metric = ParzenLogLikelihood(sigmas=[0.5], value_range=(-1.0, 1.0))
    metric.set_centres(torch.zeros(4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.update(torch.tensor([[-1.0, 0.0, 1.0]]))  # at the ends: no warning
    with pytest.warns(UserWarning, match=r"\[0, 255\], outside the declared value_range=\(-1.0, 1.0\)"):
        metric.update(torch.tensor([[0.0, 255.0, 3.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.update(torch.tensor([[0.0, 255.0, 3.0]]))  # once per metric


def test_stderr_is_exact_when_the_spread_is_tiny_beside_the_mean():
    """At sigma 1000 in 784 dimensions l ~ -6136 and its spread ~1e-6: E[l^2] - E[l]^2 cancels to 0."""
    g = torch.Generator().manual_seed(9)
    x = torch.rand(50, 784, generator=g, dtype=torch.float64)
    centres = torch.rand(50, 784, generator=g, dtype=torch.float64)
    per_point = parzen_log_likelihood(x, centres, [1000.0])[:, 0].numpy()
    reference = per_point.std() / math.sqrt(len(per_point))  # NumPy's two-pass std, ddof=0
    assert 1e-7 < reference < 2e-7  # 1.54e-7
    result = _metric(x, centres, [1000.0], parts=2)
    assert result["stderr"].item() == pytest.approx(reference, rel=1e-6)
    # The old sum-of-squares formula, from the same float64 sums it kept: nothing left of the variance.
    sums = [torch.from_numpy(part) for part in np.array_split(per_point, 2)]
    total = sum(p.sum() for p in sums)
    total_sq = sum(p.pow(2).sum() for p in sums)
    old = ((total_sq / 50 - (total / 50) ** 2).clamp(min=0).sqrt() / math.sqrt(50)).item()
    assert old == 0.0


def test_merging_shards_equals_one_pass_to_1e_12():
    """Chan's merge, the state's dist_reduce_fx, applied as a DDP sync would: shards of unequal sizes."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn(97, 6, generator=g, dtype=torch.float64) + 50.0  # a large mean: cancellation-prone
    centres = torch.randn(40, 6, generator=g, dtype=torch.float64) + 50.0
    sigmas = [0.3, 1.0, 100.0]
    whole = _metric(x, centres, sigmas)
    shards = []
    for part in (x[:10], x[10:11], x[11:60], x[60:]):
        shard = ParzenLogLikelihood(sigmas=sigmas)
        shard.set_centres(centres)
        for piece in part.split(7):
            shard.update(piece)
        shards.append(shard)
    merged = shards[0]
    for other in shards[1:]:
        merged.merge_state(other)
    result = merged.compute()
    assert result["log_likelihood"].tolist() == pytest.approx(whole["log_likelihood"].tolist(), rel=1e-12)
    assert result["stderr"].tolist() == pytest.approx(whole["stderr"].tolist(), rel=1e-12)
    assert merged.count.item() == 97


def test_a_sigma_at_the_edge_of_the_grid_warns():
    centres = torch.zeros(1, 2)
    x = torch.tensor([[1.0, 0.0]])  # best sigma: 1 / sqrt(2) ~ 0.71 for a single point and centre in 2-D
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _metric(x, centres, [0.3, 0.7, 2.0])["best_sigma"].item() == pytest.approx(0.7)
        _metric(x, centres, [0.1])  # one sigma (a test run): nothing to choose
    with pytest.warns(UserWarning, match=r"chosen sigma 0.5 is the largest of the grid \[0.1, 0.2, 0.5\]"):
        _metric(x, centres, [0.1, 0.2, 0.5])
    with pytest.warns(UserWarning, match=r"chosen sigma 2 is the smallest of the grid \[2.0, 4.0\]"):
        _metric(x, centres, [2.0, 4.0])


def test_two_process_sync_equals_one_process(tmp_path):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(DDP_SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    # The same data, centres and sigmas as the script, in one process.
    x, centres, sigmas = _ddp_problem()
    metric = ParzenLogLikelihood(sigmas=sigmas, chunk_size=16)
    metric.set_centres(centres)
    metric.update(x)
    expected = metric.compute()
    for rank in ranks:
        assert rank["count"] == len(x)
        # float64 data, so this measures the merge of the ranks' states. The per-point values themselves are
        # only known to ~eps |l| each, which bounds any stderr to eps |l| / sqrt(N) absolute: at sigma 100 the
        # spread is ~1e-5 of |l| ~ 30, and that bound, not the merge, sets the last digits (~3e-12 relative).
        np.testing.assert_allclose(rank["log_likelihood"], expected["log_likelihood"].numpy(), rtol=1e-12, atol=0)
        resolution = 16 * np.finfo(np.float64).eps * expected["log_likelihood"].abs().max().item() / math.sqrt(len(x))
        np.testing.assert_allclose(rank["stderr"], expected["stderr"].numpy(), rtol=1e-12, atol=resolution)
        assert rank["best_sigma"] == pytest.approx(expected["best_sigma"].item())


def _ddp_problem():
    sys.path.insert(0, str(DDP_SCRIPT.parent))
    try:
        from ddp_parzen_script import problem
    finally:
        sys.path.pop(0)
    return problem()
