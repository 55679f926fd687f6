"""AIS log-likelihood: the exact answer of a linear generator, BDMC's sandwich, units and per-point seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_gan.metrics import AISLogLikelihood
from lightning_gan.metrics import _counter_rng as rng
from lightning_gan.metrics.annealing import ais_log_likelihood, bdmc, sigmoid_schedule

def linear_problem(num_points: int, sigma: float, seed: int = 0):
    """G(z) = W z + b with z in R^10, x in R^784, data drawn from the model, and the exact log p(x).

    W's scale gives each latent direction a posterior precision of ~785 (about 33 nats of information
    over the prior), the regime of an image generator at sigma ~ 0.1 per [0, 1] pixel.
    """
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(784, 10, generator=g) * 0.3
    bias = torch.randn(784, generator=g) * 0.5
    x = torch.randn(num_points, 10, generator=g) @ weight.T + bias + sigma * torch.randn(num_points, 784, generator=g)
    cov = weight.double() @ weight.double().T + sigma**2 * torch.eye(784, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(bias.double(), covariance_matrix=cov).log_prob(x.double())
    generator = nn.Linear(10, 784)
    with torch.no_grad():
        generator.weight.copy_(weight)
        generator.bias.copy_(bias)
    return generator, x, exact


def test_linear_generator_matches_the_exact_marginal_within_a_nat():
    # The acceptance protocol: 1,000 distributions, 16 chains, 100 points, z in R^10, x in R^784.
    generator, x, exact = linear_problem(100, sigma=0.3)
    result = ais_log_likelihood(generator, x, latent_dim=10, sigmas=0.3, num_steps=1000, num_chains=16)
    error = (result.log_likelihood[:, 0] - exact).mean().item()
    # A stochastic lower bound: below the truth, by less than a nat (a little above only by Monte Carlo noise).
    assert -1.0 < error < 0.1, error
    assert 0.5 < result.acceptance_rate.mean().item() < 0.8  # adapted toward 0.65
    # Fewer distributions, larger error: the bias is what the schedule length buys down.
    short = ais_log_likelihood(generator, x[:20], latent_dim=10, sigmas=0.3, num_steps=100, num_chains=16)
    short_error = (short.log_likelihood[:, 0] - exact[:20]).mean().item()
    assert short_error < error - 2.0, (short_error, error)


def test_a_generator_that_ignores_z_gives_the_gaussian_density_exactly():
    # p(x) = N(x; b, sigma^2 I) whatever the chains do: every log-weight increment is the same number.
    bias = torch.randn(30)
    x = torch.randn(5, 30)
    result = ais_log_likelihood(lambda z: bias.expand(len(z), -1), x, latent_dim=3, sigmas=[0.5, 2.0], num_steps=20,
                                num_chains=4)
    exact = torch.stack([torch.distributions.Normal(bias.double(), s).log_prob(x.double()).sum(1) for s in (0.5, 2.0)], 1)
    assert torch.allclose(result.log_likelihood, exact, rtol=1e-6, atol=1e-6)


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 40), nn.Tanh())


def test_bdmc_lower_bound_stays_below_the_upper_and_the_gap_closes():
    generator = small_mlp()
    gaps = []
    for steps in (10, 100, 1000):
        result = bdmc(generator, latent_dim=4, num_points=16, sigma=0.1, num_steps=steps, num_chains=4)
        per_point = result.upper - result.lower
        # Ordering on average, up to Monte Carlo noise: once the bounds meet, their difference is noise.
        assert per_point.mean() >= -3 * per_point.std() / math.sqrt(len(per_point)), per_point
        gaps.append(result.gap.item())
    assert gaps[0] > gaps[1] > abs(gaps[2]), gaps
    assert gaps[0] > 2.0 and abs(gaps[2]) < 1.0, gaps


def test_the_schedule_is_the_papers_sigmoid():
    betas = sigmoid_schedule(10)
    t = torch.linspace(-4, 4, 11, dtype=torch.float64)
    expected = (torch.sigmoid(t) - torch.sigmoid(t[0])) / (torch.sigmoid(t[-1]) - torch.sigmoid(t[0]))
    assert torch.allclose(betas, expected, atol=1e-15) and betas[0] == 0 and betas[-1] == 1
    assert (betas[1:] > betas[:-1]).all()


def test_the_counter_stream_matches_its_python_formula_and_is_standard_normal():
    values = torch.tensor([0, 1, 2**31, 2**32 - 1])
    assert [int(v) for v in rng.mix32(values)] == [rng.mix32(int(v)) for v in values]
    keys = rng.row_keys(0, torch.arange(4000), 4).reshape(-1)
    z = rng.normals(keys, 2, 7, 8).double()
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    assert torch.corrcoef(z.T).fill_diagonal_(0).abs().max() < 0.02  # coordinates independent
    assert torch.corrcoef(torch.stack([z[:, 0], rng.normals(keys, 2, 8, 8)[:, 0].double()])).abs()[0, 1] < 0.02
    assert not torch.equal(rng.row_keys(0, torch.arange(3), 2), rng.row_keys(1, torch.arange(3), 2))


def test_a_points_estimate_does_not_depend_on_the_points_beside_it():
    generator = small_mlp()
    x = torch.randn(12, 40) * 0.5
    together = ais_log_likelihood(generator, x, 4, [0.1, 0.3], num_steps=50, num_chains=4).log_likelihood
    alone = ais_log_likelihood(generator, x[7:8], 4, [0.1, 0.3], num_steps=50, num_chains=4,
                               point_ids=torch.tensor([7])).log_likelihood
    assert torch.allclose(together[7], alone[0], rtol=1e-6)
    other_seed = ais_log_likelihood(generator, x[7:8], 4, [0.1, 0.3], num_steps=50, num_chains=4, seed=1,
                                    point_ids=torch.tensor([7])).log_likelihood
    assert not torch.equal(other_seed, alone)


def test_the_best_sigma_on_simulated_data_is_the_simulating_one():
    generator, x, exact = linear_problem(40, sigma=0.2, seed=1)
    metric = AISLogLikelihood(latent_dim=10, sigmas=[0.1, 0.2, 0.4], num_steps=100, num_chains=4, generator=generator)
    metric.update(x)
    result = metric.compute()
    assert result["best_sigma"].item() == 0.2
    assert result["log_likelihood"].shape == (3,) and result["acceptance_rate"].shape == (3,)
    assert result["num_points"].item() == 40 and result["num_steps"].item() == 100
    assert result["best_log_likelihood"].item() < exact.mean().item() + 0.5


def test_value_range_reports_unit_pixel_numbers():
    generator = small_mlp()  # outputs in (-1, 1)
    x = torch.rand(6, 40) * 2 - 1
    in_unit = AISLogLikelihood(latent_dim=4, sigmas=[0.1], num_steps=30, num_chains=2, value_range=(-1.0, 1.0),
                               generator=generator)
    in_unit.update(x)
    mapped = AISLogLikelihood(latent_dim=4, sigmas=[0.1], num_steps=30, num_chains=2,
                              generator=lambda z: (generator(z) + 1) / 2)
    mapped.update((x + 1) / 2)
    a, b = in_unit.compute(), mapped.compute()
    assert a["best_log_likelihood"].item() == pytest.approx(b["best_log_likelihood"].item(), rel=1e-5)
    assert a["bits_per_dim"].item() == pytest.approx(-a["best_log_likelihood"].item() / (40 * math.log(2)))


def test_inference_mode_and_train_mode_batch_norm_are_handled():
    generator = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.Linear(16, 8)).train()
    x = torch.randn(4, 8)
    with torch.inference_mode():  # as in Lightning's validation loop
        first = ais_log_likelihood(generator, x, 3, 1.0, num_steps=10, num_chains=3).log_likelihood
    assert generator.training and generator[1].num_batches_tracked.item() == 0  # eval for the run, then restored
    alone = ais_log_likelihood(generator, x[2:3], 3, 1.0, num_steps=10, num_chains=3, point_ids=torch.tensor([2]))
    assert torch.allclose(first[2], alone.log_likelihood[0], rtol=1e-6)  # no batch statistics mixing rows


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="num_steps"):
        AISLogLikelihood(latent_dim=2, num_steps=0)
    with pytest.raises(ValueError, match="sigma"):
        AISLogLikelihood(latent_dim=2, sigmas=[0.1, -1.0])
    with pytest.raises(ValueError, match="latent_dim"):
        AISLogLikelihood(latent_dim=0)
    with pytest.raises(TypeError, match="generator"):
        AISLogLikelihood(latent_dim=2, generator="not a net")
    with pytest.raises(RuntimeError, match="set_generator"):
        AISLogLikelihood(latent_dim=2).update(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="expected 2 samples of 5 values"):
        ais_log_likelihood(lambda z: torch.zeros(len(z), 4), torch.zeros(1, 5), 2, 1.0, num_steps=2, num_chains=2)
    with pytest.raises(ValueError, match="schedule"):
        ais_log_likelihood(lambda z: z, torch.zeros(1, 2), 2, 1.0, schedule=torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="NaN"):
        ais_log_likelihood(lambda z: z, torch.full((1, 2), math.nan), 2, 1.0)


# Two processes equal one: the AIS callback's run in tests/callbacks/ddp_likelihood_script.py scores 63 points on
# 2 gloo processes under gan_ddp and matches one process to 1e-6 relative (tests/callbacks/test_likelihood.py).
