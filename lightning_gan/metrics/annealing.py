r"""Annealed importance sampling (AIS) log-likelihood of a generator, after Wu et al. (2017).

A GAN generator :math:`G` with prior :math:`p(z) = \mathcal N(0, I)` becomes a density model once given an
observation model :math:`p(x \mid z) = \mathcal N(x; G(z), \sigma^2 I)`:

.. math:: p(x) = \int p(z)\, p(x \mid z)\, dz .

AIS (Neal, 2001) estimates this integral by moving samples from the prior to the posterior through the
geometric path :math:`f_t(z) = p(z)\, p(x \mid z)^{\beta_t}`, :math:`0 = \beta_0 < \dots < \beta_T = 1`
(sigmoid schedule of Wu et al., Section 6.2). Each chain starts at :math:`z_0 \sim p(z)` and accumulates

.. math:: \log w = \sum_{t=1}^{T} (\beta_t - \beta_{t-1}) \log p(x \mid z_{t-1}),

with :math:`z_t` drawn by a Hamiltonian Monte Carlo transition that leaves :math:`f_t` invariant. Then
:math:`E[w] = p(x)` exactly, and :math:`\log \frac1K\sum_k w_k` over :math:`K` chains is a *stochastic lower
bound*: its expectation is below :math:`\log p(x)` (Jensen), by less as :math:`T` grows.

**Bidirectional Monte Carlo** (Grosse et al., 2015). On data simulated from the model, :math:`z^* \sim p(z)`,
:math:`x \sim p(x \mid z^*)`, the latent :math:`z^*` is an exact posterior sample; AIS run backwards from it
(:math:`\beta` from 1 to 0) has :math:`E[w_{\text{rev}}] = 1 / p(x)`, so
:math:`-\log \frac1K\sum_k w_{\text{rev},k}` is a stochastic *upper* bound. The gap between the two bounds
bounds the error of the forward estimate on such data; when it is small, the schedule is long enough.

HMC follows the reference code (``tonywu95/eval_gen``): ``leapfrog_steps=10`` leapfrog steps, an initial
step size of 0.01 adapted toward an acceptance rate of 0.65 (multiplied by 1.02 or 0.98 after each
transition, according to a moving average of acceptances with weight 0.9, and kept in [1e-4, 0.5]); here
the step size is adapted **per chain** rather than once for all chains. The reference computes the
reverse estimate as a log-mean-exp of ``-log w``; this module uses the unbiased form
:math:`-\log \operatorname{mean}(w)` of Grosse et al.

Everything is batched: all points x sigmas x chains are rows of one tensor, and only the schedule is a loop.
The generator runs in float32; log-weights accumulate in float64. Every random number is a pure function of
``(seed, point id, chain, step)`` (:mod:`~lightning_gan.metrics._counter_rng`), so a point's estimate does not
depend on which process or batch holds it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor, nn

from lightning_gan.metrics import _counter_rng as rng
from lightning_gan.metrics.parzen import _as_sigmas

__all__ = [
    "AISResult",
    "BDMCResult",
    "ais_log_likelihood",
    "bdmc",
    "default_ais_sigmas",
    "reverse_ais_log_likelihood",
    "sigmoid_schedule",
]

Generator = Callable[[Tensor], Tensor]
SigmasLike = Union[Tensor, Sequence[float], float]

# Streams of the counter-based RNG: forward and reverse chains never share numbers, nor do simulation draws.
_INIT, _MOMENTUM, _ACCEPT = 1, 2, 3
_REVERSE_MOMENTUM, _REVERSE_ACCEPT = 4, 5
_SIMULATE_Z, _SIMULATE_NOISE = 6, 7

# Step-size adaptation of the reference code (eval_gen, sampling/samplers.py).
TARGET_ACCEPTANCE = 0.65
_STEP_INC, _STEP_DEC = 1.02, 0.98
_STEP_MIN, _STEP_MAX = 1e-4, 0.5
_ACCEPTANCE_SLOWNESS = 0.9


def sigmoid_schedule(num_steps: int, radius: float = 4.0) -> Tensor:
    r"""The ``num_steps + 1`` inverse temperatures :math:`\beta_0 = 0, \dots, \beta_T = 1` of Wu et al. (2017).

    .. math:: \gamma_t = \operatorname{sigmoid}\big(r (2t/T - 1)\big), \qquad
              \beta_t = \frac{\gamma_t - \gamma_0}{\gamma_T - \gamma_0}

    It puts more distributions near 0 and 1, where the path changes fastest.

    Example:
        >>> betas = sigmoid_schedule(4)
        >>> betas[0].item(), betas[-1].item(), len(betas)
        (0.0, 1.0, 5)
    """
    _check_int("num_steps", num_steps)
    t = torch.linspace(-radius, radius, num_steps + 1, dtype=torch.float64)
    s = torch.sigmoid(t)
    betas = (s - s[0]) / (s[-1] - s[0])
    betas[0], betas[-1] = 0.0, 1.0
    return betas


def default_ais_sigmas() -> Tensor:
    """Observation-noise widths to choose from, for pixels in [0, 1]: ``0.05 * sqrt(2)**k``, k = 0..6.

    Wu et al. chose the variance on validation data from values near 0.005 to 0.03 (sigma 0.07 to 0.17);
    this grid brackets that range by a factor of about 2 on each side.

    Example:
        >>> [round(s, 3) for s in default_ais_sigmas().tolist()]
        [0.05, 0.071, 0.1, 0.141, 0.2, 0.283, 0.4]
    """
    return 0.05 * torch.tensor(2.0, dtype=torch.float64).sqrt() ** torch.arange(7, dtype=torch.float64)


class AISResult(NamedTuple):
    """Per-point estimates of a forward (or reverse) AIS run.

    Attributes:
        log_likelihood: ``(points, sigmas)`` float64, log-mean-exp over the chains (the bound for each point).
        log_weights: ``(points, sigmas, chains)`` float64 per-chain estimates: the log importance weights
            (forward), or minus the log reverse weights (reverse); the normaliser is included.
        acceptance_rate: ``(points, sigmas)`` mean HMC acceptance over chains and transitions.
    """

    log_likelihood: Tensor
    log_weights: Tensor
    acceptance_rate: Tensor


class BDMCResult(NamedTuple):
    """Bidirectional Monte Carlo bounds on simulated data (one value per simulated point).

    Attributes:
        lower: Forward AIS estimates (stochastic lower bounds), float64 ``(points,)``.
        upper: Reverse AIS estimates (stochastic upper bounds), float64 ``(points,)``.
        x: The simulated data, ``(points, ...)``.
    """

    lower: Tensor
    upper: Tensor
    x: Tensor

    @property
    def gap(self) -> Tensor:
        """Mean of ``upper - lower`` over the points (float64 scalar); it shrinks to 0 with the schedule."""
        return (self.upper - self.lower).mean()


# ---------------------------------------------------------------------------------------------- checks


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")


def as_sigmas(sigmas: SigmasLike) -> Tensor:
    """Validated 1-D float64 CPU tensor of observation-noise widths."""
    return _as_sigmas(sigmas, what="observation-noise width")


def check_options(latent_dim: int, num_steps: int, num_chains: int, leapfrog_steps: int, step_size: float,
                  seed: int) -> None:
    """Raises ``ValueError`` naming the first AIS option out of its range."""
    for name, value in (("latent_dim", latent_dim), ("num_steps", num_steps), ("num_chains", num_chains),
                        ("leapfrog_steps", leapfrog_steps)):
        _check_int(name, value)
    _check_int("seed", seed, minimum=0)
    _check_positive("step_size", step_size)


def _as_schedule(num_steps: int, schedule: Optional[Tensor]) -> list[float]:
    if schedule is None:
        return sigmoid_schedule(num_steps).tolist()
    betas = torch.as_tensor(schedule, dtype=torch.float64).reshape(-1)
    if betas.numel() < 2 or betas[0] != 0 or betas[-1] != 1 or (betas[1:] < betas[:-1]).any():
        raise ValueError("`schedule` must increase from exactly 0 to exactly 1 and hold at least two values.")
    return betas.tolist()


def _point_ids(point_ids: Optional[Tensor], num_points: int, device: torch.device) -> Tensor:
    if point_ids is None:
        return torch.arange(num_points, device=device)
    ids = torch.as_tensor(point_ids, device=device).reshape(-1)
    if ids.numel() != num_points or ids.is_floating_point():
        raise ValueError(f"`point_ids` must hold one integer id per point ({num_points}), got shape {tuple(ids.shape)}.")
    if (ids < 0).any():
        raise ValueError("`point_ids` must be >= 0.")
    return ids.long()


@contextlib.contextmanager
def _evaluating(generator: Generator) -> Iterator[None]:
    """Eval mode for a module generator (batch norm must not mix chains), restored afterwards, with autograd on.

    Lightning's validation loop runs under ``torch.inference_mode``, where no gradient can be taken; the
    energy gradient needs autograd, so it is re-enabled here (and only here).
    """
    modes = [(m, m.training) for m in generator.modules()] if isinstance(generator, nn.Module) else []
    for module, _ in modes:
        module.training = False
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


# ---------------------------------------------------------------------------------------------- the path


class _Path:
    r"""The annealing path for ``P`` points, ``S`` sigmas and ``K`` chains: ``R = P*S*K`` rows.

    Holds the data and per-row constants, and evaluates :math:`\ell(z) = -\|x - G(z)\|^2 / (2\sigma^2)` (the
    log-likelihood without its normaliser) and its gradient in one forward and backward pass.
    """

    def __init__(self, generator: Generator, x: Tensor, sigmas: Tensor, num_chains: int, keys: Tensor) -> None:
        self.generator = generator
        self.num_points, self.dim = x.shape[0], x[0].numel()
        self.x = x.reshape(self.num_points, 1, self.dim).detach().clone().float()  # clone: not an inference tensor
        self.num_sigmas, self.num_chains = sigmas.numel(), num_chains
        device = x.device
        inv_two_var = (0.5 / sigmas.pow(2)).to(device=device, dtype=torch.float32)
        self.inv_two_var = inv_two_var[None, :, None].expand(self.num_points, -1, num_chains).reshape(-1)
        # The sigmas share random numbers (common random numbers make their comparison less noisy).
        self.keys = keys[:, None, :].expand(-1, self.num_sigmas, -1).reshape(-1)
        # log p(x|z) = l(z) + normaliser: -d/2 log(2 pi sigma^2), exact in float64, added once at the end
        # (the weight increments' temperatures sum to 1).
        self.normaliser = (-0.5 * self.dim * torch.log(2 * math.pi * sigmas.pow(2))).to(device)

    @property
    def rows(self) -> int:
        return self.keys.numel()

    def log_likelihood(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(l(z), grad l(z))`` for rows ``z`` of shape ``(R, latent_dim)``; both detached, float32."""
        z = z.detach().requires_grad_(True)
        out = self.generator(z).float()
        if out.shape[0] != self.rows or out[0].numel() != self.dim:
            raise ValueError(
                f"The generator mapped latents of shape {tuple(z.shape)} to shape {tuple(out.shape)}; expected "
                f"{self.rows} samples of {self.dim} values each, the size of the data points."
            )
        residual = out.detach().reshape(self.num_points, -1, self.dim) - self.x
        # The backward pass of |r|^2 is written out (d l / d out = -2 r / (2 sigma^2)) and handed to the
        # generator's backward: autograd would spend three more passes over the (rows x d) residual on it.
        ll = -torch.linalg.vector_norm(residual, dim=-1).reshape(-1).pow(2) * self.inv_two_var
        # In place: the residual is not needed again, and at (rows x d) every pass over it costs.
        grad_out = residual.reshape(self.rows, self.dim).mul_((-2.0 * self.inv_two_var)[:, None])
        if not out.requires_grad:  # a generator that ignores z (or has no autograd graph): no gradient
            return ll, torch.zeros_like(z)
        (grad,) = torch.autograd.grad(out, z, grad_outputs=grad_out.reshape(out.shape))
        return ll.detach(), grad.detach()


