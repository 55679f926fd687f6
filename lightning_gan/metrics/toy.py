r"""Metrics for toy data whose density is known exactly (e.g. :class:`lightning_gan.data.toy.ToyDataModule`).

Likelihood and sample quality are different questions, and with a known data density :math:`p` both
can be asked of a generator :math:`q`:

* **sample quality**, :class:`LogProbOfSamples`: :math:`E_{y \sim q}[\log p(y)]`, high when the samples
  sit on the data's modes, whether or not they cover all of them;
* **coverage**, :class:`~lightning_gan.metrics.parzen.ParzenLogLikelihood` with the generator's samples
  as centres: :math:`E_{x \sim p}[\log \hat q(x)]`, poor when a mode of the data has no samples near it.

Mode collapse scores well on the first and badly on the second; a model that sprays most of its mass
as noise does the opposite.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_gan.metrics.parzen import ParzenLogLikelihood

__all__ = ["LogProbOfSamples", "ParzenLogLikelihood"]


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
