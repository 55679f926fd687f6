"""A fault on one of 2 CPU processes under ``strategy="gan_ddp"``: the whole run must end, non-zero, without hanging.

Run by tests/reliability/test_ddp_faults.py in a subprocess (Lightning's "popen" launcher restarts this
script once per rank). Usage: ``python ddp_fault_script.py MODE RANK OUT_DIR`` where MODE is

* ``raise``: rank RANK raises ``RuntimeError`` inside ``training_step`` at generator step 3;
* ``nan``: rank RANK's generator loss is NaN from generator step 3, and a ``DivergenceGuard`` checks
  every 2 steps; every rank must stop with ``DivergenceError`` at the same check. Rank 0 takes
  ``SLOW_REPORT_S`` over its exception handling (as a logger's last upload may), longer than Lightning's
  watcher waits before killing rank 0 when a launched rank has failed: it must still report;
* ``hang``: rank RANK sleeps for ever at generator step 3, outside any collective, under
  ``GANDDPStrategy(timeout=15 s)``: the others time out in their next collective, and no rank may be
  left running;
* ``sigterm``: after generator step 2, rank 0 computes a metric (its ``all_gather``) while rank RANK sleeps
  for ever instead, under ``GANDDPStrategy(timeout=600 s, termination_grace=3 s)``; each writes
  ``rank<r>.pid`` once there. The test then sends SIGTERM (to rank 0, or to every rank) and expects every
  rank to end within seconds, long before the collective's timeout.

Each rank writes ``OUT_DIR/rank<r>.txt`` with the type and message of the exception that ended it.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

FAULT_STEP = 3
SLOW_REPORT_S = 8


def main(mode: str, failing_rank: int, out_dir: Path) -> None:
    import pytorch_lightning as pl
    import torch
    import torchmetrics
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gan import GANDDPStrategy, VanillaGAN
    from lightning_gan.callbacks.guard import DivergenceGuard

    class Faulty(VanillaGAN):
        def training_step(self, batch, batch_idx):
            if mode == "raise" and self._on_failing_rank_from(FAULT_STEP, exactly=True):
                raise RuntimeError(f"injected fault on rank {self.trainer.global_rank} at step {FAULT_STEP}")
            if mode == "hang" and self._on_failing_rank_from(FAULT_STEP, exactly=True):
                (out_dir / f"rank{self.trainer.global_rank}.pid").write_text(str(os.getpid()))
                time.sleep(3600)
            return super().training_step(batch, batch_idx)

        def generator_loss(self, fake_logits):
            loss = super().generator_loss(fake_logits)
            return loss * float("nan") if mode == "nan" and self._on_failing_rank_from(FAULT_STEP) else loss

        def _on_failing_rank_from(self, step: int, exactly: bool = False) -> bool:
            # global_step counts finished generator steps, so step k is under way while it equals k - 1.
            current = self.trainer.global_step + 1
            return self.trainer.global_rank == failing_rank and (current == step if exactly else current >= step)

    class MetricThenStall(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step != 2:
                return
            rank = trainer.global_rank
            (out_dir / f"rank{rank}.pid").write_text(str(os.getpid()))
            if rank == failing_rank:
                time.sleep(3600)
            metric = torchmetrics.SumMetric().to(pl_module.device)
            metric.update(torch.tensor(1.0))
            metric.compute()  # all_gather: waits for the stalled rank

    class SlowToReport(pl.Callback):
        def on_exception(self, trainer, pl_module, exception):
            if trainer.global_rank == 0:
                time.sleep(SLOW_REPORT_S)

    pl.seed_everything(0, verbose=False)
    gan = Faulty(image_shape=(2,), latent_dim=2, generator_hidden=(16,), discriminator_hidden=(16,),
                 maxout_pieces=1, dropout=0.0, output_activation="identity")
    callbacks = [DivergenceGuard(check_every_n_steps=2, saturation_steps=None), SlowToReport()] if mode == "nan" else []
    strategy = GANDDPStrategy(timeout=timedelta(seconds=15)) if mode == "hang" else "gan_ddp"
    if mode == "sigterm":
        callbacks = [MetricThenStall()]
        strategy = GANDDPStrategy(timeout=timedelta(seconds=600), termination_grace=3)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_steps=20, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=callbacks)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        trainer.fit(gan, DataLoader(TensorDataset(torch.randn(1280, 2)), batch_size=16, shuffle=True))
    except BaseException as error:
        (out_dir / f"rank{rank}.txt").write_text(f"{type(error).__name__}: {error}")
        raise
    finally:
        # Tear the process group down before exit: gloo threads still alive at interpreter
        # shutdown can abort the process ("terminate called without an active exception").
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    (out_dir / f"rank{rank}.txt").write_text(f"finished at step {trainer.global_step}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