class _Chains:
    """State of every row's chain: position, cached log-likelihood and gradient, step size, acceptance."""

    def __init__(self, path: _Path, z: Tensor, step_size: float) -> None:
        self.path = path
        self.z = z
        self.ll, self.grad = path.log_likelihood(z)
        self.step_size = torch.full((path.rows, 1), step_size, dtype=torch.float32, device=z.device)
        self.average_acceptance = torch.full((path.rows,), TARGET_ACCEPTANCE, dtype=torch.float32, device=z.device)
        self.accepted = torch.zeros(path.rows, dtype=torch.float64, device=z.device)
        self.transitions = 0

    def hmc(self, beta: float, leapfrog_steps: int, momentum_stream: int, accept_stream: int, step: int) -> None:
        r"""One HMC transition leaving :math:`p(z)\, p(x|z)^\beta` invariant, with per-chain step-size adaptation."""
        path, z, eps = self.path, self.z, self.step_size
        momentum = rng.normals(path.keys, momentum_stream, step, z.shape[1], dtype=z.dtype)
        # Energy U = |z|^2 / 2 - beta * l(z); H = U + |p|^2 / 2, in float64 (|l| reaches 1e4 at small sigma).
        h0 = _hamiltonian(z, self.ll, momentum, beta)
        p = momentum - 0.5 * eps * (z - beta * self.grad)
        z_new = z + eps * p
        for _ in range(leapfrog_steps - 1):
            _, grad = path.log_likelihood(z_new)
            p = p - eps * (z_new - beta * grad)
            z_new = z_new + eps * p
        ll_new, grad_new = path.log_likelihood(z_new)
        p = p - 0.5 * eps * (z_new - beta * grad_new)
        h1 = _hamiltonian(z_new, ll_new, p, beta)
        log_u = rng.uniforms(path.keys, accept_stream, step).squeeze(1).log()
        accept = log_u < h0 - h1  # a NaN proposal compares False: rejected
        self.z = torch.where(accept[:, None], z_new, z)
        self.ll = torch.where(accept, ll_new, self.ll)
        self.grad = torch.where(accept[:, None], grad_new, self.grad)
        # The reference adapts from the moving average *before* this transition's acceptance enters it.
        grow = (self.average_acceptance > TARGET_ACCEPTANCE)[:, None]
        self.step_size = torch.where(grow, self.step_size * _STEP_INC, self.step_size * _STEP_DEC).clamp_(_STEP_MIN, _STEP_MAX)
        accept_f = accept.float()
        self.average_acceptance = _ACCEPTANCE_SLOWNESS * self.average_acceptance + (1 - _ACCEPTANCE_SLOWNESS) * accept_f
        self.accepted += accept_f.double()
        self.transitions += 1

    def acceptance_rate(self) -> Tensor:
        return self.accepted / max(self.transitions, 1)


