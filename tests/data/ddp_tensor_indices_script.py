"""Two CPU ranks read a TensorDataModule for two epochs and report which samples each rank saw.

Run by tests/data/test_tensors.py in a subprocess (Lightning's "popen" launcher restarts this script per
rank). Usage: ``python ddp_tensor_indices_script.py OUT.json``.
"""

from __future__ import annotations

import json
import sys


def main(out_path: str) -> None:
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist

    from lightning_gan.data import TensorDataModule

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.seen: dict[int, list[int]] = {}

        def training_step(self, batch, batch_idx):
            samples, indices = batch
            self.seen.setdefault(self.current_epoch, []).extend(indices.tolist())
            return self.layer(samples).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

        def on_fit_end(self) -> None:
            gathered: list = [None] * self.trainer.world_size
            dist.all_gather_object(gathered, {"rank": self.global_rank, "seen": self.seen})
            if self.global_rank == 0:
                with open(out_path, "w") as handle:
                    json.dump(gathered, handle)

    n = 40
    data = TensorDataModule((torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n)), batch_size=5)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="gan_ddp", max_epochs=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(Recorder(), datamodule=data)
    # Tear the process group down before exit: gloo threads still alive at interpreter
    # shutdown can abort the process ("terminate called without an active exception").
    if __import__("torch").distributed.is_initialized():
        __import__("torch").distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
