"""Exact-resume experiment: train straight, or resume a checkpoint in a fresh process, and dump the full state.

Run by tests/reliability/test_resume.py in two subprocesses, so the resumed runs start in a new
interpreter with nothing carried over in memory. Usage::

    python resume_script.py first DIR STEPS               # straight run + a run stopped at STEPS/2
    python resume_script.py resume DIR STEPS NAME [...]   # new runs from DIR/NAME.ckpt up to STEPS

``first`` trains STEPS generator steps (2 epochs of 8 batches for STEPS=16), saving ``epoch0.ckpt`` (end of
the first epoch, after validation), ``step12.ckpt`` (mid second epoch) and ``straight.pt`` (the final
state); then a second run with ``max_steps=STEPS/2`` saves ``half.ckpt`` when it ends. ``resume`` writes
``resumed-NAME.pt``. Every run calls ``seed_everything``; resumed runs seed with a different value, so
equal results can only come from what the checkpoint restored.
"""

from __future__ import annotations

import sys
from pathlib import Path

BATCHES_PER_EPOCH = 8
BATCH_SIZE = 8


def _build():
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gan import DCGAN

    class ScheduledDCGAN(DCGAN):
        """DCGAN with a step-interval StepLR on each optimizer, so scheduler state is part of the test."""

        def configure_optimizers(self):
            opt_g, opt_d = super().configure_optimizers()
            schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.7) for o in (opt_g, opt_d)]
            return [opt_g, opt_d], [{"scheduler": s, "interval": "step"} for s in schedulers]

    # The data is fixed by its own generator, whatever the global seed of the run.
    data = torch.Generator().manual_seed(123)
    images = torch.rand(BATCHES_PER_EPOCH * BATCH_SIZE, 1, 28, 28, generator=data) * 2 - 1
    held_out = torch.rand(2 * BATCH_SIZE, 1, 28, 28, generator=data) * 2 - 1
    # The usual loaders: a shuffled one (RandomSampler seeded from torch's global RNG at each epoch start)
    # and an ordered validation one, so the validation loop runs between epochs as in real training.
    train = DataLoader(TensorDataset(images), batch_size=BATCH_SIZE, shuffle=True)
    val = DataLoader(TensorDataset(held_out), batch_size=BATCH_SIZE)

    def model():
        return ScheduledDCGAN(image_shape=(1, 28, 28), latent_dim=16, features=8, ema_decay=0.9)

    def trainer(max_steps, callbacks=(), root="."):
        return pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=max_steps,
            deterministic=True,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=bool(callbacks),
            callbacks=list(callbacks),
            default_root_dir=root,
        )

    return model, trainer, train, val


def _state(trainer, module) -> dict:
    """Everything a resumed run must reproduce: module state (G, D, EMA, buffers), optimizers, schedulers."""
    import torch

    return {
        "global_step": trainer.global_step,
        "module": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "optimizers": [o.state_dict() for o in trainer.optimizers],
        "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        "torch_rng": torch.get_rng_state(),
    }


def first(out_dir: Path, steps: int) -> None:
    """The straight run (with checkpoints on the way), then a separate run that stops half way and saves."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    model, trainer, train, val = _build()
    pl.seed_everything(0, verbose=False)
    # save_top_k=-1 keeps every file: the epoch-0 file must survive the later saves. Names: epoch0.ckpt, ...
    at_epoch_end = ModelCheckpoint(dirpath=out_dir, filename="epoch{epoch}", every_n_epochs=1, save_top_k=-1,
                                   auto_insert_metric_name=False)
    # Half way through the second epoch: a mid-epoch resume point (step12.ckpt for 16 steps of 8 batches).
    mid = ModelCheckpoint(dirpath=out_dir, filename="step{step}", every_n_train_steps=steps * 3 // 4, save_top_k=-1,
                          auto_insert_metric_name=False)
    run = trainer(steps, [at_epoch_end, mid], root=out_dir)
    gan = model()
    run.fit(gan, train, val)
    torch.save(_state(run, gan), out_dir / "straight.pt")

    # What a job limited to half the steps does: fit with max_steps=steps/2, then save.
    pl.seed_everything(0, verbose=False)
    run = trainer(steps // 2, root=out_dir)
    run.fit(model(), train, val)
    run.save_checkpoint(out_dir / "half.ckpt")


def resume(out_dir: Path, steps: int, names: list[str]) -> None:
    """Resumes each checkpoint ``out_dir/NAME.ckpt`` up to ``steps`` and saves ``out_dir/resumed-NAME.pt``."""
    import pytorch_lightning as pl
    import torch

    model, trainer, train, val = _build()
    for name in names:
        pl.seed_everything(99, verbose=False)  # not the first run's seed: the checkpoint must restore the RNG
        run = trainer(steps, root=out_dir / f"resumed-{name}")
        gan = model()
        run.fit(gan, train, val, ckpt_path=str(out_dir / f"{name}.ckpt"))
        torch.save(_state(run, gan), out_dir / f"resumed-{name}.pt")


if __name__ == "__main__":
    mode, directory, total_steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if mode == "first":
        first(directory, total_steps)
    elif mode == "resume":
        resume(directory, total_steps, sys.argv[4:])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
