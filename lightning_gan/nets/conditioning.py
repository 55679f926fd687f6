"""Building blocks for class-conditional networks: conditional batch norm, the projection head, label checks.

A conditional net takes ``num_classes`` (``None`` keeps it unconditional) and is called as
``net(x, labels)`` with integer labels of shape ``(N,)`` in ``[0, num_classes)``;
:class:`~lightning_gan.GAN` with ``num_classes`` set calls both networks that way.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["ConditionalBatchNorm2d", "ProjectionHead", "check_labels", "check_num_classes"]


def check_num_classes(num_classes: object) -> Optional[int]:
    """``num_classes`` as an int >= 2, or ``None``; a TypeError/ValueError naming the value otherwise."""
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be None or an int >= 2, got {num_classes!r} of type {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be None (unconditional) or an int >= 2, got {num_classes!r}")
    return num_classes


def check_labels(labels: Optional[Tensor], num_classes: Optional[int], batch_size: int, net: str) -> None:
    """Checks that a net gets labels exactly when it is conditional, one integer label per sample.

    The values are not checked here (that would cost a device sync per call); an out-of-range label
    fails in the embedding lookup, and :class:`~lightning_gan.GAN` checks the first batch's values.
    """
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"{net} is unconditional (num_classes=None) but was called with labels.")
        return
    if labels is None:
        raise ValueError(f"{net} is class-conditional ({num_classes} classes): call it as {net}(x, labels).")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of class indices, got dtype {labels.dtype}.")
    if labels.shape != (batch_size,):
        raise ValueError(f"labels must have shape ({batch_size},), one class index per sample, got {tuple(labels.shape)}.")


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (de Vries et al. 2017; Miyato & Koyama 2018).

    Normalises with shared batch statistics (``BatchNorm2d(affine=False)``), then applies
    ``gain[y] * x_hat + bias[y]``; gains start at 1 and biases at 0, so an untrained layer is plain batch norm.

    Args:
        num_features: Channels ``C`` of the ``(N, C, H, W)`` input.
        num_classes: Number of classes.

    Example:
        >>> import torch
        >>> cbn = ConditionalBatchNorm2d(4, num_classes=3)
        >>> cbn(torch.randn(5, 4, 2, 2), torch.tensor([0, 1, 2, 0, 1])).shape
        torch.Size([5, 4, 2, 2])
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """Normalises ``x`` and applies each sample's class gain and bias."""
        return self.norm(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class ProjectionHead(nn.Module):
    r"""The class term of a projection discriminator (Miyato & Koyama 2018): :math:`\langle V_y, \phi(x) \rangle`.

    The discriminator's logit is ``psi(phi(x)) + ProjectionHead(phi(x), y)``: the inner product of the
    features with a learned embedding of the class, instead of feeding the label in with the input.

    Args:
        num_classes: Number of classes.
        num_features: Size of the feature vector ``phi(x)``.

    Example:
        >>> import torch
        >>> head = ProjectionHead(num_classes=3, num_features=8)
        >>> head(torch.randn(4, 8), torch.tensor([0, 2, 1, 0])).shape
        torch.Size([4])
    """

    def __init__(self, num_classes: int, num_features: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, num_features)
        # The reference implementation's init; N(0, 1) rows would swamp psi(phi(x)) for wide features.
        nn.init.xavier_uniform_(self.embedding.weight)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """``(N,)`` inner products of ``features`` ``(N, F)`` with the embeddings of ``labels`` ``(N,)``."""
        return (self.embedding(labels) * features).sum(dim=1)
