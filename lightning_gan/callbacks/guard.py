"""Stop a run whose losses or weights went NaN/inf, or whose discriminator saturated, before it overwrites a good checkpoint."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from itertools import chain
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor
from torch.optim import Optimizer
from typing_extensions import override

__all__ = ["DivergenceError", "DivergenceGuard"]


class DivergenceError(RuntimeError):
    """Training diverged; raised by :class:`DivergenceGuard`.

    The message names the step at which the guard stopped, each quantity that went bad (and at which
    step it first did), and the last checkpoint written before, which is known to be good.

    Example:
        >>> issubclass(DivergenceError, RuntimeError)
        True
    """


# "Never": the step recorded for a quantity that has always been finite (any real step is smaller).
_NEVER = 2**62


class _FirstBad:
    """Per named scalar, on the device: the first step at which it was not finite.

    One int64 tensor, updated with three elementwise ops per step (``isfinite``, ``where``, ``minimum``),
    so recording never waits for the device. Names are added as they appear; a name missing from a
    step counts as finite on it. The latest values are kept (as references) to say what they are now.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.step: Optional[Tensor] = None  # int64 (n,), _NEVER while finite
        self.latest: dict[str, Tensor] = {}
        self._zero: Optional[Tensor] = None

    def record(self, values: Mapping[str, Tensor], step: int) -> None:
        if not values:
            return
        for name, value in values.items():
            if name not in self.names:
                self._add(name, value.device)
        assert self.step is not None and self._zero is not None
        stacked = torch.stack([_as_scalar(values[n]) if n in values else self._zero for n in self.names])
        self.step = torch.minimum(self.step, torch.where(torch.isfinite(stacked), _NEVER, step))
        self.latest.update(values)

    def any_bad(self) -> Optional[Tensor]:
        return None if self.step is None else (self.step < _NEVER).any()

    def describe(self) -> list[tuple[int, str]]:
        """``(step, "<name> was first non-finite at step s (now nan)")`` per bad name; reads the device."""
        if self.step is None:
            return []
        found = []
        for name, step in zip(self.names, self.step.tolist()):
            if step < _NEVER:
                now = self.latest.get(name)
                suffix = f" (now {_as_scalar(now).item():g})" if now is not None else ""
                found.append((step, f"{name} was first non-finite at step {step}{suffix}"))
        return found

    def _add(self, name: str, device: torch.device) -> None:
        self.names.append(name)
        never = torch.full((1,), _NEVER, dtype=torch.int64, device=device)
        self.step = never if self.step is None else torch.cat([self.step.to(device), never])
        self._zero = torch.zeros((), dtype=torch.float32, device=device)


