"""Sample quality (LogProbOfSamples) and coverage (Parzen likelihood) disagree, in both directions.

The two examples of the theory, on a ring of 8 Gaussians (std 0.05, radius 2):

(a) a model that memorises its training set (a Parzen mixture of width 1e-3 on the training points)
    draws samples as good as the data's own, yet gives held-out data a poor likelihood;
(b) ``0.01 p + 0.99 noise`` gives held-out data a likelihood within log 100 of p's own, yet draws
    samples that are mostly off the data.
"""

from __future__ import annotations

import math

import pytest
import torch

from lightning_gan.data.toy import GaussianMixture2D, ring8
from lightning_gan.metrics.parzen import ParzenLogLikelihood
from lightning_gan.metrics.toy import LogProbOfSamples

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
