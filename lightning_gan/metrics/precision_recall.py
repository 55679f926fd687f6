r"""Improved precision and recall (Kynkäänniemi et al., 2019) as a distributed-exact torchmetrics ``Metric``.

Each set of features approximates its distribution's support by a union of balls: around every point,
the ball reaching its ``k``-th nearest neighbour in the same set. **Precision** is the fraction of
generated samples inside the real manifold (sample quality); **recall** the fraction of real samples
inside the generated manifold (coverage). torch-fidelity computes them on VGG16 ``fc2_relu`` features
by default (``calculate_metrics(prc=True)``), as the paper does.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from lightning_gan.metrics._gather import FeatureSetsMetric
from lightning_gan.metrics.fid import _no_autocast

__all__ = ["PrecisionRecall", "knn_radii", "precision_recall"]


def knn_radii(features: Tensor, k: int = 3, batch_size: int = 10000) -> Tensor:
    """The distance from each point of ``features`` to its ``k``-th nearest neighbour in the set, itself excluded.

    Computed as torch-fidelity does: the ``(k + 1)``-th smallest distance to all points of the set, the
    point itself (at distance 0) included. Blocks of ``batch_size`` x ``batch_size`` distances
    (``torch.cdist``, the same blocks as torch-fidelity's) are reduced to a running ``k + 1`` smallest,
    so memory stays ``O(batch_size**2)``.

    Example:
        >>> knn_radii(torch.tensor([[0.0], [1.0], [3.0]]), k=1)
        tensor([1., 1., 2.])
    """
    if len(features) < k + 1:
        raise ValueError(f"The k-NN radii need more than k = {k} points per set, got {len(features)}.")
    radii = []
    for rows in features.split(batch_size):
        best: Optional[Tensor] = None
        for cols in features.split(batch_size):
            dist = torch.cdist(rows, cols)
            if best is not None:
                dist = torch.cat([best, dist], dim=1)
            best = dist.topk(min(k + 1, dist.shape[1]), dim=1, largest=False).values
        assert best is not None
        radii.append(best[:, k])
    return torch.cat(radii)


def precision_recall(
    real: Tensor, fake: Tensor, k: int = 3, batch_size: int = 10000
) -> tuple[Tensor, Tensor]:
    r"""Improved precision and recall of ``fake`` against ``real``, float64 scalars ``(precision, recall)``.

    torch-fidelity's ``calculate_precision_recall_full`` (``features_1`` = generated, ``features_2`` =
    real) block by block: the real-to-generated distances ``torch.cdist(real_block, fake_block)`` serve
    both precision and recall, in the features' dtype (float32 from the metric, as torch-fidelity).
    A point lies in a ball when its distance is ``<=`` the ball's radius (:func:`knn_radii`).

    Raises:
        ValueError: With ``k`` or fewer samples in a set, or sets of different dimensions.

    Example:
        >>> real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
        >>> precision_recall(real, torch.tensor([[0.5], [1.5], [10.0], [11.0]]), k=1)
        (tensor(0.5000, dtype=torch.float64), tensor(0.7500, dtype=torch.float64))
    """
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"The two feature sets differ in dimension: {real.shape[1]} and {fake.shape[1]}.")
    with _no_autocast(real.device.type):
        radius_real = knn_radii(real, k, batch_size)
        radius_fake = knn_radii(fake, k, batch_size)
        real_covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
        fake_covered = torch.zeros(len(fake), dtype=torch.bool, device=fake.device)
        for i, real_block in enumerate(real.split(batch_size)):
            rows = slice(i * batch_size, i * batch_size + len(real_block))
            for j, fake_block in enumerate(fake.split(batch_size)):
                cols = slice(j * batch_size, j * batch_size + len(fake_block))
                dist = torch.cdist(real_block, fake_block)
                # recall: a real point inside some generated ball; precision: a generated point inside a real ball
                real_covered[rows] |= (dist <= radius_fake[cols]).any(dim=1)
                fake_covered[cols] |= (dist <= radius_real[rows, None]).any(dim=0)
        precision = fake_covered.sum().to(torch.float64) / len(fake)
        recall = real_covered.sum().to(torch.float64) / len(real)
    return precision, recall


class PrecisionRecall(FeatureSetsMetric):
    r"""Improved precision and recall of generated samples, from **features** (any extractor).

    With :math:`\mathrm{NND}_k(\phi)` the distance from :math:`\phi` to its ``k``-th nearest neighbour in
    its own set (itself excluded) and the manifold of a set :math:`\Phi`

    .. math:: \mathrm{manifold}(\Phi) = \bigcup_{\phi\in\Phi} \{x : \|x-\phi\|_2 \le \mathrm{NND}_k(\phi)\},

    .. math:: \mathrm{precision} = \frac{1}{|\Phi_g|}\sum_{\phi_g\in\Phi_g}
              \mathbb 1[\phi_g \in \mathrm{manifold}(\Phi_r)], \qquad
              \mathrm{recall} = \frac{1}{|\Phi_r|}\sum_{\phi_r\in\Phi_r}
              \mathbb 1[\phi_r \in \mathrm{manifold}(\Phi_g)].

    Reference: Kynkäänniemi, Karras, Laine, Lehtinen and Aila, *Improved Precision and Recall Metric for
    Assessing Generative Models*, NeurIPS 2019. Matches ``torch_fidelity.calculate_metrics(input1=
    generated, input2=real, prc=True)`` given the same features (VGG16 ``fc2_relu`` by default there):
    the same radii (``kthvalue(k + 1)`` over distances including the point itself), the same float32
    ``torch.cdist`` blocks of ``batch_size``, ``<=`` for inside a ball.

    :meth:`compute` returns a dict of float64 scalars ``{"precision": ..., "recall": ..., "f_score":
    ...}``, ``f_score`` being torch-fidelity's :math:`2PR / \max(10^{-5}, P + R)`.

    **Memory.** The features are kept (float32 list states gathered in rank order on :meth:`compute`;
    50,000 x 2048 float32 features are 400 MB per set, 50,000 x 4096 VGG16 features 800 MB), and
    distances are computed in ``batch_size`` x ``batch_size`` blocks (400 MB at the default 10,000), never
    as a full matrix. Under DDP every rank computes on the gathered sets and gets the single-process
    value, whatever the shards' sizes (a rank may hold none). Non-finite feature vectors are dropped and
    counted; :meth:`compute` then raises on every rank.

    :meth:`set_real_features` fixes the real side (e.g. cached on disk) across :meth:`reset`;
    :meth:`real_features` returns the gathered real set.

    Args:
        k: The neighbourhood size (torch-fidelity's ``prc_neighborhood``, 3 as in the paper).
        batch_size: Rows and columns of each block of distances (torch-fidelity's ``prc_batch_size``).
        num_features: Feature dimension ``d`` if known (checked on update); else taken from the first batch.
        **kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: From :meth:`update` for features that are not ``(N, d)``; from :meth:`compute` with
            ``k`` or fewer samples in a set or non-finite features.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> prc = PrecisionRecall(k=3)
        >>> prc.update(torch.randn(200, 2), real=True)
        >>> prc.update(0.3 * torch.randn(200, 2), real=False)  # inside the data, but covering its core only
        >>> result = prc.compute()
        >>> result["precision"].item() > 0.9, result["recall"].item() < 0.6
        (True, True)
    """

    higher_is_better = True

    def __init__(self, k: int = 3, batch_size: int = 10000, num_features: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(("real", "fake"), num_features=num_features, **kwargs)
        for arg, value in (("k", k), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be an integer >= 1, got {value!r}.")
        self.k = k
        self.batch_size = batch_size

    def update(self, features: Tensor, real: bool) -> None:  # type: ignore[override]
        """Adds ``(N, d)`` features of real (``real=True``) or generated samples; ``N`` may be 0."""
        self._add("real" if real else "fake", features)

    def compute(self) -> dict[str, Tensor]:
        """``{"precision", "recall", "f_score"}``, float64 scalars (over all processes' features)."""
        real, fake = self._features("real"), self._features("fake")
        if min(len(real), len(fake)) <= self.k:
            raise ValueError(
                f"Precision/recall with k = {self.k} needs more than {self.k} samples per set, got {len(real)} real "
                f"and {len(fake)} generated."
            )
        precision, recall = precision_recall(real, fake, self.k, self.batch_size)
        f_score = 2 * precision * recall / torch.clamp(precision + recall, min=1e-5)
        return {"precision": precision, "recall": recall, "f_score": f_score}
