r"""The Gaussian Parzen-window log-likelihood of Goodfellow et al. (2014), after Breuleux et al. (2011).

A GAN has no tractable density, so its likelihood is estimated by putting an isotropic Gaussian of width
:math:`\sigma` on each of :math:`M` generated samples :math:`\mu_i` and scoring held-out data under that
mixture:

.. math:: \log \hat p(x) = \log \frac{1}{M} \sum_{i=1}^{M} \exp\Big(-\frac{\|x - \mu_i\|^2}{2\sigma^2}\Big)
          - d \log\big(\sigma \sqrt{2\pi}\big)

:math:`\sigma` is chosen on validation data and the estimate reported on test data. The estimate is
known to be poor in high dimension (Theis et al., 2016): it measures how well the samples *cover* the
data, not how good each sample is. A model that memorises its training set has perfect samples and a
poor held-out Parzen likelihood; ``0.01 p(x) + 0.99 noise`` has a likelihood within :math:`\log 100`
of :math:`p` and mostly useless samples. Report it next to a sample-quality measure, never alone.

**Units.** A log-density depends on the units of the data: the same images scaled to [-1, 1] instead of
[0, 1] have every log-likelihood :math:`d \ln 2` lower (543.4 nats at :math:`d = 784`), and a window of
width :math:`\sigma` means a different thing. Published numbers (Goodfellow et al., 2014, Table 1: MNIST
225 ± 2, TFD 2057 ± 26) use pixels in [0, 1]. :class:`ParzenLogLikelihood` takes ``value_range=(low,
high)``, the range of the values it is given, and maps data and centres affinely onto [0, 1] before
scoring, so its log-likelihoods, sigmas and ``bits_per_dim`` are in [0, 1]-pixel units and compare with
that table directly.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["ParzenLogLikelihood", "default_sigmas", "parzen_log_likelihood"]

# Centres per point and block whose distance the float32 path recomputes exactly (see below).
_REFINED = 4

SigmasLike = Union[Tensor, Sequence[float], float]
ValueRange = tuple[float, float]


def default_sigmas() -> Tensor:
    """The sigma grid of Goodfellow et al.'s code: 10 values log-spaced from 0.1 to 1, float64.

    Example:
        >>> default_sigmas()[[0, -1]].tolist()
        [0.1, 1.0]
    """
    return torch.logspace(-1, 0, 10, dtype=torch.float64)


def _as_sigmas(sigmas: SigmasLike, what: str = "Parzen window width") -> Tensor:
    """Validated 1-D float64 CPU tensor of widths (``what`` names them in the error)."""
    values = torch.as_tensor(sigmas.detach().cpu() if isinstance(sigmas, Tensor) else sigmas, dtype=torch.float64)
    values = values.reshape(-1)
    if values.numel() == 0:
        raise ValueError(f"`sigmas` is empty: give at least one {what}.")
    if not (torch.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"Every sigma must be finite and > 0, got {values.tolist()}.")
    return values


def _as_value_range(value_range: Any) -> Optional[ValueRange]:
    """Validated ``(low, high)`` pair of finite floats with ``low < high``, or ``None``.

    Raises:
        TypeError: If ``value_range`` is not ``None`` or a pair of numbers.
        ValueError: If the numbers are not finite or ``low >= high``.
    """
    if value_range is None:
        return None
    if isinstance(value_range, (str, bytes, Tensor)) or not isinstance(value_range, Sequence) or len(value_range) != 2:
        raise TypeError(
            f"`value_range` must be None or a pair (low, high) of numbers, the range of the data as the model "
            f"sees them (e.g. (-1.0, 1.0) for tanh images); got {value_range!r}."
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range):
        raise TypeError(f"`value_range` must hold two numbers (low, high), got {value_range!r}.")
    low, high = float(value_range[0]), float(value_range[1])
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"`value_range` must be finite with low < high, got {value_range!r}.")
    return low, high


def _merge_moments(stacked: Tensor) -> Tensor:
    r"""Merges per-part ``(count, mean, M2)`` rows, stacked as ``(parts, 3, n)``, into one ``(3, n)``.

    The parallel form of Chan et al. (1979): with :math:`n = \sum_r n_r` and
    :math:`\bar l = \sum_r n_r \bar l_r / n`,
    :math:`M_2 = \sum_r M_{2,r} + \sum_r n_r (\bar l_r - \bar l)^2`. Every term is a sum of squares of
    deviations, never a difference of large numbers, so the variance keeps its relative precision however
    large the mean. It is torchmetrics' ``dist_reduce_fx`` of the state (it receives every process's row
    stacked) and also merges each batch into the running state.

    Example:
        >>> parts = torch.tensor([[[2.0], [1.0], [2.0]], [[1.0], [4.0], [0.0]]], dtype=torch.float64)
        >>> _merge_moments(parts)[:, 0].tolist()  # the values 0, 2 and 4: mean 2, M2 = 8
        [3.0, 2.0, 8.0]
    """
    count, mean, m2 = stacked[:, 0], stacked[:, 1], stacked[:, 2]
    total = count.sum(dim=0)
    # An empty part has count 0 and so no weight; all parts empty leaves the (0, 0, 0) state.
    merged_mean = (count * mean).sum(dim=0) / total.clamp(min=1.0)
    merged_m2 = m2.sum(dim=0) + (count * (mean - merged_mean).pow(2)).sum(dim=0)
    return torch.stack([total, merged_mean, merged_m2])


def _flatten(name: str, samples: Tensor) -> Tensor:
    if not isinstance(samples, Tensor):
        raise TypeError(f"`{name}` must be a tensor, got {type(samples).__name__}.")
    if samples.dim() < 1 or samples.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one sample along its first dimension, got shape {tuple(samples.shape)}.")
    if not samples.is_floating_point():
        samples = samples.float()
    return samples.reshape(samples.shape[0], -1)


def _check_finite(name: str, samples: Tensor) -> None:
    if not torch.isfinite(samples).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")


def _check_chunk_size(chunk_size: Any) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an integer >= 1, got {chunk_size!r}.")


@torch.no_grad()
def parzen_log_likelihood(
    x: Tensor,
    centres: Tensor,
    sigmas: SigmasLike,
    chunk_size: int = 1024,
    dtype: Optional[torch.dtype] = None,
) -> Tensor:
    r"""Log-density of each row of ``x`` under a Gaussian Parzen window on ``centres``, for every sigma.

    .. math:: \log \hat p_\sigma(x) = \operatorname{logmeanexp}_i\Big(-\frac{\|x - \mu_i\|^2}{2\sigma^2}\Big)
              - d \log\big(\sigma\sqrt{2\pi}\big)

    Samples are flattened to vectors of size ``d``. Squared distances come from one matrix product,
    :math:`\|x\|^2 + \|\mu\|^2 - 2 x\cdot\mu`, computed block by block over both ``x`` and ``centres``
    so memory stays at ``chunk_size**2`` (plus one copy of the centres) whatever the sizes; each block of distances serves the whole
    sigma grid, and a running log-sum-exp per sigma carries the sum across blocks of centres.

    Args:
        x: Points to score, shape ``(N, ...)``.
        centres: Window centres (generated samples), shape ``(M, ...)`` with the same per-sample size.
        sigmas: One window width or a sequence of them, each > 0.
        chunk_size: Rows of ``x`` and of ``centres`` per block.
        dtype: dtype of the matrix product. By default float64 if either input is float64, else float32;
            the norms, distances and log-sum-exp are float64 in every case. float64 is exact to ~1e-9
            nats; float32, thanks to an exact recomputation of the nearest centres, is typically within
            1e-6 nats per point at d = 784 and within 1e-3 in the worst cases tested.

    Returns:
        float64 tensor of shape ``(N, len(sigmas))`` on ``x``'s device (no gradients: an evaluation).

    Raises:
        ValueError: On empty or non-positive sigmas, a size mismatch, empty or non-finite inputs,
            or ``chunk_size < 1``.

    Example:
        >>> x = torch.zeros(1, 784)
        >>> parzen_log_likelihood(x, x.clone(), [1.0])  # -d/2 log(2 pi)
        tensor([[-720.4478]], dtype=torch.float64)
    """
    sigma_values = _as_sigmas(sigmas)
    _check_chunk_size(chunk_size)
    x2 = _flatten("x", x)
    mu = _flatten("centres", centres)
    if x2.shape[1] != mu.shape[1]:
        raise ValueError(
            f"`x` and `centres` differ in size per sample: x has shape {tuple(x.shape)} ({x2.shape[1]} values "
            f"per sample), centres have shape {tuple(centres.shape)} ({mu.shape[1]} values per sample)."
        )
    _check_finite("x", x2)
    _check_finite("centres", mu)
    if dtype is None:
        dtype = torch.float64 if torch.float64 in (x2.dtype, mu.dtype) else torch.float32
    device = mu.device
    num_centres, dim = mu.shape

    # Distances are shift-invariant, so measure from the centres' mean: data like images in [-1, 1]
    # have large norms (a mostly -1 MNIST digit has |x|^2 ~ 600) and |x|^2 + |mu|^2 - 2 x.mu would
    # then lose digits to cancellation in float32; after centring the norms are only the spread.
    shift = mu.to(torch.float64).mean(dim=0)
    mu_c = (mu.to(torch.float64) - shift).to(dtype)
    # Norms of the values the product actually sees (after rounding to `dtype`), in float64, so a
    # point equal to a centre gets a distance of (almost exactly) zero.
    mu_sq = mu_c.to(torch.float64).pow(2).sum(dim=1)
    neg_half_precision = (-0.5 / sigma_values.pow(2)).to(device)  # -1 / (2 sigma^2), per sigma
    neg_half_precision32 = neg_half_precision.to(torch.float32)
    log_normaliser = (
        math.log(num_centres) + dim * (sigma_values.log() + 0.5 * math.log(2 * math.pi))
    ).to(device)

    # In float32 a squared distance of several hundred (784-d data) carries an absolute error of
    # ~1e-4 from the product alone, which is ~5e-3 nats at sigma = 0.1. At small sigma the few nearest
    # centres dominate the sum, so each block's _REFINED nearest get their distances recomputed
    # exactly in float64 (O(rows * d) each, negligible next to the product); the others only matter
    # at larger sigma, where the same error is divided by a larger 2 sigma^2. Measured at d = 784:
    # ~1e-6 nats per point against a float64 reference, instead of ~2e-3 without this step.
    refine = dtype != torch.float64
    out = torch.empty(x2.shape[0], sigma_values.numel(), dtype=torch.float64, device=device)
    previous_precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # TF32 products would cost ~1e-3 relative error.
    try:
        for start in range(0, x2.shape[0], chunk_size):
            x64 = x2[start : start + chunk_size].to(device=device, dtype=torch.float64)
            xc = (x64 - shift).to(dtype)
            x_sq = xc.to(torch.float64).pow(2).sum(dim=1, keepdim=True)
            # Streaming log-sum-exp over blocks of centres: a (rows, n_sigma) running value, combined
            # with each block's own log-sum-exp, never materialising all M distances per point. It is
            # float64 because the exponents reach -|x - mu|^2 / (2 sigma^2) ~ -1e4 for images at small
            # sigma, where float32's 7 digits would already cost ~1e-3 nats.
            running = torch.full((xc.shape[0], sigma_values.numel()), -math.inf, dtype=torch.float64, device=device)
            for c_start in range(0, num_centres, chunk_size):
                block = mu_c[c_start : c_start + chunk_size]
                cross = (xc @ block.T).to(torch.float64)
                sq_dist = (x_sq + mu_sq[c_start : c_start + chunk_size] - 2.0 * cross).clamp_(min=0.0)
                if refine:
                    nearest = sq_dist.topk(min(_REFINED, sq_dist.shape[1]), dim=1, largest=False).indices
                    for j in range(nearest.shape[1]):
                        column = nearest[:, j : j + 1]
                        exact = (x64 - mu[c_start + column.squeeze(1)].to(torch.float64)).pow(2).sum(dim=1, keepdim=True)
                        sq_dist.scatter_(1, column, exact)
                if refine:
                    # The sigma sweep's cost is its exps, one pass per sigma over the block. In the float32
                    # path they run in float32 on distances relative to each row's nearest centre: the
                    # terms that matter have exponents in [-40, 0], where float32 rounding costs ~1e-6
                    # relative, and each row's sum is >= 1, so its log is well conditioned. Three times
                    # cheaper than float64 exps, which makes the 10-sigma sweep cost little over one sigma.
                    row_min = sq_dist.min(dim=1, keepdim=True).values
                    excess = (sq_dist - row_min).to(torch.float32)
                    for k in range(sigma_values.numel()):
                        # Clamped at -80: far-off centres would otherwise give denormal results, which the
                        # CPU computes ~10x slower; e^-80 per term is below anything float64 can add to >= 1.
                        exponent = (excess * neg_half_precision32[k]).clamp_(min=-80.0)
                        block_sum = torch.exp(exponent).sum(dim=1, dtype=torch.float64)
                        block_lse = row_min.squeeze(1) * neg_half_precision[k] + block_sum.log()
                        running[:, k] = torch.logaddexp(running[:, k], block_lse)
                else:
                    for k in range(sigma_values.numel()):
                        block_lse = torch.logsumexp(sq_dist * neg_half_precision[k], dim=1)
                        running[:, k] = torch.logaddexp(running[:, k], block_lse)
            out[start : start + xc.shape[0]] = running - log_normaliser
    finally:
        torch.set_float32_matmul_precision(previous_precision)
    return out.to(x.device)


class _SigmaGridMetric(Metric):
    """A metric whose state is per-point ``(count, mean, M2)`` moments for each value of a grid of sigmas.

    Shared by the Parzen and AIS likelihoods: both score points for several widths and report the best.
    """

    _per_sigma = ("log_likelihood", "stderr", "sigmas")

    def _add_moments(self, num_sigmas: int) -> None:
        # Rows: count, mean, M2 (sum of squared deviations from the mean), per sigma. One packed state so
        # a process's three numbers travel together to the merge, which needs all of them at once.
        self.add_state("moments", torch.zeros(3, num_sigmas, dtype=torch.float64), dist_reduce_fx=_merge_moments)

    def _add_points(self, ll: Tensor) -> None:
        """Merges per-point values ``(N, n_sigma)`` into the moments state."""
        ll = ll.to(device=self.moments.device, dtype=torch.float64)
        # The batch's own mean and M2 (two passes, exact), merged into the running state like another process's.
        batch_mean = ll.mean(dim=0)
        batch = torch.stack([torch.full_like(batch_mean, ll.shape[0]), batch_mean, (ll - batch_mean).pow(2).sum(dim=0)])
        # Out of place: the state may have been created under inference mode (a reset during Lightning's
        # validation loop), and such tensors cannot be modified in place outside it.
        self.moments = _merge_moments(torch.stack([self.moments, batch]))

    @property
    def count(self) -> Tensor:
        """Data points seen (float64 scalar; summed over processes while synced)."""
        return self.moments[0, 0]

    def _best_of_grid(self, sigmas: Tensor, dim: int) -> dict[str, Tensor]:
        """Per-sigma means and standard errors, the best sigma's values and bits per dim; warns at a grid edge."""
        count = self.count
        if count.item() == 0:
            raise RuntimeError(f"{type(self).__name__} saw no samples: call `update(x)` before `compute()`.")
        mean = self.moments[1]
        # sqrt(M2 / N) / sqrt(N): the population std over the points, divided by sqrt(N).
        stderr = self.moments[2].clamp(min=0.0).sqrt() / count
        best = int(torch.argmax(mean))
        sigmas = sigmas.to(mean.device)
        chosen = float(sigmas[best])
        # By value, not position: a grid given out of order still has its edges at its min and max.
        at_low, at_high = chosen == float(sigmas.min()), chosen == float(sigmas.max())
        if sigmas.unique().numel() > 1 and (at_low or at_high):
            end = "smallest" if at_low else "largest"
            warnings.warn(
                f"{type(self).__name__}: the chosen sigma {chosen:.4g} is the {end} of the grid "
                f"{[round(v, 6) for v in sigmas.tolist()]}, so the best sigma may lie outside it; "
                "widen the grid (`sigmas=`) on that side.",
                UserWarning,
                stacklevel=4,
            )
        return {
            "log_likelihood": mean,
            "stderr": stderr,
            "sigmas": sigmas,
            "best_sigma": sigmas[best],
            "best_log_likelihood": mean[best],
            "best_stderr": stderr[best],
            "bits_per_dim": -mean[best] / (dim * math.log(2.0)),
        }

    def _wrap_compute(self, compute: Any) -> Any:
        # torchmetrics squeezes one-element outputs to 0-d; keep the per-sigma entries (n_sigma,) even
        # for a single sigma (the callbacks' test runs use one), so callers need no special case.
        wrapped = super()._wrap_compute(compute)

        @functools.wraps(compute)
        def keep_sigma_axis(*args: Any, **kwargs: Any) -> dict[str, Tensor]:
            result = wrapped(*args, **kwargs)
            return {k: v.reshape(-1) if k in self._per_sigma else v for k, v in result.items()}

        return keep_sigma_axis


