r"""Adversarial losses: pure functions of the discriminator's outputs, and their registry by name.

Every loss is a pure function of discriminator outputs ("logits": raw,
unbounded scores, one per sample) and returns a scalar tensor to *minimise*.
Inputs of any shape are accepted and reduced with a mean.

For the probabilistic losses the discriminator's probability that ``x`` is
real is ``D(x) = sigmoid(l)``, and the logs are written in logit space so that
they stay finite for saturated logits:

.. math::

    \log D(x) = -\operatorname{softplus}(-l), \qquad
    \log(1 - D(x)) = -\operatorname{softplus}(l).

Example:
    >>> import torch
    >>> loss = get_loss("hinge")
    >>> loss.discriminator(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.0]))
    tensor(1.)
    >>> loss.generator(torch.tensor([-2.0, 0.0]))
    tensor(1.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AdversarialLoss",
    "LOSSES",
    "get_loss",
    "hinge",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "least_squares",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "minimax",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating",
    "non_saturating_discriminator_loss",
    "non_saturating_generator_loss",
    "wasserstein",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
]


# --------------------------------------------------------------------------
# Minimax / non-saturating (Goodfellow et al. 2014)
# --------------------------------------------------------------------------


def minimax_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""Discriminator side of Goodfellow's minimax game.

    .. math::

        L_D = -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))]
            = \overline{\operatorname{softplus}(-l_r)}
            + \overline{\operatorname{softplus}(l_f)}

    Args:
        real_logits: Discriminator logits on real samples.
        fake_logits: Discriminator logits on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> minimax_discriminator_loss(torch.tensor([0.0]), torch.tensor([0.0]))
        tensor(1.3863)
    """
    # softplus instead of log(sigmoid(.)): the latter underflows to log(0) = -inf
    # once a logit saturates (|l| >~ 90 in float32).
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Saturating generator loss, exactly the generator's side of the minimax game.

    .. math::

        L_G = \mathbb{E}_z[\log(1 - D(G(z)))] = -\overline{\operatorname{softplus}(l_f)}

    Its gradient vanishes when the discriminator confidently rejects fakes, which
    is why :func:`non_saturating_generator_loss` is usually preferred in practice.

    Args:
        fake_logits: Discriminator logits on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> minimax_generator_loss(torch.tensor([0.0]))
        tensor(-0.6931)
    """
    return -F.softplus(fake_logits).mean()


def non_saturating_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""Discriminator loss of the non-saturating GAN (identical to the minimax one).

    .. math::

        L_D = -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))]

    Args:
        real_logits: Discriminator logits on real samples.
        fake_logits: Discriminator logits on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> non_saturating_discriminator_loss(torch.tensor([0.0]), torch.tensor([0.0]))
        tensor(1.3863)
    """
    return minimax_discriminator_loss(real_logits, fake_logits)


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Non-saturating generator loss (the "-log D trick").

    .. math::

        L_G = -\mathbb{E}_z[\log D(G(z))] = \overline{\operatorname{softplus}(-l_f)}

    Args:
        fake_logits: Discriminator logits on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> non_saturating_generator_loss(torch.tensor([0.0]))
        tensor(0.6931)
    """
    return F.softplus(-fake_logits).mean()


# --------------------------------------------------------------------------
# Wasserstein (Arjovsky et al. 2017)
# --------------------------------------------------------------------------


def wasserstein_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""Critic loss of the Wasserstein GAN.

    .. math::

        L_D = \mathbb{E}_z[D(G(z))] - \mathbb{E}_x[D(x)]

    The critic must be kept (approximately) 1-Lipschitz separately, e.g. with
    :func:`gradient_penalty`; otherwise this loss is unbounded below.

    Args:
        real_logits: Critic scores on real samples.
        fake_logits: Critic scores on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> wasserstein_discriminator_loss(torch.tensor([3.0, 1.0]), torch.tensor([0.5]))
        tensor(-1.5000)
    """
    return fake_logits.mean() - real_logits.mean()


