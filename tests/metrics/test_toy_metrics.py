"""Sample quality (LogProbOfSamples) and coverage (Parzen likelihood) disagree, in both directions.

The two examples of the theory, on a ring of 8 Gaussians (std 0.05, radius 2):

(a) a model that memorises its training set (a Parzen mixture of width 1e-3 on the training points)
    draws samples as good as the data's own, yet gives held-out data a poor likelihood;
(b) ``0.01 p + 0.99 noise`` gives held-out data a likelihood within log 100 of p's own, yet draws
    samples that are mostly off the data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_gan.data.toy import GaussianMixture2D, grid25, ring8
from lightning_gan.metrics.parzen import ParzenLogLikelihood
from lightning_gan.metrics.toy import LogProbOfSamples, ModeCoverage

EPS = 1e-3  # width of the memorising model's kernels
BOX = 4.0  # the noise of example (b) is uniform on [-BOX, BOX]^2


def _sample_quality(log_prob, samples: torch.Tensor) -> float:
    metric = LogProbOfSamples(log_prob)
    for part in samples.split(500):
        metric.update(part)
    return metric.compute().item()


@pytest.fixture()
def ring():
    mixture = ring8(radius=2.0, std=0.05)
    g = torch.Generator().manual_seed(0)
    train, _ = mixture.sample(200, generator=g)
    test, _ = mixture.sample(400, generator=g)
    fresh, _ = mixture.sample(4000, generator=g)
    return mixture, train, test, fresh, g


def test_log_prob_of_true_samples_is_the_negative_entropy(ring):
    mixture, _, _, fresh, _ = ring
    # The modes are 30 stds apart, so the entropy is that of one component plus log 8.
    entropy = math.log(8) + math.log(2 * math.pi * math.e * 0.05**2)
    assert _sample_quality(mixture.log_prob, fresh) == pytest.approx(-entropy, abs=0.1)


def test_memorising_model_has_good_samples_and_a_poor_held_out_likelihood(ring):
    mixture, train, test, fresh, g = ring
    data_quality = _sample_quality(mixture.log_prob, fresh)
    true_held_out = mixture.log_prob(test).mean().item()

    # Samples of the memoriser: a training point plus eps noise.
    pick = torch.randint(len(train), (4000,), generator=g)
    memorised = train[pick] + EPS * torch.randn(4000, 2, generator=g)
    memoriser_quality = _sample_quality(mixture.log_prob, memorised)

    parzen = ParzenLogLikelihood(sigmas=[EPS])  # the memoriser's own density, exactly
    parzen.set_centres(train)
    parzen.update(test)
    memoriser_held_out = parzen.compute()["best_log_likelihood"].item()

    # Sample quality: as good as the data's own samples (within Monte Carlo noise).
    assert memoriser_quality == pytest.approx(data_quality, abs=0.2)
    # Likelihood: held-out points fall between the training points, far below the true density.
    assert memoriser_held_out < true_held_out - 50
    # ...while on its own training points it looks better than the truth: the memorisation.
    parzen.reset()
    parzen.update(train)
    assert parzen.compute()["best_log_likelihood"].item() > mixture.log_prob(train).mean().item() + 3


def test_mostly_noise_model_has_a_good_likelihood_and_poor_samples(ring):
    mixture, _, test, fresh, g = ring
    log_noise = -math.log((2 * BOX) ** 2)  # uniform density on the box

    def mixed_log_prob(x: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(math.log(0.01) + mixture.log_prob(x), torch.full((len(x),), math.log(0.99) + log_noise, dtype=torch.float64))

    true_held_out = mixture.log_prob(test).mean().item()
    mixed_held_out = mixed_log_prob(test).mean().item()
    # Likelihood: within log 100 of the truth (0.01 p + 0.99 q >= 0.01 p everywhere), and not above it.
    assert true_held_out - math.log(100) <= mixed_held_out <= true_held_out
    assert mixed_held_out > true_held_out - math.log(100) + 0.1  # not merely the bound

    # Its samples: 1 in 100 from p, the rest uniform on the box.
    from_p = torch.rand(4000, generator=g) < 0.01
    samples = torch.where(from_p[:, None], fresh, (torch.rand(4000, 2, generator=g) * 2 - 1) * BOX)
    mixed_quality = _sample_quality(mixture.log_prob, samples)
    data_quality = _sample_quality(mixture.log_prob, fresh)
    # Sample quality: far below the data's own (most samples are nowhere near a mode).
    assert mixed_quality < data_quality - 50


def test_log_prob_of_samples_sums_batches_and_refuses_bad_log_probs():
    mixture = GaussianMixture2D([[0.0, 0.0]], stds=1.0)
    metric = LogProbOfSamples(mixture.log_prob)
    points = torch.randn(30, 2)
    for part in points.split(7):
        metric.update(part)
    assert metric.compute().item() == pytest.approx(mixture.log_prob(points).mean().item(), abs=1e-12)
    assert metric.compute().dtype == torch.float64

    with pytest.raises(ValueError, match="one value per sample"):
        LogProbOfSamples(lambda x: x.sum()).update(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        LogProbOfSamples(lambda x: torch.full((len(x),), float("nan"))).update(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="callable"):
        LogProbOfSamples(3.0)
    with pytest.raises(RuntimeError, match="saw no samples"), pytest.warns(UserWarning, match="before the ``update``"):
        LogProbOfSamples(mixture.log_prob).compute()


def _coverage(mixture: GaussianMixture2D, samples: torch.Tensor, parts: int = 1, **kwargs) -> dict[str, float]:
    metric = ModeCoverage(mixture.means, mixture.stds, **kwargs)
    for part in samples.tensor_split(parts):
        metric.update(part)
    return {k: v.item() for k, v in metric.compute().items()}


def numpy_mode_coverage(means: np.ndarray, stds: np.ndarray, samples: np.ndarray, threshold: float = 3.0) -> dict:
    """The VEEGAN / PacGAN protocol, written out plainly: nearest mode, 3 stds, KL to uniform over K modes."""
    distance = np.sqrt(((samples[:, None, :] - means[None]) ** 2).sum(-1))
    nearest = distance.argmin(1)
    high_quality = distance[np.arange(len(samples)), nearest] <= threshold * stds[nearest]
    counts = np.bincount(nearest[high_quality], minlength=len(means))
    p = counts / counts.sum()
    kl = sum(q * math.log(q * len(means)) for q in p if q > 0)
    return {"modes_covered": int((counts >= 1).sum()), "high_quality_share": high_quality.mean(), "mode_kl": kl}


def test_mode_coverage_by_hand():
    """Two modes 10 apart, std 1: the counts are (2, 1) high-quality samples out of 5."""
    metric = ModeCoverage(means=[[0.0, 0.0], [10.0, 0.0]], stds=[1.0, 1.0])
    samples = torch.tensor([[0.0, 3.0],  # exactly 3 stds from mode 0: high quality
                            [1.0, 1.0],  # mode 0
                            [10.0, -2.0],  # mode 1
                            [5.0, 0.0],  # halfway: 5 stds from either
                            [13.01, 0.0]])  # just beyond 3 stds of mode 1
    metric.update(samples)
    result = metric.compute()
    assert result["modes_covered"].item() == 2
    assert result["high_quality_share"].item() == pytest.approx(3 / 5, abs=1e-15)
    expected_kl = 2 / 3 * math.log(2 * 2 / 3) + 1 / 3 * math.log(2 * 1 / 3)
    assert result["mode_kl"].item() == pytest.approx(expected_kl, abs=1e-15)
    assert all(v.dtype == torch.float64 and v.shape == () for v in result.values())


def test_mode_coverage_matches_numpy_on_a_noisy_generator():
    mixture = grid25()
    g = torch.Generator().manual_seed(0)
    # A poor generator: most modes, some off-mode samples, unequal weights.
    points, labels = mixture.sample(2500, generator=g)
    keep = labels % 7 != 0  # drop 4 of the 25 modes
    samples = torch.cat([points[keep] + 0.06 * torch.randn(int(keep.sum()), 2, generator=g),
                         torch.rand(300, 2, generator=g) * 10 - 5])
    ours = _coverage(mixture, samples, parts=7)
    reference = numpy_mode_coverage(mixture.means.numpy(), mixture.stds.numpy(), samples.double().numpy())
    assert ours["modes_covered"] == reference["modes_covered"]
    assert 21 <= ours["modes_covered"] <= 25
    assert ours["high_quality_share"] == pytest.approx(reference["high_quality_share"], abs=1e-12)
    assert ours["mode_kl"] == pytest.approx(reference["mode_kl"], abs=1e-12)


@pytest.mark.parametrize("make", [ring8, grid25])
def test_mode_coverage_of_the_data_itself_and_of_a_collapsed_generator(make):
    mixture = make()
    k = mixture.num_components
    g = torch.Generator().manual_seed(1)
    perfect = _coverage(mixture, mixture.sample(2500, generator=g)[0])
    assert perfect["modes_covered"] == k
    # In 2-D, P(|z| <= 3) = 1 - exp(-9/2) = 0.9889 for a standard normal z.
    assert perfect["high_quality_share"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert 0 <= perfect["mode_kl"] < 3 * (k - 1) / (2 * 2500)  # E[KL] ~ (K - 1) / (2N) from sampling noise alone
    collapsed = mixture.means[3].float() + mixture.stds[3].float() * torch.randn(2500, 2, generator=g)
    result = _coverage(mixture, collapsed)
    assert result["modes_covered"] == 1
    assert result["mode_kl"] == pytest.approx(math.log(k), abs=1e-12)


def test_mode_coverage_sums_shards_like_ddp_and_handles_edge_cases():
    mixture = ring8()
    g = torch.Generator().manual_seed(2)
    samples = mixture.sample(1000, generator=g)[0]
    whole = _coverage(mixture, samples)
    shards = [ModeCoverage(mixture.means, mixture.stds) for _ in range(3)]
    for shard, part in zip(shards, (samples[:1], samples[1:600], samples[600:])):
        shard.update(part)
    for other in shards[1:]:
        shards[0].merge_state(other)  # torchmetrics' sum reduction, as a DDP sync does it
    assert {k: v.item() for k, v in shards[0].compute().items()} == whole

    # Non-finite samples count in N and are never high quality; an empty batch changes nothing.
    metric = ModeCoverage(mixture.means, mixture.stds)
    metric.update(torch.tensor([[2.0, 0.0], [float("nan"), 0.0], [float("inf"), 1.0], [0.0, 0.0]]))
    metric.update(torch.empty(0, 2))
    result = {k: v.item() for k, v in metric.compute().items()}
    assert result == {"modes_covered": 1.0, "high_quality_share": 0.25, "mode_kl": pytest.approx(math.log(8))}
    # No high-quality sample: no histogram, so the KL is undefined (NaN).
    metric.reset()
    metric.update(torch.zeros(5, 2))
    result = metric.compute()
    assert result["modes_covered"].item() == 0 and result["high_quality_share"].item() == 0
    assert math.isnan(result["mode_kl"].item())
    # min_samples: a mode needs that many high-quality samples to count as covered.
    two_modes = torch.cat([mixture.means[0].expand(5, 2), mixture.means[1].expand(1, 2)]).float()
    assert _coverage(mixture, two_modes)["modes_covered"] == 2
    assert _coverage(mixture, two_modes, min_samples=2)["modes_covered"] == 1
    # threshold: in standard deviations of the mode.
    off = mixture.means[:1].float() + torch.tensor([[0.0, 0.075]])  # 1.5 stds away
    assert _coverage(mixture, off)["high_quality_share"] == 1.0
    assert _coverage(mixture, off, threshold=1.0)["high_quality_share"] == 0.0


def test_mode_coverage_refuses_bad_arguments_clearly():
    with pytest.raises(ValueError, match=r"`means` must have shape \(K, D\).*\(3,\)"):
        ModeCoverage(means=[0.0, 1.0, 2.0], stds=1.0)
    with pytest.raises(ValueError, match="`means` must be finite"):
        ModeCoverage(means=[[0.0, float("nan")]], stds=1.0)
    with pytest.raises(ValueError, match=r"`stds` must be one number or have shape \(2,\)"):
        ModeCoverage(means=[[0.0, 0.0], [1.0, 1.0]], stds=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"`stds` must be finite and > 0, got \[0.0\]"):
        ModeCoverage(means=[[0.0, 0.0]], stds=0.0)
    with pytest.raises(ValueError, match="`threshold` must be a finite number > 0.*-3"):
        ModeCoverage(means=[[0.0, 0.0]], stds=1.0, threshold=-3)
    with pytest.raises(ValueError, match="`min_samples` must be an integer >= 1, got 0"):
        ModeCoverage(means=[[0.0, 0.0]], stds=1.0, min_samples=0)
    metric = ModeCoverage(means=[[0.0, 0.0]], stds=1.0)
    with pytest.raises(ValueError, match=r"`samples` must have shape \(n, 2\).*\(4, 3\)"):
        metric.update(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="`samples` must be a tensor, got list"):
        metric.update([[0.0, 0.0]])
    with pytest.raises(RuntimeError, match="saw no samples"), pytest.warns(UserWarning, match="before the ``update``"):
        ModeCoverage(means=[[0.0, 0.0]], stds=1.0).compute()