def _hamiltonian(z: Tensor, ll: Tensor, momentum: Tensor, beta: float) -> Tensor:
    z64, p64 = z.double(), momentum.double()
    return 0.5 * z64.pow(2).sum(dim=1) - beta * ll.double() + 0.5 * p64.pow(2).sum(dim=1)


def _result(path: _Path, log_w: Tensor, chains: _Chains, reverse: bool) -> AISResult:
    shape = (path.num_points, path.num_sigmas, path.num_chains)
    log_w = log_w.reshape(shape)
    normaliser = path.normaliser[None, :, None]
    # Forward: log w (its normaliser added) estimates log p(x). Reverse: the sum is -log w_rev, so the bound is
    # -log mean_k w_rev = -logmeanexp(-sum).
    log_w = log_w + normaliser
    if reverse:
        estimate = -(torch.logsumexp(-log_w, dim=2) - math.log(path.num_chains))
    else:
        estimate = torch.logsumexp(log_w, dim=2) - math.log(path.num_chains)
    acceptance = chains.acceptance_rate().reshape(shape).mean(dim=2)
    return AISResult(estimate, log_w, acceptance)


def _prepare(
    x: Tensor, latent_dim: int, sigmas: SigmasLike, num_steps: int, num_chains: int, leapfrog_steps: int,
    step_size: float, seed: int,
) -> tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"`x` must be a tensor of shape (points, ...) with at least one point, got {getattr(x, 'shape', x)!r}.")
    if not torch.isfinite(x).all():
        raise ValueError("`x` contains NaN or infinite values.")
    check_options(latent_dim, num_steps, num_chains, leapfrog_steps, step_size, seed)
    return as_sigmas(sigmas), x


