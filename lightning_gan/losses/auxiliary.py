r"""Losses on what a discriminator computes besides its logit: its features and its auxiliary heads.

A discriminator of the package may return ``(logits, heads)``, ``heads`` a dict of tensors computed from
the same body (see :class:`~lightning_gan.nets.AuxiliaryHeads`); these functions turn heads into losses:
feature matching (Salimans et al. 2016), the auxiliary classifier of AC-GAN (Odena et al. 2017) and the
mutual-information bound of InfoGAN (Chen et al. 2016). Like the adversarial losses, each is a pure
function returning a scalar to minimise.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "feature_matching_loss",
    "auxiliary_classifier_loss",
    "categorical_code_loss",
    "categorical_mutual_information_bound",
    "gaussian_code_loss",
]

_REDUCTIONS = ("mean", "sum")


def feature_matching_loss(real_features: Tensor, fake_features: Tensor, reduction: str = "mean") -> Tensor:
    r"""Feature matching (Salimans et al. 2016, section 3.1): the generator matches the mean of the discriminator's features.

    .. math::

        L_G = \big\lVert \mathbb{E}_x f(x) - \mathbb{E}_z f(G(z)) \big\rVert_2^2

    with :math:`f` an intermediate layer of the discriminator. ``reduction="sum"`` is the paper's squared
    norm; ``"mean"`` (the default) divides it by the number of features, as the authors' code does
    (``T.mean(T.square(mom_gen - mom_real))`` in ``improved-gan``), so that the loss's scale does not grow
    with the layer's width.

    Args:
        real_features: :math:`f` on real samples, shape ``(N, ...)``.
        fake_features: :math:`f` on generated samples, shape ``(M, ...)`` with the same feature shape.
        reduction: ``"mean"`` or ``"sum"`` over the features.

    Returns:
        Scalar loss to minimise.

    Raises:
        ValueError: If the feature shapes differ or ``reduction`` is unknown.

    Example:
        >>> import torch
        >>> feature_matching_loss(torch.tensor([[1.0, 2.0], [3.0, 2.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(4.)
    """
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(
            f"real and fake features must have the same shape per sample, got {tuple(real_features.shape[1:])} and "
            f"{tuple(fake_features.shape[1:])}."
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {_REDUCTIONS}, got {reduction!r}.")
    squared = (real_features.flatten(1).mean(0) - fake_features.flatten(1).mean(0)).pow(2)
    return squared.mean() if reduction == "mean" else squared.sum()


def auxiliary_classifier_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    r"""AC-GAN's class loss (Odena et al. 2017): the auxiliary classifier's negative log-likelihood of the labels.

    .. math::

        L_C = -\mathbb{E}\big[\log P(C = c \mid X)\big]
            = \overline{\operatorname{CE}(\text{class\_logits}, c)}

    The discriminator minimises it on real and on generated samples (their classes being those the
    generator was asked for), the generator on generated ones: together with the adversarial loss this
    is the paper's "D maximises :math:`L_S + L_C`, G maximises :math:`L_C - L_S`".

    Args:
        class_logits: The classifier head's logits, shape ``(N, num_classes)``.
        labels: Class indices, shape ``(N,)``.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> auxiliary_classifier_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))  # log 2
        tensor(0.6931)
    """
    return F.cross_entropy(class_logits, labels)


def categorical_code_loss(code_logits: Tensor, codes: Tensor) -> Tensor:
    r"""InfoGAN's loss for a categorical code (Chen et al. 2016): :math:`-\mathbb{E}[\log Q(c \mid G(z, c))]`.

    Minimising it maximises the variational lower bound :math:`L_I = H(c) + \mathbb{E}[\log Q(c \mid x)]`
    of the mutual information between the code and the sample (:func:`categorical_mutual_information_bound`).

    Args:
        code_logits: The Q head's logits, shape ``(N, K)``.
        codes: The code's category indices that generated the samples, shape ``(N,)``.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> categorical_code_loss(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), torch.tensor([2]))  # log 4
        tensor(1.3863)
    """
    return F.cross_entropy(code_logits, codes)


def categorical_mutual_information_bound(code_logits: Tensor, codes: Tensor) -> Tensor:
    r"""InfoGAN's lower bound on :math:`I(c; G(z, c))` for a uniform categorical code of ``K`` values, in nats.

    .. math::

        L_I = H(c) + \mathbb{E}[\log Q(c \mid x)] = \log K - \overline{\operatorname{CE}(\text{code\_logits}, c)}
            \;\le\; I(c; x) \;\le\; \log K

    It reaches :math:`\log K` when Q recovers the code from every sample.

    Args:
        code_logits: The Q head's logits, shape ``(N, K)``.
        codes: The category indices that generated the samples (drawn uniformly), shape ``(N,)``.

    Returns:
        The bound, a scalar in nats.

    Example:
        >>> import torch
        >>> categorical_mutual_information_bound(torch.tensor([[50.0, 0.0]]), torch.tensor([0]))  # log 2
        tensor(0.6931)
    """
    return math.log(code_logits.shape[-1]) - categorical_code_loss(code_logits, codes)


def gaussian_code_loss(predicted_mean: Tensor, codes: Tensor, std: float = 1.0) -> Tensor:
    r"""InfoGAN's loss for continuous codes: the negative log-likelihood under a factored Gaussian Q of fixed std.

    .. math::

        -\log Q(c \mid x) = \sum_j \Big[\frac{(c_j - \mu_j(x))^2}{2 \sigma^2} + \log \sigma
            + \tfrac{1}{2} \log 2\pi\Big],

    averaged over the batch. A fixed :math:`\sigma = 1` is the authors' MNIST setting (``fix_std=True`` in
    ``openai/InfoGAN``); the paper notes that a factored Gaussian suffices.

    Args:
        predicted_mean: :math:`\mu(x)`, shape ``(N, D)``.
        codes: The continuous codes that generated the samples, shape ``(N, D)``.
        std: :math:`\sigma > 0`.

    Returns:
        Scalar loss to minimise.

    Raises:
        ValueError: If the shapes differ or ``std`` is not positive.

    Example:
        >>> import torch
        >>> round(float(gaussian_code_loss(torch.zeros(1, 2), torch.zeros(1, 2))), 4)  # log(2 pi)
        1.8379
    """
    if predicted_mean.shape != codes.shape:
        raise ValueError(f"`predicted_mean` and `codes` must have the same shape, got {tuple(predicted_mean.shape)} and {tuple(codes.shape)}.")
    if not (isinstance(std, (int, float)) and 0 < std < float("inf")):
        raise ValueError(f"`std` must be a finite positive number, got {std!r}.")
    per_dim = 0.5 * ((codes - predicted_mean) / std).pow(2) + math.log(std) + 0.5 * math.log(2 * math.pi)
    return per_dim.reshape(per_dim.shape[0], -1).sum(1).mean()
