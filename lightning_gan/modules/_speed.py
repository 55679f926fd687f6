"""The GAN module's speed options: several generator steps per loader batch, and compiled steps."""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def _check_step_counts(trainer: pl.Trainer, steps_per_batch: int) -> None:
    # With k generator steps per batch, Lightning can stop, write logs and save only between batches,
    # i.e. at multiples of k: refuse what would silently land elsewhere.
    if steps_per_batch == 1:
        return
    counts = [("Trainer(max_steps=...)", trainer.max_steps), ("Trainer(log_every_n_steps=...)", trainer.log_every_n_steps)]
    counts += [
        ("ModelCheckpoint(every_n_train_steps=...)", callback._every_n_train_steps)
        for callback in trainer.checkpoint_callbacks
        if isinstance(callback, ModelCheckpoint)
    ]
    for name, value in counts:
        if value is not None and value > 0 and value % steps_per_batch:
            lower = value // steps_per_batch * steps_per_batch
            higher = lower + steps_per_batch
            suggestions = f"{lower} or {higher}" if lower > 0 else f"{higher}"
            raise ValueError(
                f"`{name.replace('...', str(value))}` is not a multiple of `steps_per_batch={steps_per_batch}`: each "
                f"batch takes {steps_per_batch} generator steps, and Lightning acts only between batches. Use "
                f"{suggestions}, or a `steps_per_batch` that divides {value}."
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