@torch.no_grad()
def ais_log_likelihood(
    generator: Generator,
    x: Tensor,
    latent_dim: int,
    sigmas: SigmasLike,
    num_steps: int = 1000,
    num_chains: int = 16,
    leapfrog_steps: int = 10,
    step_size: float = 0.1,
    seed: int = 0,
    point_ids: Optional[Tensor] = None,
    schedule: Optional[Tensor] = None,
) -> AISResult:
    r"""Forward AIS estimate of :math:`\log p(x)` for each point and sigma (a stochastic lower bound).

    Args:
        generator: Maps latents ``(R, latent_dim)`` to samples with ``x``'s per-point size (any shape
            ``(R, ...)``); a module is put in eval mode for the call and restored afterwards.
        x: Points to score, ``(P, ...)``, in the generator's output units.
        latent_dim: Size of the latent vector; the prior is :math:`\mathcal N(0, I)`.
        sigmas: Observation-noise widths (one or several), in the units of ``x``.
        num_steps: Intermediate distributions ``T`` (the schedule has ``T + 1`` values).
        num_chains: Independent chains ``K`` per point and sigma.
        leapfrog_steps: Leapfrog steps per HMC transition.
        step_size: Initial leapfrog step size, adapted per chain toward an acceptance rate of 0.65.
        seed: Seed of the counter-based random stream (>= 0).
        point_ids: One integer id per point (default ``0..P-1``); a point's random numbers depend only on
            ``(seed, id, chain)``, so give global ids when points are split over processes or batches.
        schedule: Inverse temperatures from 0 to 1 (default :func:`sigmoid_schedule` of ``num_steps``).

    Returns:
        :class:`AISResult`; ``log_likelihood`` has shape ``(P, len(sigmas))``, in nats, float64.

    Raises:
        ValueError: On a bad count, sigma, schedule, id or data, or a generator whose output size differs from x's.

    Example:
        >>> w = torch.zeros(3, 2)
        >>> result = ais_log_likelihood(lambda z: z @ w, torch.zeros(4, 2), latent_dim=3, sigmas=1.0, num_steps=5)
        >>> torch.allclose(result.log_likelihood, torch.tensor(-math.log(2 * math.pi), dtype=torch.float64))
        True
    """
    sigma_values, x = _prepare(x, latent_dim, sigmas, num_steps, num_chains, leapfrog_steps, step_size, seed)
    betas = _as_schedule(num_steps, schedule)
    ids = _point_ids(point_ids, x.shape[0], x.device)
    with _evaluating(generator):
        path = _Path(generator, x, sigma_values, num_chains, rng.row_keys(seed, ids, num_chains))
        chains = _Chains(path, rng.normals(path.keys, _INIT, 0, latent_dim), step_size)
        log_w = torch.zeros(path.rows, dtype=torch.float64, device=x.device)
        for t in range(1, len(betas)):
            log_w += (betas[t] - betas[t - 1]) * chains.ll.double()
            if t < len(betas) - 1:  # the last transition would not change any weight
                chains.hmc(betas[t], leapfrog_steps, _MOMENTUM, _ACCEPT, t)
    return _result(path, log_w, chains, reverse=False)


