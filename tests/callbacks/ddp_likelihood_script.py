"""ToyLikelihoodCallback under 2 CPU processes (strategy="gan_ddp"): each rank reports its centres and results.

Run by tests/callbacks/test_likelihood.py in a subprocess: Lightning's launcher restarts this script once
per rank. Usage: ``python ddp_likelihood_script.py OUT.json``; rank 0 writes every rank's report.
"""

from __future__ import annotations

import json
import sys


def main(out_path: str) -> None:
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist

    from lightning_gan import VanillaGAN
    from lightning_gan.callbacks.ais import AISLikelihoodCallback, differentiable_generator
    from lightning_gan.callbacks.likelihood import ToyLikelihoodCallback
    from lightning_gan.metrics import AISLogLikelihood
    from lightning_gan.data.toy import ToyDataModule

    class Recording(ToyLikelihoodCallback):
        def _draw_centres(self, trainer, pl_module):
            local, centres = super()._draw_centres(trainer, pl_module)
            self.local, self.centres = local, centres
            return local, centres

    class Report(pl.Callback):
        def __init__(self, toy: Recording) -> None:
            self.toy = toy

        def on_fit_end(self, trainer, pl_module) -> None:
            val = self.toy.results["val"]
            points = torch.cat([b[0] for b in data.val_dataloader()])
            # What one process gets from all 63 points in one batch (no sync: this rank alone).
            generator, latent_dim = differentiable_generator(pl_module)
            alone = AISLogLikelihood(latent_dim=latent_dim, generator=generator, sync_on_compute=False, **AIS_OPTIONS)
            alone.update(points, point_ids=torch.arange(len(points)))
            report = {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "local": len(self.toy.local),
                "centres": self.toy.centres.double().tolist(),
                "sigmas": val["sigmas"].tolist(),
                "log_likelihood": val["log_likelihood"].tolist(),
                "stderr": val["stderr"].tolist(),
                "logged": {k: v.item() for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
                "val": points.double().tolist(),
                "ais_alone": alone.compute()["best_log_likelihood"].item(),
                "ais_count": ais.results["val"]["num_points"].item(),
            }
            gathered: list = [None] * trainer.world_size
            dist.all_gather_object(gathered, report)
            if trainer.global_rank == 0:
                with open(out_path, "w") as handle:
                    json.dump(gathered, handle)

    # Same seed on both ranks on purpose: the callback must still draw different samples per rank.
    torch.manual_seed(0)
    # 63 validation points: a padded DistributedSampler would score one of them twice.
    data = ToyDataModule("ring8", n_samples=64, n_val=63, n_test=0, batch_size=16)
    gan = VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,),
                     maxout_pieces=1, dropout=0.0, output_activation="identity")
    # mode_coverage_samples = num_samples: mode coverage is scored on exactly the (recorded) Parzen samples.
    toy = Recording(num_samples=101, batch_size=20, chunk_size=16, mode_coverage_samples=101)
    # AIS on all 63 validation points: each rank scores a block, seeded by point index.
    AIS_OPTIONS = dict(sigmas=[0.1, 0.3], num_steps=6, num_chains=2, leapfrog_steps=3, value_range=None)
    ais = AISLikelihoodCallback(num_points=100, bdmc_points=3, batch_size=10, **AIS_OPTIONS)
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
        callbacks=[toy, ais, Report(toy)],
    )
    trainer.fit(gan, datamodule=data)
    # Tear the process group down before exit: gloo threads still alive at interpreter
    # shutdown can abort the process ("terminate called without an active exception").
    if __import__("torch").distributed.is_initialized():
        __import__("torch").distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
