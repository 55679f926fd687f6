"""DRAGAN's penalty and WGAN's weight clipping against NumPy references of the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_gan.losses import clip_weights_, dragan_penalty

TOL = 1e-6


def _tanh_critic(weight: np.ndarray):
    # D(x) = sum_j tanh((W x)_j): a nonlinear critic whose input gradient NumPy computes exactly,
    # W^T (1 - tanh^2(W x)).
    w = torch.tensor(weight)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.reshape(x.shape[0], -1) @ w.T).sum(dim=1)

    def gradient(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(x.shape[0], -1)
        return (1 - np.tanh(flat @ weight.T) ** 2) @ weight

    return critic, gradient


def test_dragan_penalty_matches_a_numpy_reference_of_the_authors_formula():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(6, 2, 3))
    noise = rng.random(size=real.shape)  # the authors' np.random.random: U[0, 1)
    epsilon = rng.random(size=6)
    weight = rng.normal(size=(5, 6))
    critic, gradient = _tanh_critic(weight)

    # Kodali et al.'s code: X_p = X + 0.5 * X.std() * U; x_hat = X + alpha (X_p - X); mean((|grad| - 1)^2).
    perturbed = real + 0.5 * real.std() * noise
    x_hat = real + (1 - epsilon[:, None, None]) * (perturbed - real)  # = eps x + (1 - eps) x_p
    norms = np.linalg.norm(gradient(x_hat), axis=1)
    expected = np.mean((norms - 1) ** 2)

    got = dragan_penalty(critic, torch.tensor(real), noise=torch.tensor(noise), epsilon=torch.tensor(epsilon))
    assert abs(got.item() - expected) < TOL * max(1.0, expected)
    # The population std, as NumPy's: the unbiased one would give another value.
    unbiased = real + 0.5 * real.std(ddof=1) * noise
    x_other = real + (1 - epsilon[:, None, None]) * (unbiased - real)
    assert abs(np.mean((np.linalg.norm(gradient(x_other), axis=1) - 1) ** 2) - expected) > 1e-4


def test_dragan_penalty_backpropagates_to_the_critic_only_and_draws_fresh_noise():
    critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    real = torch.randn(8, 3, requires_grad=True)
    penalty = dragan_penalty(critic, real)
    penalty.backward()
    # Every parameter the input gradient depends on gets a gradient (not the output bias, which it does not).
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (critic[0].weight, critic[0].bias, critic[2].weight))
    assert real.grad is None  # the real batch is detached: nothing flows to the data (or a generator)
    assert dragan_penalty(critic, real).item() != penalty.item()  # perturbation and interpolation are drawn


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scale=0.0), "`scale` must be a finite positive number"),
        (dict(scale=float("nan")), "`scale` must be a finite positive number"),
        (dict(noise=torch.zeros(3, 2)), "`noise` must have the shape of `real`"),
    ],
)
def test_dragan_penalty_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dragan_penalty(nn.Linear(2, 1), torch.randn(4, 2), **kwargs)


def test_clip_weights_clamps_every_parameter_and_leaves_small_ones_alone():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights_(net, 0.05)
    for old, new in zip(before, net.parameters()):
        assert torch.equal(new, old.clamp(-0.05, 0.05))  # exactly np.clip, biases and BN scales included
    assert bool((net[1].weight == torch.tensor(0.05)).all())  # the BN scales (initialised at 1) are clipped too, as in WGAN's code
    with pytest.raises(ValueError, match="`clip_value` must be a finite positive number"):
        clip_weights_(net, -1.0)
