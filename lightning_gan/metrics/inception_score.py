r"""The Inception Score (Salimans et al., 2016) as a distributed-exact torchmetrics ``Metric``.

The IS rewards samples that a classifier assigns confidently to a class (low entropy of
:math:`p(y \mid x)`) and that together cover many classes (high entropy of the marginal :math:`p(y)`).
It is computed from the classifier's logits: for the published numbers, InceptionV3's 1008
``logits_unbiased`` (torch-fidelity's ``isc`` layer, see
:func:`~lightning_gan.metrics.features.metric_layer`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from lightning_gan.metrics._gather import FeatureSetsMetric
from lightning_gan.metrics.fid import _no_autocast

__all__ = ["InceptionScore", "inception_score"]


def inception_score(
    logits: Tensor, splits: int = 10, shuffle: bool = True, seed: int = 2020
) -> tuple[Tensor, Tensor]:
    r"""Mean and standard deviation (``ddof=0``) of the Inception Score over ``splits`` splits of ``logits``.

    torch-fidelity's ``isc_features_to_metric`` step for step: the rows are permuted by
    ``np.random.RandomState(seed).permutation(N)`` if ``shuffle``; split ``i`` is rows
    ``i * N // splits`` to ``(i + 1) * N // splits``; everything after the permutation is float64.

    Raises:
        ValueError: With fewer samples than splits (a split would be empty).

    Example:
        >>> inception_score(torch.zeros(20, 5), splits=2)  # every sample unsure: the minimum, 1
        (tensor(1., dtype=torch.float64), tensor(0., dtype=torch.float64))
    """
    n = len(logits)
    if n < splits:
        raise ValueError(f"The Inception Score needs at least `splits` ({splits}) samples, got {n}.")
    with _no_autocast(logits.device.type):
        if shuffle:
            permutation = torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)
            logits = logits[permutation]
        x = logits.to(torch.float64)
        p = x.softmax(dim=1)
        log_p = x.log_softmax(dim=1)
        scores = []
        for i in range(splits):
            rows = slice(i * n // splits, (i + 1) * n // splits)
            p_chunk, log_p_chunk = p[rows], log_p[rows]
            q_chunk = p_chunk.mean(dim=0, keepdim=True)
            scores.append((p_chunk * (log_p_chunk - q_chunk.log())).sum(dim=1).mean().exp())
        scores_t = torch.stack(scores)
        return scores_t.mean(), scores_t.std(unbiased=False)


class InceptionScore(FeatureSetsMetric):
    r"""The Inception Score of generated samples, from a classifier's **logits** (not images).

    With :math:`p(y \mid x) = \operatorname{softmax}(\mathrm{logits}(x))`, the samples are split into
    ``splits`` parts :math:`S` (after a seeded shuffle); each part scores

    .. math:: \mathrm{IS}_S = \exp\Big(\frac{1}{|S|}\sum_{x\in S}
              \mathrm{KL}\big(p(y \mid x)\,\big\|\,\hat p_S(y)\big)\Big),
              \qquad \hat p_S(y) = \frac{1}{|S|}\sum_{x\in S} p(y \mid x),

    and :meth:`compute` returns the mean and standard deviation (``ddof=0``) over the parts as float64
    scalars ``(mean, std)``. Reference: Salimans et al., *Improved Techniques for Training GANs*, NeurIPS
    2016. Matches ``torch_fidelity.calculate_metrics(input1=generated, isc=True)`` given the same logits
    (InceptionV3's ``logits_unbiased``; torch-fidelity's ``samples_shuffle=True`` and ``rng_seed=2020``
    are the defaults here): same permutation, same split arithmetic, float64.

    The logits are kept (float32 list states gathered in rank order on :meth:`compute`), so under DDP
    the permutation and splits apply to the same set as in one process whatever the shards' sizes (a rank
    may hold none). Memory: 50,000 x 1008 float32 logits are 200 MB. Non-finite rows are dropped and
    counted; :meth:`compute` then raises on every rank.

    Args:
        splits: Number of parts.
        shuffle: Whether to permute the samples first (torch-fidelity's ``samples_shuffle``).
        seed: Seed of the permutation's ``np.random.RandomState``.
        num_features: Number of classes if known (checked on update); else taken from the first batch.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: From :meth:`update` for logits that are not ``(N, C)``; from :meth:`compute` with fewer
            samples than ``splits`` or non-finite logits.

    Example:
        >>> metric = InceptionScore(splits=2, shuffle=False)
        >>> metric.update(10.0 * torch.eye(4).repeat(8, 1))  # confident, and the 4 classes equally often
        >>> mean, std = metric.compute()
        >>> round(mean.item(), 2)  # close to the maximum, the number of classes
        3.99
    """

    higher_is_better = True

    def __init__(
        self, splits: int = 10, shuffle: bool = True, seed: int = 2020, num_features: Optional[int] = None, **kwargs: Any
    ) -> None:
        super().__init__(("logits",), num_features=num_features, **kwargs)
        if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
            raise ValueError(f"`splits` must be an integer >= 1, got {splits!r}.")
        self.splits = splits
        self.shuffle = bool(shuffle)
        self.seed = seed

    def update(self, logits: Tensor) -> None:  # type: ignore[override]
        """Adds the ``(N, C)`` logits of ``N`` generated samples; ``N`` may be 0."""
        self._add("logits", logits, what="logits")

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the Inception Score over the splits, float64 scalars (over all processes)."""
        return inception_score(self._features("logits"), self.splits, self.shuffle, self.seed)
