"""Minibatch standard deviation layer from ProGAN (Karras et al., 2018).

"Progressive Growing of GANs for Improved Quality, Stability, and Variation"
(Karras, Aila, Laine and Lehtinen, 2018), Section 3: the discriminator gets,
as one extra input channel near its end, the average standard deviation of
its features across a small group of samples. A generator that collapses to
few modes makes that statistic smaller than on real batches, which the
discriminator can then penalise.

The formula follows ``minibatch_stddev_layer`` of the official code,
https://github.com/tkarras/progressive_growing_of_gans/blob/master/networks.py
(the same function is used by StyleGAN).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["MinibatchStdDev"]

# Added to the variance before the square root, as in the reference: keeps the
# gradient of sqrt finite when every sample of a group is identical.
_EPS = 1e-8


def _check_group_size(name: str, value: object) -> int:
    # Not mlp._check_positive_int: mlp imports this module, so importing back would be circular.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= 2, got {value!r} of type {type(value).__name__}")
    if value < 2:
        # The reference disables the layer for group sizes <= 1: a one-sample group has no spread.
        raise ValueError(f"{name} must be an int >= 2 (a group of one sample has no spread), got {value!r}")
    return value


def _check_minibatch_std_group(value: object) -> Optional[int]:
    """The ``minibatch_std_group`` option of a discriminator: ``None`` (off) or a group size >= 2."""
    if value is None:
        return None
    return _check_group_size("minibatch_std_group", value)


class MinibatchStdDev(nn.Module):
    """Appends the group-wise standard deviation of the batch as one extra channel (Karras et al., 2018).

    The batch of ``N`` samples is split into ``N / G`` groups of ``G = min(group_size, N)``
    samples. Within each group, the standard deviation of every feature at every pixel is
    ``sqrt(mean((x - mean(x))**2) + 1e-8)`` (the biased, population estimate, as in the
    reference); these are averaged over features and pixels into one number per group, which
    is appended to each sample of the group: as a constant ``(H, W)`` plane for an
    ``(N, C, H, W)`` input, giving ``(N, C + 1, H, W)``, or as one extra feature for an
    ``(N, F)`` input, giving ``(N, F + 1)``.

    Groups are formed as in the reference's ``reshape(x, [G, -1, ...])``: sample ``n``
    belongs to group ``n % (N // G)``, so consecutive samples land in different groups. The
    statistic is computed in at least float32 (the reference casts half precision up) and cast
    back to the input's dtype.

    Unlike every other layer here, the output for one sample depends on the other samples of
    its group, in training and in evaluation mode alike (like batch norm in training mode). A
    gradient penalty that assumes samples are scored independently (WGAN-GP, R1) then no
    longer holds exactly, and a discriminator's score of a sample changes with the batch it
    comes in; call the discriminator on real and fake batches separately so that groups never
    mix the two.

    Args:
        group_size: Largest number of samples per group (4 in ProGAN and StyleGAN). Must be
            at least 2. The batch size must be a multiple of it, or smaller than it (then
            the whole batch is one group).

    Attributes:
        group_size: The group size given.

    Raises:
        TypeError: If ``group_size`` is not an int.
        ValueError: If ``group_size`` is below 2; at call time, if the batch size is not a
            multiple of the group size or the input is not 2-D or 4-D.

    Example:
        >>> import torch
        >>> layer = MinibatchStdDev(group_size=2)
        >>> y = layer(torch.randn(4, 3, 5, 5))
        >>> tuple(y.shape)
        (4, 4, 5, 5)
        >>> same = layer(torch.ones(2, 6))  # identical samples: std sqrt(0 + 1e-8)
        >>> tuple(same.shape), round(float(same[0, -1]), 6)
        ((2, 7), 0.0001)
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = _check_group_size("group_size", group_size)

    def forward(self, x: Tensor) -> Tensor:
        """Append the statistic.

        Args:
            x: Features of shape ``(N, C, H, W)`` or ``(N, F)``.

        Returns:
            ``(N, C + 1, H, W)`` or ``(N, F + 1)``: ``x`` with the statistic appended last.
        """
        if x.dim() not in (2, 4):
            raise ValueError(
                f"MinibatchStdDev expects an (N, C, H, W) or (N, F) input, got shape {tuple(x.shape)}"
            )
        n = x.shape[0]
        group = min(self.group_size, n)
        if n % group != 0:
            raise ValueError(
                f"MinibatchStdDev(group_size={self.group_size}) needs a batch size that is a multiple of "
                f"{group} (or smaller than {self.group_size}), got a batch of {n}"
            )
        # [G, M, ...]: sample g * M + m is member g of group m, as in the reference's reshape.
        y = x.reshape(group, n // group, *x.shape[1:])
        y = y.to(torch.promote_types(x.dtype, torch.float32))
        y = y - y.mean(dim=0, keepdim=True)
        y = torch.sqrt(y.square().mean(dim=0) + _EPS)  # [M, ...]: biased std over the group
        y = y.flatten(1).mean(dim=1).to(x.dtype)  # [M]: averaged over features and pixels
        # Tiling [M] G times gives sample g * M + m its group m's value, as the reference's tile.
        y = y.repeat(group)
        if x.dim() == 4:
            stat = y.view(n, 1, 1, 1).expand(n, 1, x.shape[2], x.shape[3])
        else:
            stat = y.view(n, 1)
        return torch.cat([x, stat], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"
