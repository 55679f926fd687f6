"""How the GAN module cuts loader batches into steps (steps per batch, fresh critic data) and compiles them."""

from __future__ import annotations

from typing import Any, Optional

import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def _check_step_counts(trainer: pl.Trainer, steps_per_batch: int, n_gen: int = 1) -> None:
    # With k generator steps per batch, Lightning can stop, write logs and save only between batches,
    # i.e. at multiples of k: refuse what would silently land elsewhere.
    per_batch = steps_per_batch * n_gen
    if per_batch == 1:
        return
    setting = " x ".join(f"{name}={value}" for name, value in (("steps_per_batch", steps_per_batch), ("n_gen", n_gen)) if value > 1)
    counts = [("Trainer(max_steps=...)", trainer.max_steps), ("Trainer(log_every_n_steps=...)", trainer.log_every_n_steps)]
    counts += [
        ("ModelCheckpoint(every_n_train_steps=...)", callback._every_n_train_steps)
        for callback in trainer.checkpoint_callbacks
        if isinstance(callback, ModelCheckpoint)
    ]
    for name, value in counts:
        if value is not None and value > 0 and value % per_batch:
            lower = value // per_batch * per_batch
            higher = lower + per_batch
            suggestions = f"{lower} or {higher}" if lower > 0 else f"{higher}"
            raise ValueError(
                f"`{name.replace('...', str(value))}` is not a multiple of `{setting}`: each "
                f"batch takes {per_batch} generator steps, and Lightning acts only between batches. Use "
                f"{suggestions}, or settings whose generator steps per batch divide {value}."
            )


_COMPILE_ARGUMENTS = ("fullgraph", "dynamic", "backend", "mode", "options", "disable")


def _compile_options_from(value: Any) -> Optional[dict[str, Any]]:
    """The ``torch.compile`` keyword arguments a ``compile`` argument asks for; ``None`` for eager."""
    if isinstance(value, bool):
        return {} if value else None
    if isinstance(value, dict) and all(key in _COMPILE_ARGUMENTS for key in value):
        return dict(value)
    raise ValueError(
        f"`compile` must be True, False or a dict of torch.compile arguments ({', '.join(_COMPILE_ARGUMENTS)}), "
        f"got {value!r}."
    )


def _epoch_summary(
    trainer: pl.Trainer, steps_per_batch: int, n_critic: int, critic_data: str, n_gen: int = 1
) -> Optional[str]:
    """One line saying how a loader batch becomes steps, when it is not one batch per step; else ``None``."""
    per_step = n_critic if critic_data == "fresh" else 1
    parts = steps_per_batch * per_step
    if parts * n_gen == 1:
        return None
    how = f"{steps_per_batch * n_gen} generator step(s)"
    if n_gen > 1:
        how += f" (n_gen={n_gen} per round of critic steps)"
    if per_step > 1:
        how += f", each after n_critic={n_critic} critic steps on {per_step} fresh real micro-batches (critic_data='fresh')"
    line = f"Each loader batch is {parts} micro-batches: {how}."
    batches = trainer.num_training_batches
    if isinstance(batches, int) or (isinstance(batches, float) and math.isfinite(batches)):
        line += f" An epoch of {int(batches)} batches is {int(batches) * steps_per_batch * n_gen} generator steps."
    return line