class ParzenLogLikelihood(_SigmaGridMetric):
    r"""Mean Parzen-window log-likelihood of data under generated samples, for a grid of sigmas.

    .. math:: \mathrm{LL}(\sigma) = \frac{1}{N} \sum_{n=1}^{N} \log \hat p_\sigma(x_n),
              \qquad \mathrm{SE}(\sigma) = \frac{\operatorname{std}_n \log \hat p_\sigma(x_n)}{\sqrt{N}}

    Call :meth:`set_centres` with the generated samples, :meth:`update` with batches of real data, then
    :meth:`compute`. The centres are not a state: under DDP give every process the same centres (gather
    them first) and each its own shard of the data.

    **Units.** With ``value_range=(low, high)`` data and centres are mapped by
    :math:`x \mapsto (x - \text{low}) / (\text{high} - \text{low})` before scoring, so sigmas, log-likelihoods
    and ``bits_per_dim`` are in the units of data in [0, 1], the convention of Goodfellow et al. (2014)'s
    table: ``value_range=(-1, 1)`` on images in [-1, 1] gives the number their code would give on the
    same images in [0, 1], :math:`d \ln 2` above the one computed in [-1, 1] units. ``None`` (the
    default) scores the values as given.

    **Standard error.** The state is, per sigma, the count, mean and sum of squared deviations
    :math:`M_2 = \sum_n (l_n - \bar l)^2` of the per-point log-likelihoods :math:`l_n`; batches and
    processes are merged by Chan et al.'s parallel formula (a callable ``dist_reduce_fx`` over the stacked
    per-process rows). Unlike :math:`E[l^2] - E[l]^2`, which cancels to 0 when the spread is tiny beside
    the mean (at large sigma in 784 dimensions, :math:`|l| \sim 6000` and the spread :math:`\sim 10^{-5}`),
    this keeps the variance to a few ulps relative, and a DDP sync agrees with one process to ~1e-12
    relative. ``stderr`` uses the population std (``ddof=0``), as the original code did.

    **Edge of the grid.** :meth:`compute` warns (``UserWarning``) when the best sigma of a grid of two or
    more is its smallest or largest value: the optimum may then lie outside the grid.

    ``bits_per_dim`` is :math:`-\mathrm{LL}(\sigma^*) / (d \ln 2)`, the bits per value of a density over the
    scored units: with ``value_range`` set, a density over [0, 1] per pixel (add 8 for the familiar bits
    per 8-bit pixel, a density over [0, 256], meaningful only for dequantised data); it can be negative.

    Args:
        sigmas: Window widths, in the scored units (after ``value_range``); default :func:`default_sigmas`
            (``logspace(-1, 0, 10)``, Goodfellow et al.'s grid for pixels in [0, 1]).
        chunk_size: Block size of :func:`parzen_log_likelihood`.
        value_range: ``(low, high)``, the range of the data and centres given to the metric, mapped to
            [0, 1] before scoring; ``None`` for no rescaling.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: On empty or non-positive sigmas, ``chunk_size < 1``, or a ``value_range`` that is not
            finite with ``low < high``.
        TypeError: If ``value_range`` is not ``None`` or a pair of numbers.

    Example:
        >>> metric = ParzenLogLikelihood(sigmas=[0.25, 0.35, 0.5], value_range=(-1.0, 1.0))
        >>> metric.set_centres(torch.zeros(1, 2))  # (0.5, 0.5) in [0, 1] units
        >>> metric.update(torch.tensor([[1.0, 0.0]]))  # (1.0, 0.5): 0.5 away from the centre
        >>> result = metric.compute()
        >>> round(result["best_log_likelihood"].item(), 4), result["best_sigma"].item()
        (-0.7586, 0.35)
        >>> unscaled = ParzenLogLikelihood(sigmas=[0.7])  # the same window in [-1, 1] units
        >>> unscaled.set_centres(torch.zeros(1, 2))
        >>> unscaled.update(torch.tensor([[1.0, 0.0]]))
        >>> round(unscaled.compute()["best_log_likelihood"].item() + 2 * math.log(2), 4)  # d ln 2 lower
        -0.7586
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        sigmas: Optional[SigmasLike] = None,
        chunk_size: int = 1024,
        value_range: Optional[ValueRange] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_chunk_size(chunk_size)
        self.sigmas = _as_sigmas(default_sigmas() if sigmas is None else sigmas)
        self.chunk_size = chunk_size
        self.value_range = _as_value_range(value_range)
        self._add_moments(self.sigmas.numel())
        self.centres: Optional[Tensor] = None
        self._sample_shape: Optional[tuple[int, ...]] = None
        self._centres_float64 = False
        self._warned_range = False

    @property
    def dim(self) -> Optional[int]:
        """Values per sample ``d`` (the centres' flattened size), or ``None`` before :meth:`set_centres`."""
        return None if self.centres is None else self.centres.shape[1]

    def _to_unit(self, flat: Tensor) -> Tensor:
        """``flat`` mapped from ``value_range`` to [0, 1], in float64 (unchanged without a range)."""
        if self.value_range is None:
            return flat
        low, high = self.value_range
        # float64, so the map adds no rounding of its own; the product dtype is chosen from the inputs' dtypes.
        return (flat.to(torch.float64) - low) / (high - low)

    def set_centres(self, centres: Tensor) -> None:
        """Sets the window centres (generated samples, ``(M, ...)``, in ``value_range``); the state is kept.

        Raises:
            ValueError: If ``centres`` is empty or not finite.
        """
        flat = _flatten("centres", centres)
        _check_finite("centres", flat)
        self._sample_shape = tuple(centres.shape[1:])
        self._centres_float64 = flat.dtype == torch.float64
        self.centres = self._to_unit(flat.detach())

    def update(self, x: Tensor) -> None:
        """Adds the log-likelihoods of a batch of real samples ``x`` (``(N, ...)``, in ``value_range``).

        Warns once (``UserWarning``) if ``x`` has values outside ``value_range``: the numbers are then not
        in [0, 1]-pixel units.

        Raises:
            RuntimeError: If :meth:`set_centres` was not called.
            ValueError: If ``x``'s per-sample size differs from the centres', or ``x`` is not finite.
        """
        if self.centres is None:
            raise RuntimeError(
                "ParzenLogLikelihood has no centres: call `set_centres(generated_samples)` before `update(x)`."
            )
        if isinstance(x, Tensor) and x.dim() >= 1 and math.prod(x.shape[1:]) != self.centres.shape[1]:
            raise ValueError(
                f"`x` has shape {tuple(x.shape)} but the centres have shape "
                f"{(self.centres.shape[0], *self._sample_shape)}: their per-sample sizes differ."
            )
        flat = _flatten("x", x)
        _check_finite("x", flat)
        dtype = None
        if self.value_range is not None:
            self._check_range(flat)
            # The mapped copies are float64; keep the fast float32 product unless an input was float64.
            dtype = torch.float64 if self._centres_float64 or flat.dtype == torch.float64 else torch.float32
        ll = parzen_log_likelihood(self._to_unit(flat), self.centres, self.sigmas, chunk_size=self.chunk_size, dtype=dtype)
        self._add_points(ll)

    def _check_range(self, flat: Tensor) -> None:
        if self._warned_range or self.value_range is None:
            return
        low, high = self.value_range
        # A little slack for rounding in the data's own scaling (e.g. uint8 / 127.5 - 1 in float32).
        slack = 1e-4 * (high - low)
        lowest, highest = float(flat.min()), float(flat.max())
        if lowest < low - slack or highest > high + slack:
            self._warned_range = True
            warnings.warn(
                f"ParzenLogLikelihood: `x` has values in [{lowest:.4g}, {highest:.4g}], outside the declared "
                f"value_range={self.value_range}; the log-likelihoods are then not in [0, 1]-pixel units. Declare "
                "the range the data actually use, or value_range=None for no rescaling.",
                UserWarning,
                stacklevel=3,
            )

    def compute(self) -> dict[str, Tensor]:
        """The per-sigma means and standard errors, and the best sigma's values.

        Returns:
            A dict of float64 tensors: ``log_likelihood`` and ``stderr`` (each ``(n_sigma,)``), ``sigmas``,
            ``best_sigma``, ``best_log_likelihood``, ``best_stderr`` and ``bits_per_dim`` (scalars), all in
            the scored units (see ``value_range``).

        Raises:
            RuntimeError: If no sample was seen (on any process).

        Warns:
            UserWarning: If the grid has two or more sigmas and the best is its smallest or largest.
        """
        return self._best_of_grid(self.sigmas, self.dim if self.dim is not None else 1)
