"""Exact resume under ``gan_ddp`` on 2 CPU processes: a straight run with checkpoints, or resumes of them.

Run by tests/reliability/test_resume_matrix.py in a subprocess (Lightning's launcher restarts this script
once per rank). Usage: ``python ddp_resume_script.py first DIR`` trains 2 epochs of 4 batches per rank,
saving ``epoch0.ckpt`` and ``mid.ckpt`` (half way through the second epoch), and each rank writes
``straight-rank{R}.pt``; ``python ddp_resume_script.py resume DIR`` resumes both checkpoints, seeding with
another value, and each rank writes ``resumed-{NAME}-rank{R}.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

BATCHES_PER_EPOCH = 4
BATCH_SIZE = 8
WORLD_SIZE = 2


def main(mode: str, out: Path) -> None:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    from lightning_gan import DCGAN
    from lightning_gan.data import TensorDataModule

    data = torch.Generator().manual_seed(7)  # the same data on every rank and in every run
    n = WORLD_SIZE * BATCHES_PER_EPOCH * BATCH_SIZE
    images = torch.rand(n, 1, 28, 28, generator=data) * 2 - 1
    held_out = torch.rand(BATCH_SIZE * WORLD_SIZE, 1, 28, 28, generator=data) * 2 - 1

    def fit(seed: int, callbacks=(), ckpt_path=None, root: Path = out):
        pl.seed_everything(seed, verbose=False)
        gan = DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4, ema_decay=0.9)
        trainer = pl.Trainer(
            accelerator="cpu", devices=WORLD_SIZE, strategy="gan_ddp", max_epochs=2, deterministic=True,
            logger=False, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=bool(callbacks), callbacks=list(callbacks), default_root_dir=root,
        )
        trainer.fit(gan, datamodule=TensorDataModule(images, held_out, batch_size=BATCH_SIZE), ckpt_path=ckpt_path)
        return trainer, gan

    def dump(trainer, gan, name: str) -> None:
        state = {
            "global_step": trainer.global_step,
            "module": {k: v.detach().clone() for k, v in gan.state_dict().items()},
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "step_stream": gan._step_stream.cpu.clone(),  # this rank's latent stream, where it ended
        }
        torch.save(state, out / f"{name}-rank{trainer.global_rank}.pt")

    if mode == "first":
        checkpoints = [
            ModelCheckpoint(dirpath=out, filename="epoch{epoch}", every_n_epochs=1, save_top_k=-1,
                            auto_insert_metric_name=False),
            ModelCheckpoint(dirpath=out, filename="mid", every_n_train_steps=BATCHES_PER_EPOCH * 3 // 2),
        ]
        dump(*fit(0, checkpoints), "straight")
    else:
        for name in ("epoch0", "mid"):
            dump(*fit(99, ckpt_path=str(out / f"{name}.ckpt"), root=out / name), f"resumed-{name}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
