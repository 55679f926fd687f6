"""Exponential moving average of a network's weights (the generator's, in a GAN)."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage(nn.Module):
    r"""Keeps a frozen copy of a network whose weights trail the live ones.

    .. math:: \theta_{ema} \leftarrow \beta \, \theta_{ema} + (1 - \beta) \, \theta

    Buffers (batch-norm statistics) are copied, not averaged, so the average always evaluates with the
    live network's current statistics. Being an ``nn.Module``, the copy is part of its owner's
    ``state_dict`` (and so of Lightning checkpoints) and moves with ``.to(device)``.

    Args:
        model: The network to track. It is deep-copied; the original is not modified.
        decay: :math:`\beta`, in the open interval (0, 1).

    Raises:
        ValueError: If ``decay`` is not in (0, 1).

    Example:
        >>> net = nn.Linear(2, 1)
        >>> ema = ExponentialMovingAverage(net, decay=0.5)
        >>> with torch.no_grad():
        ...     _ = net.weight.add_(1.0)
        >>> ema.update(net)
        >>> torch.allclose(ema.module.weight, net.weight - 0.5)
        True
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"`ema_decay` must be in the open interval (0, 1), got {decay!r}.")
        self.decay = float(decay)
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Moves the average one step towards ``model``'s current weights and copies its buffers."""
        ema_params = list(self.module.parameters())
        live_params = [p.detach() for p in model.parameters()]
        if len(ema_params) != len(live_params):
            raise ValueError(
                f"`model` has {len(live_params)} parameters but the average tracks {len(ema_params)}; "
                "update() must be given the network the average was built from."
            )
        # One fused multi-tensor kernel instead of a Python loop over parameters: the update runs every
        # generator step, so its launch overhead matters for small networks.
        torch._foreach_lerp_(ema_params, live_params, 1.0 - self.decay)
        for ema_buffer, live_buffer in zip(self.module.buffers(), model.buffers()):
            ema_buffer.copy_(live_buffer)
