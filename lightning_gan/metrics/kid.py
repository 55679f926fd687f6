r"""The Kernel Inception Distance (Bińkowski et al., 2018) as a distributed-exact torchmetrics ``Metric``.

The KID is the squared maximum mean discrepancy (MMD) between the feature distributions of generated
and real samples under the cubic polynomial kernel, estimated without bias, averaged over random
subsets. Unlike the FID it has an unbiased estimator, so its expectation does not depend on the number
of samples, and it is 0 in expectation for two samples of one distribution (small negative values
then occur).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from lightning_gan.metrics._gather import FeatureSetsMetric
from lightning_gan.metrics.fid import _no_autocast

__all__ = ["KernelInceptionDistance", "kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, gamma: Optional[float] = None, coef0: float = 1.0) -> Tensor:
    r"""The polynomial kernel matrix :math:`K_{ij} = (\gamma\, x_i \cdot y_j + c_0)^{\mathrm{degree}}`.

    Args:
        x: ``(m, d)`` features.
        y: ``(n, d)`` features.
        degree: The power.
        gamma: The scale of the dot product; ``None`` for :math:`1/d`.
        coef0: The constant :math:`c_0`.

    Example:
        >>> polynomial_kernel(torch.ones(1, 2), torch.ones(1, 2))  # ((1*1 + 1*1) / 2 + 1) ** 3
        tensor([[8.]])
    """
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> Tensor:
    r"""The unbiased MMD² estimate from the kernel matrices of two samples of the same size ``m``.

    .. math:: \frac{1}{m(m-1)}\sum_{i\ne j}\big(k(x_i,x_j) + k(y_i,y_j)\big) - \frac{2}{m^2}\sum_{i,j} k(x_i,y_j)

    (torch-fidelity's ``mmd2(..., mmd_est="unbiased")``: the cross term keeps its diagonal.)

    Example:
        >>> k = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
        >>> mmd2_unbiased(k, torch.ones(2, 2), k)  # (2 + 2) / 2 - 2 * 4 / 4
        tensor(0.)
    """
    m = k_xx.shape[0]
    off_diagonal = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return off_diagonal / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)


def kernel_inception_distance(
    features_1: Tensor,
    features_2: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: Optional[float] = None,
    coef0: float = 1.0,
    seed: int = 2020,
) -> tuple[Tensor, Tensor]:
    r"""The mean and standard deviation (``ddof=0``) of the unbiased MMD² over ``subsets`` random subsets.

    The subsets are drawn as torch-fidelity's ``kid_features_to_metric`` draws them:
    ``rng = np.random.RandomState(seed)``, then for each subset ``rng.choice(n_1, subset_size,
    replace=False)`` followed by ``rng.choice(n_2, subset_size, replace=False)``. ``features_1`` is
    torch-fidelity's ``input1`` (the generated samples), ``features_2`` its ``input2`` (the real ones);
    the order matters only for which indices are drawn. Computed in float64 (torch-fidelity computes the
    kernels in float32 NumPy), on the features' device.

    Raises:
        ValueError: If ``subset_size`` exceeds either set's size or is below 2.

    Example:
        >>> x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
        >>> mean, std = kernel_inception_distance(x, x + 1.0, subsets=10, subset_size=20)
        >>> mean.dtype, bool(mean > 0.1)
        (torch.float64, True)
    """
    n_1, n_2 = len(features_1), len(features_2)
    if subset_size < 2 or subset_size > n_1 or subset_size > n_2:
        raise ValueError(
            f"The KID subset_size ({subset_size}) must be at least 2 and at most the number of samples in each set "
            f"(generated: {n_1}, real: {n_2}); lower `subset_size` or add samples."
        )
    if features_1.shape[1] != features_2.shape[1]:
        raise ValueError(
            f"The two feature sets differ in dimension: {features_1.shape[1]} and {features_2.shape[1]}."
        )
    with _no_autocast(features_1.device.type):
        x_1 = features_1.to(torch.float64)
        x_2 = features_2.to(torch.float64)
        if gamma is None:
            gamma = 1.0 / x_1.shape[1]
        rng = np.random.RandomState(seed)
        mmds = torch.empty(subsets, dtype=torch.float64, device=x_1.device)
        for i in range(subsets):
            index_1 = torch.from_numpy(rng.choice(n_1, subset_size, replace=False)).to(x_1.device)
            index_2 = torch.from_numpy(rng.choice(n_2, subset_size, replace=False)).to(x_2.device)
            f_1, f_2 = x_1[index_1], x_2[index_2]
            mmds[i] = mmd2_unbiased(
                polynomial_kernel(f_1, f_1, degree, gamma, coef0),
                polynomial_kernel(f_1, f_2, degree, gamma, coef0),
                polynomial_kernel(f_2, f_2, degree, gamma, coef0),
            )
        return mmds.mean(), mmds.std(unbiased=False)


class KernelInceptionDistance(FeatureSetsMetric):
    r"""The KID between real and generated samples, from their **features** (any extractor).

    With :math:`k(x, y) = (\gamma\, x \cdot y + c_0)^{p}` (by default :math:`\gamma = 1/d`,
    :math:`c_0 = 1`, :math:`p = 3`), each of ``subsets`` random subsets of ``m = subset_size`` generated
    features :math:`x_i` and ``m`` real features :math:`y_j` gives the unbiased MMD² estimate

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i\ne j}\big(k(x_i,x_j) + k(y_i,y_j)\big)
              - \frac{2}{m^2}\sum_{i,j} k(x_i,y_j),

    and :meth:`compute` returns their mean and standard deviation (``ddof=0``) as float64 scalars
    ``(mean, std)``. Reference: Bińkowski, Sutherland, Arbel and Gretton, *Demystifying MMD GANs*, ICLR
    2018. Matches ``torch_fidelity.calculate_metrics(input1=generated, input2=real, kid=True)`` given the
    same features (its ``2048`` InceptionV3 layer, see :func:`~lightning_gan.metrics.features.metric_layer`):
    the subsets are drawn with the same seeded ``np.random.RandomState`` calls, generated set first; the
    kernels are computed in float64 where torch-fidelity uses float32, so the two agree to float32
    rounding (about 1e-6 relative).

    **Features are kept**, not summed: float32 list states gathered (in rank order) on :meth:`compute`,
    so under DDP the subsets are drawn from the same set as in one process and the value is the
    single-process one, whatever the shards' sizes (a rank may hold none). Memory: 50,000 x 2048 float32
    features are 400 MB per set (on every rank after the gather). Non-finite feature vectors are dropped
    and counted; :meth:`compute` then raises on every rank.

    **A fixed real set.** :meth:`set_real_features` fixes the real side (e.g. cached on disk); it survives
    :meth:`reset`. :meth:`real_features` returns the gathered real set to cache.

    Args:
        subsets: Number of random subsets.
        subset_size: Samples per set in each subset (at most the size of either set).
        degree: Power :math:`p` of the polynomial kernel.
        gamma: Scale :math:`\gamma` of the dot product; ``None`` for :math:`1/d`.
        coef0: Constant :math:`c_0` of the kernel.
        seed: Seed of the subsets' ``np.random.RandomState`` (torch-fidelity's default ``rng_seed`` is 2020).
        num_features: Feature dimension ``d`` if known (checked on update); else taken from the first batch.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: From the constructor for invalid arguments; from :meth:`update` for features that are
            not ``(N, d)``; from :meth:`compute` if ``subset_size`` exceeds either set (the message gives
            the counts) or a feature vector was not finite.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> kid = KernelInceptionDistance(subsets=20, subset_size=50)
        >>> kid.update(torch.randn(100, 8), real=True)
        >>> kid.update(torch.randn(100, 8) + 1.0, real=False)
        >>> mean, std = kid.compute()
        >>> mean.dtype, bool(mean > 5 * std)
        (torch.float64, True)
    """

    higher_is_better = False

    def __init__(
        self,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: Optional[float] = None,
        coef0: float = 1.0,
        seed: int = 2020,
        num_features: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(("real", "fake"), num_features=num_features, **kwargs)
        for arg, value, low in (("subsets", subsets, 1), ("subset_size", subset_size, 2), ("degree", degree, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{arg}` must be an integer >= {low}, got {value!r}.")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"`gamma` must be None or > 0, got {gamma!r}.")
        self.subsets = subsets
        self.subset_size = subset_size
        self.degree = degree
        self.gamma = gamma
        self.coef0 = float(coef0)
        self.seed = seed

    def update(self, features: Tensor, real: bool) -> None:  # type: ignore[override]
        """Adds ``(N, d)`` features of real (``real=True``) or generated samples; ``N`` may be 0."""
        self._add("real" if real else "fake", features)

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the KID over the subsets, float64 scalars (over all processes' features)."""
        real, fake = self._features("real"), self._features("fake")
        if self.subset_size > min(len(real), len(fake)):
            raise ValueError(
                f"The KID subset_size ({self.subset_size}) exceeds the number of samples: {len(real)} real and "
                f"{len(fake)} generated; lower `subset_size` or add samples."
            )
        return kernel_inception_distance(
            fake, real, self.subsets, self.subset_size, self.degree, self.gamma, self.coef0, self.seed
        )
