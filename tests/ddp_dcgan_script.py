"""Trains DCGAN for a few generator steps on 2 CPU processes; each rank reports a digest of its weights.

Run by tests/test_strategies.py in a subprocess: Lightning's "popen" launcher restarts this script once
per rank, which it could not do for a pytest process. Usage: ``python ddp_dcgan_script.py OUT.json [steps]``.
"""

from __future__ import annotations

import hashlib
import json
import sys


def main(out_path: str, steps: int, report_latents: bool = False, overlap: bool = False) -> None:
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gan import DCGAN, GANDDPStrategy

    class Report(pl.Callback):
        def __init__(self) -> None:
            self.d_steps = 0
            self.initial: dict[str, str] = {}

        def on_fit_start(self, trainer: pl.Trainer, pl_module: DCGAN) -> None:
            self.initial = _digests(pl_module)

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            if optimizer.param_groups[0]["params"][0] is next(pl_module.discriminator.parameters()):
                self.d_steps += 1

        def on_train_end(self, trainer: pl.Trainer, pl_module: DCGAN) -> None:
            # Read before the strategy's teardown removes its averagers.
            self.overlap = [(a.num_buckets, a.sent_during_backward) for a in trainer.strategy._averagers.values()]

        def on_fit_end(self, trainer: pl.Trainer, pl_module: DCGAN) -> None:
            report = {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "global_step": trainer.global_step,
                "d_steps": self.d_steps,
                "initial": self.initial,
                "final": _digests(pl_module),
                # (buckets, buckets sent during a backward) per network, under overlap_communication
                "overlap": self.overlap,
            }
            gathered: list = [None] * trainer.world_size
            dist.all_gather_object(gathered, report)
            if trainer.global_rank == 0:
                with open(out_path, "w") as handle:
                    json.dump(gathered, handle)

    if report_latents:
        _report_latents(out_path)
        return

    # Different seeds per rank on purpose: the strategy must broadcast rank 0's initial weights, and
    # the ranks see different data shards, so equal final weights need averaged gradients.
    torch.manual_seed(1234 + int(__import__("os").environ.get("LOCAL_RANK", "0")))
    images = torch.rand(128, 1, 28, 28) * 2 - 1
    loader = DataLoader(TensorDataset(images), batch_size=8, shuffle=True)
    gan = DCGAN(image_shape=(1, 28, 28), latent_dim=16, features=8, ema_decay=0.9)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        # 10 kB buckets: several per network, so that buckets are sent while the backward runs.
        strategy=GANDDPStrategy(overlap_communication=True, bucket_cap_mb=0.01) if overlap else "gan_ddp",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Report()],
    )
    trainer.fit(gan, loader)
    # Tear the process group down before exit: gloo threads still alive at interpreter
    # shutdown can abort the process ("terminate called without an active exception").
    if __import__("torch").distributed.is_initialized():
        __import__("torch").distributed.destroy_process_group()


def _report_latents(out_path: str) -> None:
    """Seeds every rank alike, as users do, and reports the first latent each rank draws in training."""
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gan import VanillaGAN

    class FirstLatent(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == 0:
                latent = pl_module.sample_latent(1).flatten().tolist()
                gathered: list = [None] * trainer.world_size
                dist.all_gather_object(gathered, {"rank": trainer.global_rank, "latent": latent})
                if trainer.global_rank == 0:
                    with open(out_path, "w") as handle:
                        json.dump(gathered, handle)

    pl.seed_everything(7)
    gan = VanillaGAN(image_shape=(2,), latent_dim=4, generator_hidden=(8,), discriminator_hidden=(8,),
                     maxout_pieces=1, dropout=0.0, output_activation="identity")
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="gan_ddp", max_steps=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[FirstLatent()])
    trainer.fit(gan, DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=8))
    # Tear the process group down before exit: gloo threads still alive at interpreter
    # shutdown can abort the process ("terminate called without an active exception").
    if __import__("torch").distributed.is_initialized():
        __import__("torch").distributed.destroy_process_group()


def _digests(module) -> dict[str, str]:
    digests = {}
    for name in ("generator", "discriminator", "generator_ema"):
        hasher = hashlib.sha256()
        for tensor in getattr(module, name).parameters():
            hasher.update(tensor.detach().cpu().numpy().tobytes())
        digests[name] = hasher.hexdigest()
    return digests


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10, "--latents" in sys.argv, "--overlap" in sys.argv)