class DivergenceGuard(pl.Callback):
    r"""Stops training with a :class:`DivergenceError` when it diverges, and never lets a diverged state be saved.

    **What counts as divergence.**

    * A loss that is NaN or infinite: the losses passed to ``backward`` (for a GAN, the generator's loss
      and the discriminator's loss with its penalties, from the last critic step of each generator step:
      a NaN in an earlier one reaches the weights and so the later losses), and, when the module exposes
      them, its per-step metrics ``pl_module.last_step_metrics`` (a dict of tensors, e.g. ``loss_d``,
      ``loss_g``, reported as ``train/<name>``). Under ``precision="16-mixed"`` the losses passed to
      ``backward`` are the scaled ones.
    * A parameter or floating-point buffer (batch-norm statistics, the EMA generator) that is NaN or
      infinite (``check_parameters``).
    * A saturated discriminator, for the probabilistic losses (``minimax``, ``non_saturating``): its
      loss at most :math:`-\log(1 - \epsilon)` (``saturation_eps``) on ``saturation_steps`` consecutive
      generator steps. Since :math:`L_D = \overline{-\log D(x)} + \overline{-\log(1 - D(G(z)))}`, that
      bound implies (Jensen) ``train/d_real >= 1 - eps`` and ``train/d_fake <= eps``: the discriminator
      tells every sample apart with certainty, and the generator learns little. The loss is used, not
      ``d_real``/``d_fake``, because it is there on every step (the module computes those summaries only
      on the steps Lightning writes). It is ``last_step_metrics["loss_d"]`` when the module exposes it,
      else the discriminator loss passed to ``backward``, which includes any penalties (GP, R1), so
      large penalties can hide a saturation. Score-based losses (Wasserstein, hinge, least squares)
      have no probability to saturate and are not checked.

    **When it checks.** Every step it records, on the device, whether each loss is finite and how long
    the saturation streak is: elementwise ops only, no host synchronisation. It *reads* those records
    (one synchronisation, plus one all-reduce under DDP so every process stops together) every
    ``check_every_n_steps`` generator steps, before every checkpoint is written, at the start of each
    validation run during fitting and at the end of training. The parameters are checked at those
    points too. A divergence is therefore noticed up to ``check_every_n_steps - 1`` steps late, but the
    message gives the step at which each loss first went bad.

    **The last good checkpoint survives.** The check in :meth:`on_save_checkpoint` runs after the
    checkpoint is assembled and before any file is written or removed, so a diverged state is never
    saved and no earlier file (e.g. ``ModelCheckpoint``'s ``last.ckpt``) is replaced or deleted. The
    error names the most recent file a ``ModelCheckpoint`` wrote.

    **Stopping.** It sets ``trainer.should_stop`` and raises :class:`DivergenceError` (a
    ``RuntimeError``): ``trainer.fit`` ends with that exception, as with any error in training, and a
    script exits non-zero. Stopping quietly would let the end-of-training checkpoint hooks run on the
    diverged weights.

    Args:
        check_every_n_steps: Read the records every this many generator steps (``trainer.global_step``).
        saturation_steps: Consecutive saturated steps that stop training; ``None`` disables the check.
        saturation_eps: :math:`\epsilon`: how close to 1 and 0 ``d_real`` and ``d_fake`` must be (at least)
            for a step to count as saturated.
        check_parameters: Also check every parameter and floating-point buffer at each check.

    Raises:
        ValueError: For ``check_every_n_steps < 1``, ``saturation_steps < 1`` or ``saturation_eps``
            outside (0, 0.5).

    Example:
        >>> import pytorch_lightning as pl
        >>> guard = DivergenceGuard(check_every_n_steps=10, saturation_steps=200, saturation_eps=1e-3)
        >>> trainer = pl.Trainer(callbacks=[guard], logger=False, enable_progress_bar=False)
        >>> guard.check_every_n_steps, guard.saturation_steps
        (10, 200)
        >>> DivergenceGuard(check_every_n_steps=0)
        Traceback (most recent call last):
        ...
        ValueError: `check_every_n_steps` must be an integer >= 1, got 0.
    """

    def __init__(
        self,
        check_every_n_steps: int = 50,
        saturation_steps: Optional[int] = 1000,
        saturation_eps: float = 1e-3,
        check_parameters: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(check_every_n_steps, bool) or not isinstance(check_every_n_steps, int) or check_every_n_steps < 1:
            raise ValueError(f"`check_every_n_steps` must be an integer >= 1, got {check_every_n_steps!r}.")
        if saturation_steps is not None and (
            isinstance(saturation_steps, bool) or not isinstance(saturation_steps, int) or saturation_steps < 1
        ):
            raise ValueError(f"`saturation_steps` must be None or an integer >= 1, got {saturation_steps!r}.")
        if isinstance(saturation_eps, bool) or not isinstance(saturation_eps, (int, float)) or not 0.0 < saturation_eps < 0.5:
            raise ValueError(f"`saturation_eps` must be a number in (0, 0.5), got {saturation_eps!r}.")
        self.check_every_n_steps = check_every_n_steps
        self.saturation_steps = saturation_steps
        self.saturation_eps = float(saturation_eps)
        self.check_parameters = bool(check_parameters)
        self._reset()

    # ------------------------------------------------------------------ recording (every step, no sync)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._previous_step = trainer.global_step  # a resumed run checks from where it was

    @override
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        # Named when its optimizer steps (below): only then is it known which network it trains.
        self._pending_loss = loss.detach()

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer) -> None:
        loss, self._pending_loss = self._pending_loss, None
        if loss is not None:
            # Folded into one record per step in on_train_batch_end: a later critic step overwrites an earlier
            # one, whose NaN would have reached the weights and so the later losses anyway.
            self._step_losses[_loss_index(trainer, optimizer)] = loss

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # the generator steps done, this one included
        losses, self._step_losses = self._step_losses, {}
        gan = _is_gan(trainer, pl_module)
        values = {_loss_name(index, gan, len(trainer.optimizers)): loss for index, loss in losses.items()}
        d_loss = losses.get(1) if gan else None  # with its penalties
        metrics = getattr(pl_module, "last_step_metrics", None)
        if isinstance(metrics, Mapping):
            tensors = {k: v for k, v in metrics.items() if isinstance(v, Tensor)}
            values.update({f"train/{k}": v for k, v in tensors.items()})
            d_loss = tensors.get("loss_d", d_loss)  # without the penalties: exact
        self._losses.record(values, step)
        if d_loss is not None and self._saturation_applies(pl_module):
            self._record_saturation(d_loss, step)
        # A multiple of the period passed since the last batch (a batch may take several generator steps).
        previous, self._previous_step = self._previous_step, step
        if step // self.check_every_n_steps > previous // self.check_every_n_steps:
            self._check(trainer, pl_module, f"found by its check every {self.check_every_n_steps} step(s)")

    def _record_saturation(self, d_loss: Tensor, step: int) -> None:
        if self._streak is None or self._saturated_at is None:
            self._streak = torch.zeros((), dtype=torch.int64, device=d_loss.device)
            self._saturated_at = torch.full((), _NEVER, dtype=torch.int64, device=d_loss.device)
        self._streak = self._streak.add(1).mul_(d_loss.detach() <= self._saturation_loss)
        reached = torch.where(self._streak >= self.saturation_steps, step, _NEVER)
        self._saturated_at = torch.minimum(self._saturated_at, reached)

    # ------------------------------------------------------------------ checking (one sync)

    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Runs while the checkpoint is assembled, before anything is written or an older file removed.
        self._check(trainer, pl_module, "while saving a checkpoint, which was not written")
        self._last_good_save_step = trainer.global_step

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Metric callbacks (FID, likelihoods) would otherwise fail on NaN samples with a less clear error.
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._check(trainer, pl_module, "at the start of validation")

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, pl_module, "at the end of training")

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, when: str) -> None:
        flags = [f for f in (self._losses.any_bad(),) if f is not None]
        if self._saturated_at is not None:
            flags.append(self._saturated_at < _NEVER)
        if self.check_parameters:
            flags.append(~torch.isfinite(_max_abs(_floating_tensors(pl_module), pl_module.device)))
        if not flags:
            return
        device = flags[0].device
        bad = torch.stack([f.to(device) for f in flags]).any().to(torch.float32)
        if trainer.world_size > 1:
            # Every process must stop at the same point, or the others would wait in their next collective.
            bad = trainer.strategy.reduce(bad, reduce_op="sum")
        if not bool(bad.item()):  # the one synchronisation of a check
            return
        trainer.should_stop = True
        raise DivergenceError(self._message(trainer, pl_module, when))

    # ------------------------------------------------------------------ the message (slow path)

    def _message(self, trainer: pl.Trainer, pl_module: pl.LightningModule, when: str) -> str:
        findings = sorted(self._losses.describe(), key=lambda item: item[0])
        problems = [text for _, text in findings]
        if self._saturated_at is not None and int(self._saturated_at) < _NEVER:
            end, eps = int(self._saturated_at), self.saturation_eps
            problems.append(
                f"the discriminator saturated: its loss stayed <= {self._saturation_loss:.4g} (so train/d_real >= "
                f"{1 - eps:g} and train/d_fake <= {eps:g}) on {self.saturation_steps} consecutive steps, steps "
                f"{end - self.saturation_steps + 1} to {end}"
            )
        if self.check_parameters:
            bad_tensors = [
                name
                for name, t in chain(pl_module.named_parameters(), pl_module.named_buffers())
                if t.is_floating_point() and not bool(torch.isfinite(t).all())
            ]
            if bad_tensors:
                shown = ", ".join(bad_tensors[:3]) + (", ..." if len(bad_tensors) > 3 else "")
                problems.append(f"{len(bad_tensors)} parameter(s)/buffer(s) are not finite ({shown})")
        if not problems:
            problems.append("another process found a non-finite loss or parameter, or a saturated discriminator")
        checkpoint = _latest_checkpoint(trainer)
        if checkpoint is None:
            where = "No checkpoint was written before it."
        else:
            saved = f" (saved at step {self._last_good_save_step})" if self._last_good_save_step is not None else ""
            where = f"Last good checkpoint: {checkpoint}{saved}; no diverged state was saved."
        return (
            f"DivergenceGuard stopped training at step {trainer.global_step} (epoch {trainer.current_epoch}), "
            f"{when}: {'; '.join(problems)}. {where}"
        )

    # ------------------------------------------------------------------ helpers

    def _reset(self) -> None:
        self._losses = _FirstBad()
        self._pending_loss: Optional[Tensor] = None
        self._step_losses: dict[Optional[int], Tensor] = {}
        self._streak: Optional[Tensor] = None
        self._saturated_at: Optional[Tensor] = None
        self._previous_step = 0
        self._last_good_save_step: Optional[int] = None

    @property
    def _saturation_loss(self) -> float:
        """The discriminator loss below which it counts as saturated: -log(1 - eps)."""
        return -math.log1p(-self.saturation_eps)

    def _saturation_applies(self, pl_module: pl.LightningModule) -> bool:
        loss = getattr(pl_module, "adversarial_loss", None)
        return self.saturation_steps is not None and bool(getattr(loss, "probabilistic", False))


