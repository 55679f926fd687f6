"""The GAN module's checkpoint hooks: what a checkpoint holds besides weights, and what a load checks (a mixin)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from typing_extensions import override

from lightning_gan.modules._hyperparameters import _keep_reconstruction_hyperparameters
from lightning_gan.modules._random import StepRandomness, gathered_states
from lightning_gan.modules._support import (
    _non_finite_entries,
    _restore_rng_states,
    _rng_states,
    _warn_on_changed_hyperparameters,
)


class _CheckpointHooks:
    """Saves and restores the RNG states, refuses non-finite weights, records the writing class.

    A mixin of :class:`~lightning_gan.GAN`, kept apart so that the module's file holds the step.
    """

    trainer: Any
    _trainer: Any
    _step_stream: StepRandomness
    _step_stream_to_restore: Optional[dict[str, Any]]
    _rng_states_to_restore: Optional[dict[str, Any]]

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``; a plain ``GAN`` needs its two networks passed again.

        The networks are modules, not hyper-parameters, so a ``GAN`` built from them is rebuilt with
        ``GAN.load_from_checkpoint(path, generator=G(), discriminator=D())`` (the presets and subclasses
        that build their own networks need nothing).
        """
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except TypeError as error:
            missing = [n for n in ("generator", "discriminator") if f"'{n}'" in str(error) and "missing" in str(error)]
            if not missing:
                raise
            raise TypeError(
                f"{cls.__name__}.load_from_checkpoint needs the networks, which a checkpoint stores as weights only: "
                f"pass {' and '.join(f'{n}=...' for n in missing)} built as in training, e.g. "
                f"{cls.__name__}.load_from_checkpoint(path, generator=G(), discriminator=D())."
            ) from error


    @staticmethod
    def _reconstruction_base() -> type:
        from lightning_gan.modules.gan import GAN  # the module that imports this mixin

        return GAN

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Never write a non-finite state (guard or no guard): raising here stops Lightning before it writes,
        # so `last.ckpt` keeps the last good state. One max over the weights per save (a sync, per save).
        bad = _non_finite_entries(checkpoint.get("state_dict", {}))
        if bad:
            raise ValueError(
                f"Refusing to save a checkpoint at step {self.trainer.global_step if self._trainer else '?'}: "
                f"{len(bad)} weight tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}); the training diverged. The last checkpoint written is the last "
                "good state; lightning_gan.DivergenceGuard stops a run at the first non-finite step."
            )
        _keep_reconstruction_hyperparameters(self, checkpoint, self._reconstruction_base())
        # Lightning saves weights, optimizers, schedulers and the step counter but no RNG state; a GAN
        # draws latents every step, so without it a resumed run could not repeat a straight one.
        checkpoint["rng_states"] = _rng_states()
        if self._step_stream.ready and self._trainer is not None:
            checkpoint["step_rng"] = gathered_states(self._step_stream, self.trainer.strategy, self.trainer.world_size)
        elif self._step_stream_to_restore is not None:  # saved again before the first step of a resumed run
            checkpoint["step_rng"] = self._step_stream_to_restore
        # Which class wrote it, so a checkpoint can be scored (`python -m lightning_gan.evaluate CKPT`) or
        # reloaded without the user naming its class.
        from lightning_gan import __version__

        cls = type(self)
        checkpoint["lightning_gan"] = {"class": f"{cls.__module__}.{cls.__qualname__}", "version": __version__}

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        _warn_on_changed_hyperparameters(self, checkpoint)
        bad = _non_finite_entries(checkpoint.get("state_dict", {}))
        if bad:
            raise ValueError(
                f"The checkpoint's weights hold NaN or infinite values in {len(bad)} tensor(s) ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}): it cannot be resumed or evaluated. Use an earlier checkpoint."
            )
        # The global generator drives only what lies outside the training step (the order of a plain
        # DataLoader(shuffle=True), callbacks); it is restored in `on_train_start`, after Lightning created
        # the training iterator, as before. The package's data modules do not depend on it.
        self._rng_states_to_restore = checkpoint.get("rng_states")
        self._step_stream = StepRandomness()
        self._step_stream_to_restore = checkpoint.get("step_rng")

    def _restore_global_rng(self) -> None:
        # Called at train start, after Lightning created the training iterator (see on_load_checkpoint).
        states, self._rng_states_to_restore = self._rng_states_to_restore, None
        if states is None:
            return
        _restore_rng_states(states)
        if self.trainer.world_size > 1 and self.trainer.global_rank > 0:
            # The checkpoint holds rank 0's global state; other ranks keep their own for what they draw outside the step.
            torch.manual_seed((torch.initial_seed() + self.trainer.global_rank * 1_000_003) % 2**63)
