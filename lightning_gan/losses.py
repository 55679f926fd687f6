r"""Adversarial losses and gradient penalties for GAN training.

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

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AdversarialLoss",
    "LOSSES",
    "get_loss",
    "gradient_penalty",
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
    "r1_penalty",
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


# --------------------------------------------------------------------------
# Gradient penalties
# --------------------------------------------------------------------------


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    epsilon: Tensor | None = None,
) -> Tensor:
    r"""WGAN-GP gradient penalty (Gulrajani et al. 2017).

    .. math::

        \hat x = \epsilon x + (1 - \epsilon) \tilde x,\quad \epsilon \sim U[0, 1],\qquad
        \mathrm{GP} = \mathbb{E}_{\hat x}
            \big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big]

    The result is built with ``create_graph=True`` so it can be backpropagated into
    the discriminator's parameters; the un-weighted penalty is returned (multiply by
    ``lambda``, typically 10, yourself).

    Args:
        discriminator: Maps a batch shaped like ``real`` to one score per sample.
        real: Real samples, shape ``(N, ...)``; detached internally.
        fake: Generated samples with the same shape; detached internally.
        epsilon: Optional interpolation weights with ``N`` elements (e.g. ``(N,)``
            or ``(N, 1, 1, 1)``); drawn from ``U[0, 1]`` when ``None``.

    Returns:
        Scalar penalty.

    Raises:
        ValueError: If ``real`` and ``fake`` shapes differ or ``epsilon`` does not
            have one element per sample.

    Example:
        >>> import torch
        >>> critic = torch.nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
        >>> gradient_penalty(critic, torch.randn(4, 2), torch.randn(4, 2))  # (5 - 1)^2
        tensor(16., grad_fn=<MeanBackward0>)
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got real {tuple(real.shape)} "
            f"and fake {tuple(fake.shape)}"
        )
    n = real.shape[0]
    # one weight per sample, broadcast over every non-batch dim
    eps_shape = (n,) + (1,) * (real.dim() - 1)
    if epsilon is None:
        epsilon = torch.rand(eps_shape, device=real.device, dtype=real.dtype)
    else:
        if epsilon.numel() != n:
            raise ValueError(
                f"epsilon must have one element per sample ({n}), got shape "
                f"{tuple(epsilon.shape)}"
            )
        epsilon = epsilon.detach().reshape(eps_shape).to(device=real.device, dtype=real.dtype)
    # detach so the penalty only trains the discriminator, never the generator
    x_hat = epsilon * real.detach() + (1.0 - epsilon) * fake.detach()
    x_hat.requires_grad_(True)
    (grads,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
    # vector_norm rather than sqrt(sum of squares): its backward is 0, not NaN, at a zero gradient
    grad_norm = torch.linalg.vector_norm(grads.reshape(n, -1), ord=2, dim=1)
    return (grad_norm - 1.0).pow(2).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    r"""R1 gradient penalty on real data (Mescheder et al. 2018).

    .. math::

        R_1 = \mathbb{E}_x\big[\lVert \nabla_x D(x) \rVert_2^2\big]

    ``real`` must have had ``requires_grad_(True)`` set *before* the discriminator
    forward that produced ``real_logits``. The un-weighted penalty is returned
    (the usual regulariser is ``gamma / 2 * R1``).

    Args:
        real_logits: Discriminator outputs on ``real``.
        real: The real batch, shape ``(N, ...)``, with ``requires_grad=True``.

    Returns:
        Scalar penalty, differentiable w.r.t. the discriminator's parameters.

    Raises:
        ValueError: If ``real.requires_grad`` is ``False``.

    Example:
        >>> import torch
        >>> critic = torch.nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
        >>> real = torch.randn(4, 2).requires_grad_(True)
        >>> r1_penalty(critic(real), real)  # ||w||^2
        tensor(25., grad_fn=<MeanBackward0>)
    """
    if not real.requires_grad:
        raise ValueError(
            "r1_penalty needs the gradient of the logits w.r.t. the real batch: call "
            "real.requires_grad_(True) before the discriminator forward that produced "
            "real_logits"
        )
    (grads,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    # reshape rather than flatten(1) so 1-D inputs (one scalar feature per sample) work too
    return grads.reshape(grads.shape[0], -1).pow(2).sum(dim=1).mean()
