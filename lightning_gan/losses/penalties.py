r"""Gradient penalties and weight constraints that keep a discriminator in check."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["gradient_penalty", "r1_penalty", "dragan_penalty", "clip_weights_"]

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


def dragan_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    scale: float = 0.5,
    noise: Tensor | None = None,
    epsilon: Tensor | None = None,
) -> Tensor:
    r"""DRAGAN's gradient penalty around the real data (Kodali et al. 2017).

    The WGAN-GP penalty (:func:`gradient_penalty`), taken on the segment between each real sample and
    a perturbed copy of it instead of between real and generated samples, so that it keeps the
    discriminator smooth near the data manifold, where mode collapse starts:

    .. math::

        x^p = x + c\,\sigma_x\,u,\quad u \sim U[0, 1)^{d},\qquad
        \hat x = \epsilon x + (1 - \epsilon) x^p,\quad \epsilon \sim U[0, 1],\qquad
        \mathrm{DRAGAN} = \mathbb{E}_{\hat x}
            \big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big]

    with :math:`\sigma_x` the (population) standard deviation of all the batch's values and :math:`c = 0.5`, as in
    the authors' code (``X + 0.5 * X.std() * np.random.random(X.shape)``, one :math:`\epsilon` per
    sample); the paper's weight is :math:`\lambda = 10`. The perturbation is one-sided (``U[0, 1)``, not
    symmetric), as there.

    Args:
        discriminator: Maps a batch shaped like ``real`` to one score per sample.
        real: Real samples, shape ``(N, ...)`` with ``N >= 2`` (their standard deviation is taken).
        scale: :math:`c`, the perturbation's size in units of the batch's standard deviation.
        noise: Optional :math:`u`, shaped like ``real``; drawn from ``U[0, 1)`` when ``None``.
        epsilon: Optional interpolation weights, one per sample; drawn from ``U[0, 1]`` when ``None``.

    Returns:
        Scalar penalty (un-weighted), differentiable w.r.t. the discriminator's parameters.

    Raises:
        ValueError: If ``scale`` is not a finite positive number, ``real`` holds fewer than two values
            or ``noise`` has another shape.

    Example:
        >>> import torch
        >>> critic = torch.nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = critic.weight.copy_(torch.tensor([[0.6, 0.8]]))  # unit gradient everywhere
        >>> dragan_penalty(critic, torch.randn(4, 2))
        tensor(0., grad_fn=<MeanBackward0>)
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(f"`scale` must be a finite positive number, got {scale!r}.")
    if real.numel() < 2:
        raise ValueError(f"`real` must hold at least two values (their standard deviation is taken), got shape {tuple(real.shape)}.")
    real = real.detach()
    if noise is None:
        noise = torch.rand_like(real)
    elif noise.shape != real.shape:
        raise ValueError(f"`noise` must have the shape of `real`, {tuple(real.shape)}, got {tuple(noise.shape)}.")
    # The population std (NumPy's default in the authors' code), not torch's unbiased one.
    perturbed = real + scale * real.std(correction=0) * noise.to(real)
    return gradient_penalty(discriminator, real, perturbed, epsilon)


@torch.no_grad()
def clip_weights_(module: nn.Module, clip_value: float) -> None:
    r"""Clamps every parameter of ``module`` to ``[-c, c]`` in place: the original WGAN's Lipschitz constraint.

    Arjovsky et al. (2017), Algorithm 1: after each critic update, ``w <- clip(w, -c, c)`` with
    :math:`c = 0.01`, for **all** the critic's parameters (the reference code clamps
    ``netD.parameters()``, biases and batch-norm scales included). Under spectral normalisation the
    stored (un-normalised) weight is what is clamped.

    Args:
        module: The critic.
        clip_value: :math:`c > 0`.

    Raises:
        ValueError: If ``clip_value`` is not a finite positive number.

    Example:
        >>> import torch
        >>> critic = torch.nn.Linear(3, 1)
        >>> clip_weights_(critic, 0.01)
        >>> bool(critic.weight.abs().max() <= 0.01)
        True
    """
    if isinstance(clip_value, bool) or not isinstance(clip_value, (int, float)) or not 0 < clip_value < float("inf"):
        raise ValueError(f"`clip_value` must be a finite positive number, got {clip_value!r}.")
    for parameter in module.parameters():
        parameter.clamp_(-clip_value, clip_value)