@torch.no_grad()
def reverse_ais_log_likelihood(
    generator: Generator,
    x: Tensor,
    z_posterior: Tensor,
    sigma: float,
    num_steps: int = 1000,
    num_chains: int = 16,
    leapfrog_steps: int = 10,
    step_size: float = 0.1,
    seed: int = 0,
    point_ids: Optional[Tensor] = None,
    schedule: Optional[Tensor] = None,
) -> AISResult:
    r"""Reverse AIS from exact posterior samples: a stochastic **upper** bound on :math:`\log p(x)`.

    Every chain of point ``i`` starts at ``z_posterior[i]``, which must be an exact sample of
    :math:`p(z \mid x_i)`, as it is for data simulated from the model (see :func:`bdmc`); then
    :math:`E[w_{\text{rev}}] = 1/p(x)` and the estimate :math:`-\log\frac1K\sum_k w_k` is above
    :math:`\log p(x)` on average. Arguments as for :func:`ais_log_likelihood`, with one ``sigma``.
    """
    _check_positive("sigma", float(sigma))
    sigma_values, x = _prepare(x, z_posterior.shape[-1], [float(sigma)], num_steps, num_chains, leapfrog_steps,
                               step_size, seed)
    if z_posterior.dim() != 2 or z_posterior.shape[0] != x.shape[0]:
        raise ValueError(f"`z_posterior` must have shape ({x.shape[0]}, latent_dim), got {tuple(z_posterior.shape)}.")
    betas = _as_schedule(num_steps, schedule)
    ids = _point_ids(point_ids, x.shape[0], x.device)
    with _evaluating(generator):
        path = _Path(generator, x, sigma_values, num_chains, rng.row_keys(seed, ids, num_chains))
        z0 = z_posterior.detach().float().to(x.device).repeat_interleave(num_chains, dim=0)
        chains = _Chains(path, z0, step_size)
        # Accumulates sum_t (beta_t - beta_{t-1}) l(z), the negative of log w_rev without its normaliser.
        log_w = torch.zeros(path.rows, dtype=torch.float64, device=x.device)
        for t in range(len(betas) - 1, 0, -1):
            log_w += (betas[t] - betas[t - 1]) * chains.ll.double()
            if t > 1:  # a transition at beta_0 = 0 would not change any weight
                chains.hmc(betas[t - 1], leapfrog_steps, _REVERSE_MOMENTUM, _REVERSE_ACCEPT, t)
    return _result(path, log_w, chains, reverse=True)


