"""GenerativeMetricsCallback (FID, KID, IS, PR) on 2 CPU processes, checked against one process's computation.

Run by tests/callbacks/test_generative_metrics.py in a subprocess (Lightning's "popen" launcher restarts this
script once per rank). Usage: ``python ddp_generative_metrics_script.py OUT.json``. 41 real images shard as
21 + 20 and 33 samples as 17 + 16; after training, rank 0 regenerates every rank's samples (the same seeds
and chunks) and computes all four metrics in one process with synchronisation off, as the reference.
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
    from lightning_gan.callbacks._evaluation import _seeded
    from lightning_gan.callbacks.generative_metrics import GenerativeMetricsCallback
    from lightning_gan.data.tensors import TensorDataModule
    from lightning_gan.metrics import FrechetInceptionDistance
    from lightning_gan.metrics.inception_score import InceptionScore
    from lightning_gan.metrics.kid import KernelInceptionDistance
    from lightning_gan.metrics.precision_recall import PrecisionRecall

    class Report(pl.Callback):
        def on_fit_end(self, trainer, pl_module) -> None:
            report = {"rank": trainer.global_rank, "values": callback.last_values,
                      "logged": {k: float(v) for k, v in trainer.callback_metrics.items() if k in callback.last_values}}
            if trainer.global_rank == 0:
                report["reference"] = reference(pl_module)
            gathered: list = [None] * trainer.world_size
            dist.all_gather_object(gathered, report)
            if trainer.global_rank == 0:
                with open(out_path, "w") as handle:
                    json.dump(gathered, handle)

    def reference(pl_module) -> dict:
        pl_module.eval()  # as in validation, where the callback generated: batch norm on running statistics
        with torch.no_grad():
            # The same chunks as the callback's (shards 0:21 and 21:41 by 10): conv results in float32 depend on
            # the batch they are computed in, by ~1e-7, which a small FID would magnify.
            real = torch.cat([extractor(val[a:b][i : i + 10]) for a, b in ((0, 21), (21, 41)) for i in range(0, b - a, 10)])
            fake = []
            for rank, share in enumerate((17, 16)):
                with _seeded(pl_module.device, 0 + rank):
                    for start in range(0, share, 10):
                        fake.append(extractor(pl_module.generate(min(10, share - start))))
            fake = torch.cat(fake)
        local = dict(sync_on_compute=False)
        fid = FrechetInceptionDistance(16, **local)
        kid = KernelInceptionDistance(subsets=10, subset_size=20, **local)
        isc = InceptionScore(splits=3, **local)
        prc = PrecisionRecall(k=3, **local)
        for metric in (fid, kid, prc):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        isc.update(fake)
        kid_mean, kid_std = kid.compute()
        is_mean, is_std = isc.compute()
        pr = prc.compute()
        return {"val/fid": float(fid.compute()), "val/kid_mean": float(kid_mean), "val/kid_std": float(kid_std),
                "val/is_mean": float(is_mean), "val/is_std": float(is_std), "val/precision": float(pr["precision"]),
                "val/recall": float(pr["recall"])}

    class Spread(DCGAN):
        """An untrained DCGAN's samples barely differ; stretched, every metric has something to measure."""

        def generate(self, n, z=None, labels=None):
            return (super().generate(n, z, labels) * 30.0).tanh()

    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                              nn.Linear(16, 16))
    with torch.no_grad():
        extractor[-1].weight.mul_(30.0)  # logits of O(1) and more: an Inception Score above 1
    callback = GenerativeMetricsCallback(num_samples=33, batch_size=10, feature_extractor=extractor, kid_subsets=10,
                                         kid_subset_size=20, is_splits=3)
    gan = Spread(image_shape=(1, 28, 28), latent_dim=8, features=4)
    with torch.no_grad():  # "real" images from the untrained model itself: precision and recall in (0, 1)
        val = gan.eval().generate(41)
    gan.train()
    data = TensorDataModule(torch.rand(64, 1, 28, 28) * 2 - 1, val=val, batch_size=16)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="gan_ddp", max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[callback, Report()],
    )
    trainer.fit(gan, datamodule=data)
    # Tear the process group down before exit: gloo threads alive at interpreter shutdown can abort it.
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
