"""The backward and optimizer step of a GAN step, with Lightning's hooks called only where someone listens.

Lightning's ``manual_backward`` and ``strategy.optimizer_step`` call ``on_before_backward``,
``on_after_backward`` and ``on_before_optimizer_step`` on every callback and on the module, each inside a
profiler context named by a string built from the callback's state key. That is ~125 us per optimizer step
on a CPU, two optimizer steps per generator step: 5% of a small GAN's step, for callbacks that mostly do
not override the hooks. When the precision plugin, the strategy and the profiler are Lightning's plain
ones (which add nothing else around these hooks), :class:`StepHooks` calls the overriding hooks itself, in
Lightning's order and with Lightning's ``_current_fx_name`` bookkeeping, and nothing else. Any other setup
(mixed precision, DeepSpeed, FSDP, gan_ddp, a profiler) goes through Lightning's own path.
"""

from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
from pytorch_lightning.core.optimizer import LightningOptimizer, do_nothing_closure
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.profilers import PassThroughProfiler
from pytorch_lightning.strategies import Strategy
from torch import Tensor
from torch.optim import Optimizer

_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
_STRATEGY_METHODS = ("backward", "pre_backward", "post_backward", "optimizer_step")


def _takes_plain_path(trainer: pl.Trainer) -> bool:
    strategy = trainer.strategy
    return (
        type(strategy.precision_plugin) is Precision
        and type(trainer.profiler) is PassThroughProfiler
        and all(getattr(type(strategy), name) is getattr(Strategy, name) for name in _STRATEGY_METHODS)
    )


class StepHooks:
    """Backward and optimizer step for one ``Trainer``: direct where that is equivalent, Lightning's otherwise."""

    def __init__(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.trainer = trainer
        self.direct = _takes_plain_path(trainer)
        self._listeners: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
        for hook in _HOOKS:
            base = getattr(pl.Callback, hook)
            listeners = [(hook, getattr(cb, hook)) for cb in trainer.callbacks if getattr(type(cb), hook) is not base]
            self._listeners[hook] = listeners
            if getattr(type(module), hook) is not getattr(pl.LightningModule, hook):
                listeners.append((hook, lambda trainer, module, *args, hook=hook: getattr(module, hook)(*args)))

    def _call(self, module: pl.LightningModule, hook: str, *args: Any) -> None:
        listeners = self._listeners[hook]
        if not listeners:
            return
        previous = module._current_fx_name  # what self.log checks the hook against, as Lightning sets it
        for name, fn in listeners:
            module._current_fx_name = name
            fn(self.trainer, module, *args)
        module._current_fx_name = previous

    def backward(self, module: pl.LightningModule, loss: Tensor) -> None:
        """``module.manual_backward(loss)``."""
        if not self.direct:
            module.manual_backward(loss)
            return
        self._call(module, "on_before_backward", loss)
        module.backward(loss)
        self._call(module, "on_after_backward")

    def step(self, module: pl.LightningModule, optimizer: LightningOptimizer, counts: bool) -> None:
        """``optimizer.step()`` if ``counts`` (a step Lightning counts in ``global_step``), else the same step uncounted."""
        if counts:
            optimizer._on_before_step()
        raw: Optimizer = optimizer.optimizer
        if self.direct:
            self._call(module, "on_before_optimizer_step", raw)
            raw.step()
        else:
            self.trainer.strategy.optimizer_step(raw, do_nothing_closure, module)
        if counts:
            optimizer._on_after_step()
