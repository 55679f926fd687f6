"""Exact resume across loop configurations: straight runs and checkpoints, or resumes in a new process.

Run by tests/reliability/test_resume_matrix.py. Usage::

    python resume_matrix_script.py first DIR STOP VAL MODEL [...]   # STOP: epochs|steps, VAL: 0|1
    python resume_matrix_script.py resume DIR STOP VAL MODEL [...]

Each configuration is ``STOP-VAL-MODEL`` (several can follow, in threes). ``first`` trains two epochs
straight (``max_epochs=2`` or ``max_steps`` = two epochs), saving ``epoch0.ckpt`` at the end of the first
epoch (after validation when there is a validation loader) and ``straight.pt``; then a run limited to one
epoch (``max_epochs=1`` or half the steps) saves ``stopped.ckpt`` when it ends; ``mid.ckpt`` is saved half way
through the second epoch of the straight run. ``resume`` resumes the three checkpoints to the end in this new
process, after seeding with another value, and writes ``resumed-epoch0.pt``, ``resumed-stopped.pt`` and
``resumed-mid.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

BATCHES_PER_EPOCH = 4
BATCH_SIZE = 8
CLASSES = 3


def _model(name: str):
    import torch

    from lightning_gan import DCGAN, WGANGP, ConditionalGAN

    if name == "dcgan":  # batch norm, EMA and a step-interval StepLR per optimizer

        class ScheduledDCGAN(DCGAN):
            def configure_optimizers(self):
                opt_g, opt_d = super().configure_optimizers()
                schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.7) for o in (opt_g, opt_d)]
                return [opt_g, opt_d], [{"scheduler": s, "interval": "step"} for s in schedulers]

        return ScheduledDCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4, ema_decay=0.9)
    if name == "wgangp":
        return WGANGP(image_shape=(1, 28, 28), latent_dim=8, features=4, n_critic=5)
    if name == "conditional":
        return ConditionalGAN(num_classes=CLASSES, image_shape=(1, 28, 28), latent_dim=8, features=4)
    raise SystemExit(f"unknown model {name!r}")


def _data(with_val: bool, model: str):
    import torch

    from lightning_gan.data import TensorDataModule

    data = torch.Generator().manual_seed(123)  # the data are fixed whatever the run's seed
    # WGANGP's 5 critic steps each take their own micro-batch of BATCH_SIZE: its loader batches are 5 times larger.
    n = BATCHES_PER_EPOCH * BATCH_SIZE * (5 if model == "wgangp" else 1)
    images = torch.rand(n, 1, 28, 28, generator=data) * 2 - 1
    labels = torch.randint(CLASSES, (n,), generator=data)
    held_out = torch.rand(BATCH_SIZE, 1, 28, 28, generator=data) * 2 - 1
    held_out_labels = torch.randint(CLASSES, (BATCH_SIZE,), generator=data)
    return TensorDataModule((images, labels), (held_out, held_out_labels) if with_val else None, batch_size=BATCH_SIZE)


def _trainer(stop: str, epochs: int, root: Path, callbacks=()):
    import pytorch_lightning as pl

    limit = {"max_epochs": epochs, "max_steps": -1} if stop == "epochs" else {"max_steps": epochs * BATCHES_PER_EPOCH}
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        **limit,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(callbacks),
        callbacks=list(callbacks),
        default_root_dir=root,
    )


def _state(trainer, module) -> dict:
    """Everything a resumed run must reproduce: weights, buffers, EMA, optimizers, schedulers, step."""
    return {
        "global_step": trainer.global_step,
        "module": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "optimizers": [o.state_dict() for o in trainer.optimizers],
        "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
    }


def first(out: Path, stop: str, with_val: bool, model: str) -> None:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(0, verbose=False)
    at_epoch_end = ModelCheckpoint(dirpath=out, filename="epoch{epoch}", every_n_epochs=1, save_top_k=-1,
                                   auto_insert_metric_name=False)
    # Half way through the second epoch: a mid-epoch checkpoint (the loader's state says how far it got).
    mid_epoch = ModelCheckpoint(dirpath=out, filename="mid", every_n_train_steps=BATCHES_PER_EPOCH * 3 // 2,
                                save_top_k=-1, auto_insert_metric_name=False)
    run = _trainer(stop, 2, out, [at_epoch_end, mid_epoch])
    gan = _model(model)
    run.fit(gan, datamodule=_data(with_val, model))
    torch.save(_state(run, gan), out / "straight.pt")

    pl.seed_everything(0, verbose=False)
    run = _trainer(stop, 1, out)
    run.fit(_model(model), datamodule=_data(with_val, model))
    run.save_checkpoint(out / "stopped.ckpt")


def resume(out: Path, stop: str, with_val: bool, model: str) -> None:
    import pytorch_lightning as pl
    import torch

    for name in ("epoch0", "stopped", "mid"):
        pl.seed_everything(99, verbose=False)  # not the first run's seed: the checkpoint must restore the streams
        run = _trainer(stop, 2, out / f"resumed-{name}")
        gan = _model(model)
        run.fit(gan, datamodule=_data(with_val, model), ckpt_path=str(out / f"{name}.ckpt"))
        torch.save(_state(run, gan), out / f"resumed-{name}.pt")


if __name__ == "__main__":
    mode, root, configs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    for i in range(0, len(configs), 3):
        stop, val, model = configs[i : i + 3]
        directory = root / f"{stop}-{val}-{model}"
        {"first": first, "resume": resume}[mode](directory, stop, val == "1", model)
