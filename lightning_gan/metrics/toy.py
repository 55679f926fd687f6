r"""Metrics for toy data whose density is known exactly (e.g. :class:`lightning_gan.data.toy.ToyDataModule`).

Likelihood and sample quality are different questions, and with a known data density :math:`p` both
can be asked of a generator :math:`q`:

* **sample quality**, :class:`LogProbOfSamples`: :math:`E_{y \sim q}[\log p(y)]`, high when the samples
  sit on the data's modes, whether or not they cover all of them;
* **coverage**, :class:`~lightning_gan.metrics.parzen.ParzenLogLikelihood` with the generator's samples
  as centres: :math:`E_{x \sim p}[\log \hat q(x)]`, poor when a mode of the data has no samples near it.

Mode collapse scores well on the first and badly on the second; a model that sprays most of its mass
as noise does the opposite.

:class:`ModeCoverage` counts the same two things directly, for mixtures of well-separated Gaussians
(ring8, grid25): the modes reached by at least one sample, the share of samples near some mode, and how
evenly those samples spread over the modes (the protocol of VEEGAN and PacGAN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Union

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_gan.metrics.parzen import ParzenLogLikelihood

__all__ = ["LogProbOfSamples", "ModeCoverage", "ParzenLogLikelihood"]


class LogProbOfSamples(Metric):
    r"""Mean true log-density of generated samples: a sample-quality score for data with a known density.

    .. math:: \mathrm{score} = \frac{1}{N} \sum_{n=1}^{N} \log p_\text{data}(y_n), \qquad y_n \sim q_\text{model}

    The states (a float64 sum and count) are summed across processes, so under DDP each process
    passes its own samples and every sample counts once.

    Args:
        log_prob: The data's exact log-density, mapping ``(n, ...)`` samples to ``(n,)`` values, e.g.
            ``ToyDataModule.log_prob``.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        TypeError: If ``log_prob`` is not callable.

    Example:
        >>> from lightning_gan.data.toy import GaussianMixture2D
        >>> mixture = GaussianMixture2D([[0.0, 0.0]], stds=1.0)
        >>> metric = LogProbOfSamples(mixture.log_prob)
        >>> metric.update(torch.zeros(4, 2))
        >>> round(metric.compute().item(), 4)  # -log(2 pi)
        -1.8379
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, log_prob: Callable[[Tensor], Tensor], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(log_prob):
            raise TypeError(f"`log_prob` must be callable, got {type(log_prob).__name__}.")
        self.log_prob = log_prob
        self.add_state("log_prob_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("nonfinite", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:
        """Adds the log-densities of a batch of generated samples (``(n, ...)``).

        Raises:
            ValueError: If ``log_prob`` does not return one value per sample, or returns NaN.
        """
        values = torch.as_tensor(self.log_prob(samples)).to(device=self.count.device, dtype=torch.float64)
        if values.shape != (samples.shape[0],):
            raise ValueError(
                f"`log_prob` must return one value per sample, shape ({samples.shape[0]},); got shape "
                f"{tuple(values.shape)} for samples of shape {tuple(samples.shape)}."
            )
        finite = torch.isfinite(samples.reshape(samples.shape[0], -1)).all(dim=1).to(values.device)
        if torch.isnan(values[finite]).any():
            raise ValueError("`log_prob` returned NaN for some finite samples.")
        values = torch.where(finite, values, torch.zeros((), dtype=values.dtype, device=values.device))
        # Out of place: states reset under inference mode cannot be modified in place outside it.
        self.log_prob_sum = self.log_prob_sum + values.sum()
        self.count = self.count + finite.sum()
        # Counted, and raised in compute on every rank together: raising here, on one rank, would leave the
        # others waiting in the next collective.
        self.nonfinite = self.nonfinite + (~finite).sum()

    def compute(self) -> Tensor:
        """The mean log-density (float64 scalar).

        Raises:
            RuntimeError: If no sample was seen (on any process).
        """
        nonfinite = int(self.nonfinite.item())
        if nonfinite:
            raise ValueError(
                f"{nonfinite} of the `samples` held NaN or infinite values (has the generator diverged?); their "
                "log-density is undefined."
            )
        if self.count.item() == 0:
            raise RuntimeError("LogProbOfSamples saw no samples: call `update(samples)` before `compute()`.")
        return self.log_prob_sum / self.count


class ModeCoverage(Metric):
    r"""Mode coverage of generated samples on a mixture of separated Gaussians: modes hit, quality, balance.

    The protocol of VEEGAN (Srivastava et al., 2017) and PacGAN (Lin et al., 2018) on ring8 and grid25
    (2,500 samples): each sample is assigned to the mode whose centre is nearest (Euclidean distance), and is
    **high quality** if it lies within ``threshold`` (3) standard deviations of that centre,
    :math:`\lVert y - \mu_k \rVert \le 3 s_k`. With :math:`c_k` the number of high-quality samples assigned
    to mode :math:`k` of :math:`K`, :math:`N` the number of samples and :math:`p_k = c_k / \sum_j c_j`,
    :meth:`compute` returns

    * ``modes_covered``: :math:`\#\{k : c_k \ge \text{min\_samples}\}`, with ``min_samples = 1`` by default:
      a mode counts as covered as soon as one high-quality sample reaches it (some follow-up papers ask for
      more, e.g. 20; set ``min_samples``);
    * ``high_quality_share``: :math:`\sum_k c_k / N`;
    * ``mode_kl``: the reverse KL divergence of PacGAN's tables, from the samples' mode histogram to the
      uniform one of the data, :math:`\mathrm{KL}(p \,\Vert\, u) = \sum_k p_k \log(K p_k)` (empty modes add
      :math:`0 \log 0 = 0`): 0 when the high-quality samples spread evenly, :math:`\log K` when they all sit
      on one mode. Only high-quality samples enter the histogram; with none it is undefined and returned
      as NaN.

    Samples with NaN or infinite values (a diverged generator) count in :math:`N` and are never high quality.
    The states (float64 per-mode counts and the sample count) are summed across processes, so under DDP
    each process passes its own samples and every sample counts once.

    Args:
        means: Mode centres, shape ``(K, D)`` (``GaussianMixture2D.means``).
        stds: Per-mode standard deviations ``(K,)``, or one number shared by all.
        threshold: The radius of a high-quality sample, in standard deviations of its mode.
        min_samples: High-quality samples a mode needs to count as covered.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: If ``means`` is not a finite ``(K, D)`` array, a std is not finite and > 0, ``threshold``
            is not finite and > 0, or ``min_samples`` is not an integer >= 1.

    Example:
        >>> metric = ModeCoverage(means=[[0.0, 0.0], [10.0, 0.0]], stds=1.0)
        >>> metric.update(torch.tensor([[0.5, 0.0], [-1.0, 1.0], [10.0, 2.9], [5.0, 0.0]]))
        >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}  # p = (2/3, 1/3)
        {'modes_covered': 2.0, 'high_quality_share': 0.75, 'mode_kl': 0.0566}
    """

    is_differentiable = False
    higher_is_better = None  # two of its numbers are better high, the KL low
    full_state_update = False

    def __init__(
        self,
        means: Union[Tensor, Sequence[Any]],
        stds: Union[float, Tensor, Sequence[float]],
        threshold: float = 3.0,
        min_samples: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        means_t = torch.as_tensor(means.detach().cpu() if isinstance(means, Tensor) else means, dtype=torch.float64)
        if means_t.dim() != 2 or means_t.shape[0] < 1 or means_t.shape[1] < 1:
            raise ValueError(f"`means` must have shape (K, D) with K, D >= 1, got shape {tuple(means_t.shape)}.")
        if not torch.isfinite(means_t).all():
            raise ValueError("`means` must be finite.")
        k = means_t.shape[0]
        stds_t = torch.as_tensor(stds.detach().cpu() if isinstance(stds, Tensor) else stds, dtype=torch.float64)
        if stds_t.dim() == 0:
            stds_t = stds_t.expand(k).clone()
        if stds_t.shape != (k,):
            raise ValueError(f"`stds` must be one number or have shape ({k},) like `means`, got shape {tuple(stds_t.shape)}.")
        if not (torch.isfinite(stds_t).all() and (stds_t > 0).all()):
            raise ValueError(f"`stds` must be finite and > 0, got {stds_t.tolist()}.")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"`threshold` must be a finite number > 0 (standard deviations), got {threshold!r}.")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"`min_samples` must be an integer >= 1, got {min_samples!r}.")
        self.means = means_t
        self.stds = stds_t
        self.threshold = float(threshold)
        self.min_samples = min_samples
        self.add_state("mode_counts", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def num_modes(self) -> int:
        """The number of modes ``K``."""
        return self.means.shape[0]

    def update(self, samples: Tensor) -> None:
        """Adds a batch of generated samples ``(n, D)`` (``n`` may be 0).

        Raises:
            TypeError: If ``samples`` is not a tensor.
            ValueError: If ``samples`` does not have shape ``(n, D)`` with the means' ``D``.
        """
        if not isinstance(samples, Tensor):
            raise TypeError(f"`samples` must be a tensor, got {type(samples).__name__}.")
        dim = self.means.shape[1]
        if samples.dim() != 2 or samples.shape[1] != dim:
            raise ValueError(f"`samples` must have shape (n, {dim}) like the means, got shape {tuple(samples.shape)}.")
        device = self.count.device
        points = samples.detach().to(device=device, dtype=torch.float64)
        means, stds = self.means.to(device), self.stds.to(device)
        distance = torch.cdist(points, means) if points.shape[0] else points.new_empty(0, means.shape[0])
        nearest_distance, nearest = distance.min(dim=1) if points.shape[0] else (points.new_empty(0), points.new_empty(0, dtype=torch.long))
        # NaN compares False, so a non-finite sample is never high quality (and counts in the total).
        high_quality = nearest_distance <= self.threshold * stds[nearest]
        counts = torch.bincount(nearest[high_quality], minlength=means.shape[0]).to(torch.float64)
        # Out of place: states reset under inference mode cannot be modified in place outside it.
        self.mode_counts = self.mode_counts + counts
        self.count = self.count + points.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """``modes_covered``, ``high_quality_share`` and ``mode_kl`` (float64 scalars; see the class).

        Raises:
            RuntimeError: If no sample was seen (on any process).
        """
        if self.count.item() == 0:
            raise RuntimeError("ModeCoverage saw no samples: call `update(samples)` before `compute()`.")
        counts = self.mode_counts
        high_quality = counts.sum()
        share = counts / high_quality
        # 0 log 0 = 0: empty modes add nothing (xlogy is 0 wherever its first argument is).
        kl = torch.special.xlogy(share, share * self.num_modes).sum()
        if high_quality.item() == 0:
            kl = torch.full_like(kl, math.nan)
        return {
            "modes_covered": (counts >= self.min_samples).sum().to(torch.float64),
            "high_quality_share": high_quality / self.count,
            "mode_kl": kl,
        }
