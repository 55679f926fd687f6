"""The GAN step's backward and optimizer step call Lightning's hooks directly where that is equivalent.

The direct path must be invisible: the same hooks, in the same order, with the same arguments and the
same ``_current_fx_name`` (what ``self.log`` is checked against), and the same arithmetic.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import cpu_trainer
from pytorch_lightning.trainer import call

from lightning_gan import VanillaGAN
from lightning_gan.data import TensorDataModule
from lightning_gan.modules import _hooks

HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


class Listener(pl.Callback):
    """Records every backward/step hook call; logs from one of them, as a user's callback might."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls.append(("cb.on_before_backward", pl_module._current_fx_name, loss.item()))
        pl_module.log("listener/loss", loss.detach())

    def on_after_backward(self, trainer, pl_module) -> None:
        grads = [p.grad.sum().item() for p in pl_module.parameters() if p.grad is not None]
        self.calls.append(("cb.on_after_backward", pl_module._current_fx_name, len(grads), sum(grads)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls.append(("cb.on_before_optimizer_step", pl_module._current_fx_name, len(optimizer.param_groups[0]["params"])))


class Silent(pl.Callback):
    """Overrides no backward/step hook: the direct path must not call it."""


class ListeningGAN(VanillaGAN):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple] = []

    def on_after_backward(self) -> None:
        self.calls.append(("module.on_after_backward", self._current_fx_name))

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)  # clipping
        self.calls.append(("module.on_before_optimizer_step", self._current_fx_name))


def run(tmp_path, name: str, **trainer_options):
    pl.seed_everything(0, verbose=False)
    gan = ListeningGAN(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,), maxout_pieces=1,
                       dropout=0.0, output_activation="identity", n_critic=2, gradient_clip_val=0.5, steps_per_batch=2)
    listener = Listener()
    trainer = cpu_trainer(max_steps=6, callbacks=[listener, Silent()], log_every_n_steps=2,
                          logger=pl.loggers.CSVLogger(tmp_path, name=name, version=""), **trainer_options)
    trainer.fit(gan, datamodule=TensorDataModule(torch.randn(64, 2), batch_size=16))
    return gan, listener, trainer


@pytest.fixture
def lightning_dispatch_counter(monkeypatch):
    """Counts Lightning's own dispatches of the backward/step hooks."""
    counts = {hook: 0 for hook in HOOKS}
    original = call._call_callback_hooks

    def counting(trainer, hook_name, *args, **kwargs):
        if hook_name in counts:
            counts[hook_name] += 1
        return original(trainer, hook_name, *args, **kwargs)

    monkeypatch.setattr(call, "_call_callback_hooks", counting)
    return counts


def test_direct_hooks_are_lightnings_hooks_call_for_call(tmp_path, monkeypatch, lightning_dispatch_counter):
    direct, direct_listener, direct_trainer = run(tmp_path, "direct")
    assert direct._step_hooks.direct
    assert lightning_dispatch_counter == {hook: 0 for hook in HOOKS}  # Lightning's dispatch was not used

    monkeypatch.setattr(_hooks, "_takes_plain_path", lambda trainer: False)
    through, through_listener, through_trainer = run(tmp_path, "lightning")
    assert not through._step_hooks.direct
    # 6 generator steps x (2 discriminator steps + 1 generator step) = 18 backwards and 18 optimizer steps.
    assert lightning_dispatch_counter == {hook: 18 for hook in HOOKS}

    assert len(direct_listener.calls) == 3 * 18
    assert direct_listener.calls == through_listener.calls
    assert direct.calls == through.calls and len(direct.calls) == 2 * 18
    assert direct_trainer.global_step == through_trainer.global_step == 6
    for (key, a), (_, b) in zip(direct.state_dict().items(), through.state_dict().items()):
        assert torch.equal(a, b), key
    assert direct_trainer.logged_metrics["listener/loss"] == through_trainer.logged_metrics["listener/loss"]


def test_other_setups_keep_lightnings_path(tmp_path, lightning_dispatch_counter):
    # A profiler times each hook by name; the direct path would hide them from it.
    gan, listener, _ = run(tmp_path, "profiled", profiler="simple")
    assert not gan._step_hooks.direct
    assert lightning_dispatch_counter["on_before_backward"] == 18
    assert len(listener.calls) == 3 * 18
