r"""The AIS log-likelihood of a generator as a ``torchmetrics.Metric`` (Wu et al., 2017).

The maths, HMC settings and bidirectional Monte Carlo are in :mod:`lightning_gan.metrics.annealing`; this
module adds what an evaluation needs: a grid of observation-noise widths to choose from, the data-range
convention of :class:`~lightning_gan.metrics.ParzenLogLikelihood` (numbers in [0, 1]-pixel units, comparable
with Goodfellow et al.'s Parzen table and with Wu et al.'s AIS table), and states that merge exactly across
batches and processes.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from lightning_gan.metrics.annealing import (
    AISResult,
    BDMCResult,
    Generator,
    SigmasLike,
    ais_log_likelihood,
    as_sigmas,
    bdmc,
    check_options,
    default_ais_sigmas,
    reverse_ais_log_likelihood,
    sigmoid_schedule,
)
from lightning_gan.metrics.parzen import ValueRange, _as_value_range, _SigmaGridMetric

__all__ = [
    "AISLogLikelihood",
    "AISResult",
    "BDMCResult",
    "ais_log_likelihood",
    "bdmc",
    "default_ais_sigmas",
    "reverse_ais_log_likelihood",
    "sigmoid_schedule",
]


class AISLogLikelihood(_SigmaGridMetric):
    r"""Mean AIS log-likelihood :math:`\log p(x)` of data under a generator with Gaussian observation noise.

    .. math:: p(x) = \int \mathcal N(z; 0, I)\, \mathcal N(x; G(z), \sigma^2 I)\, dz, \qquad
              \mathrm{LL}(\sigma) = \frac1N \sum_n \widehat{\log p}(x_n)

    Each point is scored by :func:`~lightning_gan.metrics.ais_log_likelihood` for every sigma of
    the grid at once (all points x sigmas x chains in one batch); :meth:`compute` reports every sigma and the
    best. Choose sigma on validation data and report test data at that sigma (a metric with one sigma), as
    Wu et al. did. The estimate is a stochastic **lower** bound; check the schedule with
    :func:`~lightning_gan.metrics.bdmc`.

    **Units.** As for :class:`~lightning_gan.metrics.ParzenLogLikelihood`: with ``value_range=(low, high)``
    the sigmas are given, and the log-likelihoods reported, for the data mapped onto [0, 1]; the generator
    and data stay in their own units, and the map's Jacobian :math:`d \ln(\text{high} - \text{low})` is added.

    **DDP.** The state is the per-sigma count, mean and sum of squared deviations, merged exactly (Chan et
    al.), so every process's points count once. A point's random numbers depend only on ``(seed, point id,
    chain)``: pass global ``point_ids`` to :meth:`update` and the result does not depend on how the points
    are split over processes (up to the generator's own floating-point dependence on batch composition).

    Args:
        latent_dim: Size of the generator's latent vector (prior :math:`\mathcal N(0, I)`).
        sigmas: Observation-noise widths (in [0, 1] units when ``value_range`` is set); default
            :func:`~lightning_gan.metrics.annealing.default_ais_sigmas`.
        num_steps: Intermediate distributions (Wu et al. report 10,000; 1,000 is within a nat or two on
            simple models; check with BDMC).
        num_chains: Independent chains per point (Wu et al.: 16).
        leapfrog_steps: Leapfrog steps per HMC transition (Wu et al.: 10).
        step_size: Initial leapfrog step size (adapted per chain).
        seed: Seed of the counter-based random stream.
        value_range: ``(low, high)``, the range of the data and generator outputs, mapped onto [0, 1] for
            the reported numbers; ``None`` reports in the data's own units.
        generator: The generator (maps ``(N, latent_dim)`` to samples); can be set later with
            :meth:`set_generator`. It is not part of the metric's state.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> weight = torch.randn(2, 16)
        >>> x = torch.randn(32, 2) @ weight + 0.5 * torch.randn(32, 16)  # data of the model at sigma 0.5
        >>> metric = AISLogLikelihood(latent_dim=2, sigmas=[0.25, 0.5, 1.0], num_steps=50, num_chains=4,
        ...     generator=lambda z: z @ weight)
        >>> metric.update(x)
        >>> result = metric.compute()
        >>> result["log_likelihood"].shape, result["best_sigma"].item()
        (torch.Size([3]), 0.5)
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    _per_sigma = ("log_likelihood", "stderr", "sigmas", "acceptance_rate")

    def __init__(
        self,
        latent_dim: int,
        sigmas: Optional[SigmasLike] = None,
        num_steps: int = 1000,
        num_chains: int = 16,
        leapfrog_steps: int = 10,
        step_size: float = 0.1,
        seed: int = 0,
        value_range: Optional[ValueRange] = None,
        generator: Optional[Generator] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_options(latent_dim, num_steps, num_chains, leapfrog_steps, step_size, seed)
        self.latent_dim = latent_dim
        self.sigmas = as_sigmas(default_ais_sigmas() if sigmas is None else sigmas)
        self.num_steps, self.num_chains, self.leapfrog_steps = num_steps, num_chains, leapfrog_steps
        self.step_size, self.seed = float(step_size), seed
        self.value_range = _as_value_range(value_range)
        self._add_moments(self.sigmas.numel())
        self.add_state("acceptance", torch.zeros(self.sigmas.numel(), dtype=torch.float64), dist_reduce_fx="sum")
        self._dim: Optional[int] = None
        self._next_id = 0
        self.set_generator(generator)

    def set_generator(self, generator: Optional[Generator]) -> None:
        """Sets the generator to evaluate; the state is kept.

        Stored outside the module tree on purpose: the metric evaluates a model it does not own, so the
        generator's weights must not join the metric's ``state_dict`` or move with ``metric.to(...)``.
        """
        if generator is not None and not callable(generator):
            raise TypeError(f"`generator` must be callable (latents -> samples), got {type(generator).__name__}.")
        self.__dict__["_generator"] = generator

    def reset(self) -> None:
        """Clears the state and restarts the default point ids at 0."""
        super().reset()
        self._next_id = 0

    @property
    def scale(self) -> float:
        """``high - low`` of ``value_range`` (1 without one): data units per [0, 1]-unit."""
        return 1.0 if self.value_range is None else self.value_range[1] - self.value_range[0]

    def update(self, x: Tensor, point_ids: Optional[Tensor] = None) -> None:
        """Scores a batch of points ``x`` (``(N, ...)``, in ``value_range``) for every sigma.

        Args:
            x: Data points, shaped like the generator's samples.
            point_ids: Global integer ids of the points (they seed each point's chains). Default: the next
                ids of a counter local to this process, which under DDP repeats across processes; pass ids
                there for results that do not depend on the split.

        Raises:
            RuntimeError: If no generator was set.
        """
        generator = self.__dict__["_generator"]
        if generator is None:
            raise RuntimeError("AISLogLikelihood has no generator: pass `generator=` or call `set_generator(...)`.")
        if point_ids is None:
            point_ids = torch.arange(self._next_id, self._next_id + len(x))
        self._next_id += len(x)
        result = ais_log_likelihood(
            generator, x, self.latent_dim, self.sigmas * self.scale, num_steps=self.num_steps,
            num_chains=self.num_chains, leapfrog_steps=self.leapfrog_steps, step_size=self.step_size,
            seed=self.seed, point_ids=point_ids,
        )
        self._dim = x[0].numel()
        self._add_points(result.log_likelihood + self._dim * math.log(self.scale))
        self.acceptance = self.acceptance + result.acceptance_rate.sum(dim=0).to(self.acceptance)

    def compute(self) -> dict[str, Tensor]:
        """Per-sigma means, standard errors and acceptance rates, and the best sigma's values.

        Returns:
            A dict of float64 tensors: ``log_likelihood``, ``stderr``, ``acceptance_rate`` (each
            ``(n_sigma,)``), ``sigmas``, ``best_sigma``, ``best_log_likelihood``, ``best_stderr``,
            ``bits_per_dim``, and the protocol: ``num_points``, ``num_steps``, ``num_chains``, ``leapfrog_steps``.

        Raises:
            RuntimeError: If no point was seen.

        Warns:
            UserWarning: If the grid has two or more sigmas and the best is its smallest or largest.
        """
        result = self._best_of_grid(self.sigmas, self._dim or 1)
        result["acceptance_rate"] = self.acceptance / self.count.clamp(min=1.0)
        result["num_points"] = self.count.clone()
        for name in ("num_steps", "num_chains", "leapfrog_steps"):
            result[name] = torch.tensor(float(getattr(self, name)), dtype=torch.float64)
        return result

