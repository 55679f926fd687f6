"""Tests for lightning_gan.losses: hand-computed values, game identities, penalties."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from lightning_gan import losses
from lightning_gan.losses import (
    LOSSES,
    AdversarialLoss,
    get_loss,
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    minimax_discriminator_loss,
    minimax_generator_loss,
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
    r1_penalty,
    wasserstein_discriminator_loss,
    wasserstein_generator_loss,
)

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]
TOL = 1e-6


def _t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _log_d(logit: float) -> float:
    return math.log(_sigmoid(logit))


def _log_one_minus_d(logit: float) -> float:
    return math.log(1.0 - _sigmoid(logit))


# --------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------


def test_minimax_discriminator_by_hand() -> None:
    expected = -_mean([_log_d(r) for r in REAL]) - _mean([_log_one_minus_d(f) for f in FAKE])
    got = minimax_discriminator_loss(_t(REAL), _t(FAKE)).item()
    assert got == pytest.approx(expected, abs=TOL)


def test_minimax_generator_by_hand() -> None:
    expected = _mean([_log_one_minus_d(f) for f in FAKE])
    assert minimax_generator_loss(_t(FAKE)).item() == pytest.approx(expected, abs=TOL)


def test_non_saturating_discriminator_by_hand() -> None:
    expected = -_mean([_log_d(r) for r in REAL]) - _mean([_log_one_minus_d(f) for f in FAKE])
    got = non_saturating_discriminator_loss(_t(REAL), _t(FAKE)).item()
    assert got == pytest.approx(expected, abs=TOL)


def test_non_saturating_generator_by_hand() -> None:
    expected = -_mean([_log_d(f) for f in FAKE])
    assert non_saturating_generator_loss(_t(FAKE)).item() == pytest.approx(expected, abs=TOL)


def test_wasserstein_by_hand() -> None:
    expected_d = _mean(FAKE) - _mean(REAL)  # (-1.25) - 0.5
    assert expected_d == pytest.approx(-1.75)
    assert wasserstein_discriminator_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(
        expected_d, abs=TOL
    )
    assert wasserstein_generator_loss(_t(FAKE)).item() == pytest.approx(-_mean(FAKE), abs=TOL)


def test_hinge_by_hand() -> None:
    # real: max(0, 1-2)=0, max(0, 1+1)=2 -> 1; fake: max(0, 1.5)=1.5, max(0, -2)=0 -> 0.75
    expected_d = _mean([max(0.0, 1.0 - r) for r in REAL]) + _mean(
        [max(0.0, 1.0 + f) for f in FAKE]
    )
    assert expected_d == pytest.approx(1.75)
    got = hinge_discriminator_loss(_t(REAL), _t(FAKE)).item()
    assert got == pytest.approx(expected_d, abs=TOL)
    assert hinge_generator_loss(_t(FAKE)).item() == pytest.approx(-_mean(FAKE), abs=TOL)


def test_least_squares_by_hand() -> None:
    expected_d = 0.5 * _mean([(r - 1.0) ** 2 for r in REAL]) + 0.5 * _mean([f**2 for f in FAKE])
    expected_g = 0.5 * _mean([(f - 1.0) ** 2 for f in FAKE])
    assert least_squares_discriminator_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(
        expected_d, abs=TOL
    )
    assert least_squares_generator_loss(_t(FAKE)).item() == pytest.approx(expected_g, abs=TOL)


def test_minimax_game_identity() -> None:
    # V(D, G) = E log D(x) + E log(1 - D(G(z))); the discriminator minimises -V,
    # the (saturating) generator minimises V.
    value = _mean([_log_d(r) for r in REAL]) + _mean([_log_one_minus_d(f) for f in FAKE])
    assert -minimax_discriminator_loss(_t(REAL), _t(FAKE)).item() == pytest.approx(value, abs=TOL)
    fake_term = _mean([_log_one_minus_d(f) for f in FAKE])
    assert minimax_generator_loss(_t(FAKE)).item() == pytest.approx(fake_term, abs=TOL)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_any_shape_reduced_with_mean(name: str) -> None:
    loss = LOSSES[name]
    real, fake = _t(REAL), _t(FAKE)
    d_flat = loss.discriminator(real, fake)
    d_col = loss.discriminator(real.unsqueeze(1), fake.unsqueeze(1))
    assert d_col.shape == torch.Size([])
    torch.testing.assert_close(d_col, d_flat)
    torch.testing.assert_close(loss.generator(fake.view(2, 1, 1)), loss.generator(fake))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_saturated_logits_exact(name: str) -> None:
    # far from the float32 overflow point, but where log(sigmoid(.)) would give -inf
    big = torch.tensor([1e4, -1e4], dtype=torch.float32)
    loss = LOSSES[name]
    assert torch.isfinite(loss.discriminator(big, big))
    assert torch.isfinite(loss.generator(big))
    if name in ("minimax", "non_saturating"):
        # softplus(1e4) = 1e4, softplus(-1e4) = 0
        assert minimax_discriminator_loss(big, big).item() == pytest.approx(1e4)
        assert non_saturating_generator_loss(big).item() == pytest.approx(5e3)
        assert minimax_generator_loss(big).item() == pytest.approx(-5e3)


# --------------------------------------------------------------------------
# Hypothesis: finiteness and gradient signs
# --------------------------------------------------------------------------

_logit = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
_logits = st.lists(_logit, min_size=1, max_size=8)
_names = st.sampled_from(sorted(LOSSES))


def _leaf(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


@settings(max_examples=100, deadline=None)
@given(name=_names, real=_logits, fake=_logits)
@example(name="minimax", real=[1e4, -1e4], fake=[1e4, -1e4])
@example(name="non_saturating", real=[-1e4], fake=[1e4])
@example(name="least_squares", real=[-1e4], fake=[1e4])
def test_losses_and_grads_finite(name: str, real: list[float], fake: list[float]) -> None:
    loss = LOSSES[name]
    real_t, fake_t = _leaf(real), _leaf(fake)
    d_loss = loss.discriminator(real_t, fake_t)
    assert d_loss.dtype == torch.float32 and d_loss.shape == torch.Size([])
    g_real, g_fake = torch.autograd.grad(d_loss, (real_t, fake_t))
    assert torch.isfinite(d_loss)
    assert torch.isfinite(g_real).all() and torch.isfinite(g_fake).all()

    fake_t = _leaf(fake)
    g_loss = loss.generator(fake_t)
    (g_gen,) = torch.autograd.grad(g_loss, fake_t)
    assert torch.isfinite(g_loss)
    assert torch.isfinite(g_gen).all()


def _sign_region(
    name: str, real: list[float], fake: list[float]
) -> tuple[list[float], list[float]]:
    # Least squares pulls scores towards fixed targets (real -> 1, fake -> 0), so
    # "real up, fake down" only holds on the near side of each target.
    if name == "least_squares":
        return [min(r, 1.0) for r in real], [max(f, 0.0) for f in fake]
    return real, fake


@settings(max_examples=100, deadline=None)
@given(name=_names, real=_logits, fake=_logits)
@example(name="hinge", real=[1.0], fake=[-1.0])
def test_discriminator_gradient_signs(name: str, real: list[float], fake: list[float]) -> None:
    real, fake = _sign_region(name, real, fake)
    real_t, fake_t = _leaf(real), _leaf(fake)
    d_loss = LOSSES[name].discriminator(real_t, fake_t)
    g_real, g_fake = torch.autograd.grad(d_loss, (real_t, fake_t))
    # minimising moves real logits up and fake logits down
    assert (g_real <= 0).all()
    assert (g_fake >= 0).all()


@settings(max_examples=100, deadline=None)
@given(name=_names, fake=_logits)
def test_generator_gradient_signs(name: str, fake: list[float]) -> None:
    if name == "least_squares":
        fake = [min(f, 1.0) for f in fake]
    fake_t = _leaf(fake)
    (g_fake,) = torch.autograd.grad(LOSSES[name].generator(fake_t), fake_t)
    # the generator wants its samples scored as more real
    assert (g_fake <= 0).all()


@settings(max_examples=100, deadline=None)
@given(real=_logits, fake=_logits)
def test_least_squares_gradients_point_to_targets(real: list[float], fake: list[float]) -> None:
    real_t, fake_t = _leaf(real), _leaf(fake)
    g_real, g_fake = torch.autograd.grad(
        least_squares_discriminator_loss(real_t, fake_t), (real_t, fake_t)
    )
    # descent direction is -grad: towards 1 for real, towards 0 for fake
    assert (g_real * (real_t.detach() - 1.0) >= 0).all()
    assert (g_fake * fake_t.detach() >= 0).all()
    fake_t = _leaf(fake)
    (g_gen,) = torch.autograd.grad(least_squares_generator_loss(fake_t), fake_t)
    assert (g_gen * (fake_t.detach() - 1.0) >= 0).all()


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_get_loss_round_trip(name: str) -> None:
    loss = get_loss(name)
    assert loss is LOSSES[name]
    assert loss.name == name
    assert loss is getattr(losses, name)


def test_registry_contents() -> None:
    assert set(LOSSES) == {"minimax", "non_saturating", "wasserstein", "hinge", "least_squares"}
    probabilistic = {name for name, loss in LOSSES.items() if loss.probabilistic}
    assert probabilistic == {"minimax", "non_saturating"}
    assert LOSSES["hinge"].discriminator is hinge_discriminator_loss
    assert LOSSES["hinge"].generator is hinge_generator_loss
    for name in losses.__all__:
        assert hasattr(losses, name)


def test_adversarial_loss_is_frozen() -> None:
    assert isinstance(LOSSES["minimax"], AdversarialLoss)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LOSSES["minimax"].name = "other"  # type: ignore[misc]


def test_get_loss_unknown_name() -> None:
    with pytest.raises(ValueError) as info:
        get_loss("foo")
    message = str(info.value)
    assert "'foo'" in message
    for name in LOSSES:
        assert repr(name) in message
    listed = message.split("choose one of:", 1)[1]
    assert [part.strip().strip("'") for part in listed.split(",")] == sorted(LOSSES)


def test_get_loss_non_str() -> None:
    with pytest.raises(TypeError):
        get_loss(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Gradient penalty (WGAN-GP)
# --------------------------------------------------------------------------


def _conv_critic() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, kernel_size=3, padding=1),
        nn.Tanh(),  # smooth, so the double-backward through the penalty is non-trivial
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 1),
    ).double()


def _manual_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    eps = eps.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grads.flatten(1).pow(2).sum(1).sqrt()
    return ((norms - 1) ** 2).mean()


def test_gradient_penalty_matches_manual_and_backprops() -> None:
    critic = _conv_critic()
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(5, 2, 4, 4, dtype=torch.float64, generator=gen)
    fake = torch.randn(5, 2, 4, 4, dtype=torch.float64, generator=gen)
    eps = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)

    got = gradient_penalty(critic, real, fake, eps)
    ref = _manual_penalty(critic, real, fake, eps)
    torch.testing.assert_close(got, ref)
    assert got.item() > 0

    # the last bias shifts D but not grad_x D, so it is the one parameter left unused
    params = list(critic.parameters())[:-1]
    got_grads = torch.autograd.grad(got, params, retain_graph=True)
    ref_grads = torch.autograd.grad(ref, params)
    for g, r in zip(got_grads, ref_grads):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r)
    # the conv weights only see the penalty through create_graph=True
    assert got_grads[0].abs().sum() > 0

    # epsilon may also be given already broadcastable
    torch.testing.assert_close(gradient_penalty(critic, real, fake, eps.view(5, 1, 1, 1)), got)


def test_gradient_penalty_default_epsilon_is_uniform_per_sample() -> None:
    critic = _conv_critic()
    real = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    fake = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    torch.manual_seed(123)
    got = gradient_penalty(critic, real, fake)
    torch.manual_seed(123)
    eps = torch.rand(3, 1, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(got, _manual_penalty(critic, real, fake, eps))


def test_gradient_penalty_linear_critic_analytic() -> None:
    # D(x) = w.x + b has grad_x D = w everywhere, so GP = (||w|| - 1)^2 for any epsilon
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1)).double()
    w = critic[1].weight
    real = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake)
    w_norm = w.detach().norm().item()
    assert penalty.item() == pytest.approx((w_norm - 1.0) ** 2, abs=TOL)

    penalty.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    expected = 2 * (w_norm - 1.0) * w.detach() / w_norm
    torch.testing.assert_close(w.grad, expected)


def test_gradient_penalty_unit_norm_critic_is_zero() -> None:
    critic = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.8]]))
    real = torch.randn(4, 2, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, torch.randn(4, 2, dtype=torch.float64))
    assert penalty.item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_penalty_does_not_reach_generator() -> None:
    generator = nn.Linear(3, 4).double()
    critic = nn.Linear(4, 1).double()
    fake = generator(torch.randn(5, 3, dtype=torch.float64))
    real = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    gradient_penalty(critic, real, fake).backward()
    assert all(p.grad is None for p in generator.parameters())
    assert real.grad is None
    assert critic.weight.grad is not None


def test_gradient_penalty_zero_gradient_is_finite() -> None:
    # a critic that ignores its input: grad norm 0, penalty 1, gradients finite (no 0/0)
    critic = nn.Linear(3, 1).double()
    with torch.no_grad():
        critic.weight.zero_()
    penalty = gradient_penalty(critic, torch.randn(2, 3).double(), torch.randn(2, 3).double())
    assert penalty.item() == pytest.approx(1.0)
    penalty.backward()
    assert torch.isfinite(critic.weight.grad).all()


def test_gradient_penalty_shape_mismatch() -> None:
    critic = nn.Linear(3, 1)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 3\)"):
        gradient_penalty(critic, torch.randn(4, 3), torch.randn(5, 3))


def test_gradient_penalty_bad_epsilon() -> None:
    critic = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="epsilon"):
        gradient_penalty(critic, torch.randn(4, 3), torch.randn(4, 3), torch.rand(3))


# --------------------------------------------------------------------------
# R1 penalty
# --------------------------------------------------------------------------


def test_r1_penalty_linear_critic_analytic() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(6, 1)).double()
    w = critic[1].weight
    real = torch.randn(4, 2, 3, dtype=torch.float64).requires_grad_(True)
    penalty = r1_penalty(critic(real), real)
    assert penalty.item() == pytest.approx(w.detach().pow(2).sum().item(), abs=TOL)
    penalty.backward()
    # d/dw ||w||^2 = 2 w: the penalty must reach the critic's parameters
    torch.testing.assert_close(w.grad, 2 * w.detach())


def test_r1_penalty_matches_manual_nonlinear() -> None:
    critic = _conv_critic()
    real = torch.randn(3, 2, 4, 4, dtype=torch.float64).requires_grad_(True)
    logits = critic(real)
    got = r1_penalty(logits, real)
    (grads,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    ref = grads.flatten(1).pow(2).sum(1).mean()
    torch.testing.assert_close(got, ref)


def test_r1_penalty_requires_grad() -> None:
    critic = nn.Linear(2, 1)
    real = torch.randn(4, 2)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(critic(real), real)
