"""Trains a tiny DCGAN with FIDCallback on 2 CPU processes; rank 0 writes what each rank saw.

Run by tests/callbacks/test_fid_callback.py in a subprocess (Lightning's "popen" launcher restarts this
script once per rank). Usage: ``python ddp_fid_callback_script.py OUT.json``. ``num_samples=33`` splits
17 + 16, so the ranks generate and embed different numbers of samples.
"""

from __future__ import annotations

import json
import sys


def main(out_path: str) -> None:
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist
    from torch import nn

    from lightning_gan import DCGAN
    from lightning_gan.callbacks.fid import FIDCallback
    from lightning_gan.data.tensors import TensorDataModule

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
            self.sizes: list[int] = []

        def forward(self, x):
            self.sizes.append(int(x.shape[0]))
            return self.net(x)

    class Report(pl.Callback):
        def on_fit_end(self, trainer, pl_module) -> None:
            report = {
                "rank": trainer.global_rank,
                "fid": fid.last_value,
                "logged": float(trainer.callback_metrics["val/fid"]),
                "sizes": extractor.sizes,
                "real_count": fid._metrics["fid"].real_statistics()[2],
            }
            # The one-process statistics of all 41 real images, for the test to compare with.
            with torch.no_grad():
                features = extractor.net(val).double()
            mean, cov, _ = fid._metrics["fid"].real_statistics()
            report["mean_error"] = float((mean - features.mean(0)).abs().max())
            report["cov_error"] = float((cov - torch.cov(features.T)).abs().max())
            gathered: list = [None] * trainer.world_size
            dist.all_gather_object(gathered, report)
            if trainer.global_rank == 0:
                with open(out_path, "w") as handle:
                    json.dump(gathered, handle)

    torch.manual_seed(0)
    extractor = Recorder()
    fid = FIDCallback(num_samples=33, batch_size=10, feature_extractor=extractor)
    val = torch.rand(41, 1, 28, 28) * 2 - 1  # odd: a padded sampler would repeat one image
    data = TensorDataModule(torch.rand(64, 1, 28, 28) * 2 - 1, val=val, batch_size=16)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="gan_ddp",
        max_epochs=1,
        limit_train_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[fid, Report()],
    )
    trainer.fit(DCGAN(image_shape=(1, 28, 28), latent_dim=8, features=4), datamodule=data)
    # Tear the process group down before exit: gloo threads still alive at interpreter
    # shutdown can abort the process ("terminate called without an active exception").
    if __import__("torch").distributed.is_initialized():
        __import__("torch").distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