def _is_gan(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
    # GAN's contract: two optimizers, the generator's then the discriminator's, and an `adversarial_loss`.
    return len(trainer.optimizers) == 2 and hasattr(pl_module, "adversarial_loss")


def _loss_index(trainer: pl.Trainer, optimizer: Optimizer) -> Optional[int]:
    raw = getattr(optimizer, "optimizer", optimizer)
    return next((i for i, o in enumerate(trainer.optimizers) if o is raw or o is optimizer), None)


def _loss_name(index: Optional[int], gan: bool, num_optimizers: int) -> str:
    if index is not None and gan:
        return ("the generator loss", "the discriminator loss (with its penalties)")[index]
    return "the loss" if num_optimizers == 1 else f"the loss of optimizer {index}"


def _as_scalar(value: Tensor) -> Tensor:
    value = value.detach()
    if value.ndim != 0:
        # NaN and inf survive a max of absolute values, so one number tells whether all are finite.
        value = value.abs().amax() if value.numel() else value.new_zeros(())
    return value.to(torch.float32)


def _floating_tensors(module: torch.nn.Module) -> list[Tensor]:
    return [t.detach() for t in chain(module.parameters(), module.buffers()) if t.is_floating_point() and t.numel()]


def _max_abs(tensors: list[Tensor], device: torch.device) -> Tensor:
    """The largest absolute value over all tensors (NaN if any holds NaN), with fused per-device kernels."""
    if not tensors:
        return torch.zeros((), device=device)
    return torch.nn.utils.get_total_norm(tensors, norm_type=math.inf, error_if_nonfinite=False, foreach=None)


def _latest_checkpoint(trainer: pl.Trainer) -> Optional[str]:
    """The most recently written file of the trainer's ModelCheckpoint callbacks, if any."""
    paths = []
    for callback in trainer.checkpoint_callbacks:
        for attribute in ("_last_checkpoint_saved", "last_model_path", "best_model_path"):
            path = getattr(callback, attribute, "")
            if path and os.path.isfile(path):
                paths.append(path)
    return max(paths, key=os.path.getmtime) if paths else None