@torch.no_grad()
def simulate(
    generator: Generator, num_points: int, latent_dim: int, sigma: float, seed: int = 0,
    point_ids: Optional[Tensor] = None, device: Optional[torch.device] = None,
) -> tuple[Tensor, Tensor]:
    r"""Draws ``(z, x)`` from the model: :math:`z \sim \mathcal N(0, I)`, :math:`x = G(z) + \sigma \epsilon`.

    Draws depend only on ``(seed, point id)``, like the chains. Returns ``(z, x)`` with ``x`` shaped like
    the generator's output.
    """
    _check_int("num_points", num_points)
    ids = _point_ids(point_ids, num_points, torch.device(device or "cpu"))
    keys = rng.row_keys(seed, ids, 1).reshape(-1)
    z = rng.normals(keys, _SIMULATE_Z, 0, latent_dim)
    with _evaluating(generator), torch.no_grad():
        mean = generator(z).float()
    noise = rng.normals(keys, _SIMULATE_NOISE, 0, mean[0].numel()).reshape(mean.shape)
    return z, mean + float(sigma) * noise


def bdmc(
    generator: Generator,
    latent_dim: int,
    num_points: int,
    sigma: float,
    num_steps: int = 1000,
    num_chains: int = 16,
    leapfrog_steps: int = 10,
    step_size: float = 0.1,
    seed: int = 0,
    point_ids: Optional[Tensor] = None,
    device: Optional[torch.device] = None,
) -> BDMCResult:
    """Bidirectional Monte Carlo on ``num_points`` points simulated from the model at ``sigma``.

    Forward AIS from the prior gives lower bounds, reverse AIS from the simulating latents upper bounds; the
    mean gap (:attr:`BDMCResult.gap`) bounds the forward estimate's error on data like the model's own, so a
    gap of a nat or less says ``num_steps`` is enough (for these data; real data can be harder).

    Example:
        >>> w = torch.randn(3, 2) * 0.3
        >>> result = bdmc(lambda z: z @ w, latent_dim=3, num_points=4, sigma=0.5, num_steps=20, num_chains=2)
        >>> bool(result.gap > -1.0)
        True
    """
    _check_positive("sigma", float(sigma))
    ids = _point_ids(point_ids, num_points, torch.device(device or "cpu"))
    z, x = simulate(generator, num_points, latent_dim, sigma, seed=seed, point_ids=ids, device=device)
    common = dict(num_steps=num_steps, num_chains=num_chains, leapfrog_steps=leapfrog_steps, step_size=step_size,
                  seed=seed, point_ids=ids)
    lower = ais_log_likelihood(generator, x, latent_dim, [float(sigma)], **common).log_likelihood[:, 0]
    upper = reverse_ais_log_likelihood(generator, x, z, float(sigma), **common).log_likelihood[:, 0]
    return BDMCResult(lower, upper, x)