def wasserstein_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Generator loss of the Wasserstein GAN.

    .. math::

        L_G = -\mathbb{E}_z[D(G(z))]

    Args:
        fake_logits: Critic scores on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> wasserstein_generator_loss(torch.tensor([0.5, 1.5]))
        tensor(-1.)
    """
    return -fake_logits.mean()


# --------------------------------------------------------------------------
# Hinge (Lim & Ye 2017; Miyato et al. 2018)
# --------------------------------------------------------------------------


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""Hinge discriminator loss.

    .. math::

        L_D = \mathbb{E}_x[\max(0, 1 - D(x))] + \mathbb{E}_z[\max(0, 1 + D(G(z)))]

    Args:
        real_logits: Discriminator scores on real samples.
        fake_logits: Discriminator scores on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> hinge_discriminator_loss(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5]))
        tensor(1.2500)
    """
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Hinge generator loss (no margin on the generator's side).

    .. math::

        L_G = -\mathbb{E}_z[D(G(z))]

    Args:
        fake_logits: Discriminator scores on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> hinge_generator_loss(torch.tensor([-2.0, 0.5]))
        tensor(0.7500)
    """
    return -fake_logits.mean()


# --------------------------------------------------------------------------
# Least squares (Mao et al. 2017, 0-1 coding)
# --------------------------------------------------------------------------


def least_squares_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""LSGAN discriminator loss with targets 1 (real) and 0 (fake).

    .. math::

        L_D = \tfrac12 \mathbb{E}_x[(D(x) - 1)^2] + \tfrac12 \mathbb{E}_z[D(G(z))^2]

    Args:
        real_logits: Discriminator scores on real samples.
        fake_logits: Discriminator scores on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> least_squares_discriminator_loss(torch.tensor([3.0]), torch.tensor([1.0]))
        tensor(2.5000)
    """
    return 0.5 * (real_logits - 1.0).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


def least_squares_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""LSGAN generator loss: pull fake scores towards the real target 1.

    .. math::

        L_G = \tfrac12 \mathbb{E}_z[(D(G(z)) - 1)^2]

    Args:
        fake_logits: Discriminator scores on generated samples.

    Returns:
        Scalar loss to minimise.

    Example:
        >>> import torch
        >>> least_squares_generator_loss(torch.tensor([-1.0]))
        tensor(2.)
    """
    return 0.5 * (fake_logits - 1.0).pow(2).mean()


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialLoss:
    r"""A named pair of discriminator and generator losses.

    .. math::

        (L_D(l_r, l_f),\; L_G(l_f))

    Attributes:
        name: Key of the loss in :data:`LOSSES`.
        discriminator: ``(real_logits, fake_logits) -> scalar`` to minimise.
        generator: ``fake_logits -> scalar`` to minimise.
        probabilistic: ``True`` when ``sigmoid(logit)`` is the discriminator's
            probability that its input is real (minimax, non-saturating), so
            sigmoid means are meaningful to log; ``False`` for score-based
            losses (Wasserstein, hinge, least squares).

    Example:
        >>> import torch
        >>> loss = AdversarialLoss("wgan", wasserstein_discriminator_loss,
        ...                        wasserstein_generator_loss, probabilistic=False)
        >>> loss.generator(torch.tensor([2.0]))
        tensor(-2.)
    """

    name: str
    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    probabilistic: bool


minimax = AdversarialLoss(
    "minimax", minimax_discriminator_loss, minimax_generator_loss, probabilistic=True
)
non_saturating = AdversarialLoss(
    "non_saturating",
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
    probabilistic=True,
)
wasserstein = AdversarialLoss(
    "wasserstein", wasserstein_discriminator_loss, wasserstein_generator_loss, probabilistic=False
)
hinge = AdversarialLoss(
    "hinge", hinge_discriminator_loss, hinge_generator_loss, probabilistic=False
)
least_squares = AdversarialLoss(
    "least_squares",
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    probabilistic=False,
)

LOSSES: dict[str, AdversarialLoss] = {
    loss.name: loss for loss in (minimax, non_saturating, wasserstein, hinge, least_squares)
}


def get_loss(name: str) -> AdversarialLoss:
    r"""Look up an adversarial loss by name.

    .. math::

        \text{name} \mapsto (L_D, L_G)

    Args:
        name: One of the keys of :data:`LOSSES`.

    Returns:
        The matching :class:`AdversarialLoss`.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is not a known loss.

    Example:
        >>> get_loss("non_saturating").probabilistic
        True
        >>> get_loss("foo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: Unknown loss 'foo'; choose one of: 'hinge', 'least_squares', ...
    """
    if not isinstance(name, str):
        raise TypeError(f"Loss name must be a str, got {type(name).__name__}: {name!r}")
    try:
        return LOSSES[name]
    except KeyError:
        known = ", ".join(repr(key) for key in sorted(LOSSES))
        raise ValueError(f"Unknown loss {name!r}; choose one of: {known}") from None
