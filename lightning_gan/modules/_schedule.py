"""The GAN module's schedule options: generator steps per round, DRAGAN and clipping weights, linear LR decay."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

#: The ``lr_decay`` options of :class:`~lightning_gan.GAN`.
LR_DECAYS = ("none", "linear")

# Where each parameter group keeps the learning rate the decay starts from. A key of its own, not the
# schedulers' `initial_lr`, and inside the optimizer's state dict, so that a resumed run decays from the
# same value.
_INITIAL_LR = "lightning_gan_initial_lr"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_schedule_options(*, n_gen: Any, dragan_weight: Any, weight_clip: Any, lr_decay: Any) -> None:
    if isinstance(n_gen, bool) or not isinstance(n_gen, int) or n_gen < 1:
        raise ValueError(f"`n_gen` must be an integer >= 1, got {n_gen!r}.")
    if not _is_number(dragan_weight) or not 0 <= dragan_weight < math.inf:
        raise ValueError(f"`dragan_weight` must be a finite number >= 0, got {dragan_weight!r}.")
    if weight_clip is not None and not (_is_number(weight_clip) and 0 < weight_clip < math.inf):
        raise ValueError(f"`weight_clip` must be None or a finite positive number (WGAN's c, e.g. 0.01), got {weight_clip!r}.")
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"`lr_decay` must be one of {', '.join(map(repr, LR_DECAYS))}, got {lr_decay!r}.")


def _check_lr_decay(trainer: pl.Trainer, lr_decay: str) -> None:
    """Refuses, before training, a linear decay with no end to decay to, or one that a scheduler would fight."""
    if lr_decay != "linear":
        return
    if trainer.max_steps is None or trainer.max_steps <= 0:
        raise ValueError(
            f"`lr_decay='linear'` decays the learning rates to 0 at `Trainer(max_steps=...)`, but max_steps is "
            f"{trainer.max_steps!r}; set max_steps (in generator steps), or use lr_decay='none'."
        )
    if trainer.lr_scheduler_configs:
        raise ValueError(
            "`lr_decay='linear'` sets the learning rates itself, and `configure_optimizers` also returned LR "
            "scheduler(s), which would set them too; return no scheduler, or use lr_decay='none'."
        )


def _decay_learning_rates_linearly(trainer: pl.Trainer) -> None:
    """Sets every optimizer's learning rates to ``lr_0 * (1 - global_step / max_steps)`` (0 from max_steps on)."""
    factor = max(0.0, 1.0 - trainer.global_step / trainer.max_steps)
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group.setdefault(_INITIAL_LR, group["lr"]) * factor
