"""Trains SNGAN (with SAGAN self-attention) or ConditionalGAN for a few generator steps on 2 CPU processes; each rank reports its weights.

Run by tests/modules/test_sngan.py and test_conditional.py in a subprocess (Lightning's "popen" launcher
restarts this script once per rank). Usage: ``python ddp_presets_script.py OUT.json sngan|conditional [steps]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def main(out_path: str, model: str, steps: int) -> None:
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gan import SNGAN, ConditionalGAN

    class RecordingSNGAN(SNGAN):
        """Records which real samples (by their first pixel, unique in random data) each critic step sees."""

        seen: list = []

        def discriminator_step(self, real, optimizer, labels=None):
            self.seen.append(real[:, 0, 0, 0].tolist())
            return super().discriminator_step(real, optimizer)

    class Report(pl.Callback):
        def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            pl_module.discriminator.eval()  # reading an SN weight in training mode would run a power iteration
            sigmas = [
                float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
                for m in pl_module.discriminator.modules()
                if hasattr(m, "parametrizations")
            ]
            report = {
                "rank": trainer.global_rank,
                "global_step": trainer.global_step,
                "digests": _digests(pl_module),
                "sigmas": sigmas,
                # Attention gammas start at 0 (an identity block); trained, they show the block is in use.
                "gammas": [float(m.gamma) for m in pl_module.modules() if type(m).__name__ == "SelfAttention2d"],
                "critic_batches": getattr(pl_module, "seen", []),
            }
            gathered: list = [None] * trainer.world_size
            dist.all_gather_object(gathered, report)
            if trainer.global_rank == 0:
                with open(out_path, "w") as handle:
                    json.dump(gathered, handle)

    # Different seeds per rank on purpose: equal final weights need the strategy's broadcast and averaging.
    torch.manual_seed(99 + int(os.environ.get("LOCAL_RANK", "0")))
    if model == "sngan":  # n_critic=5 on fresh micro-batches: each rank's batch of 10 is 5 micro-batches of 2
        images, batch_size = torch.rand(80, 3, 32, 32) * 2 - 1, 10
        # SAGAN-style: a self-attention block at 16x16 in both ResNets.
        gan = RecordingSNGAN(image_shape=(3, 32, 32), latent_dim=16, generator_features=8, discriminator_features=8,
                             ema_decay=0.9, attention_resolution=16)
    else:
        images, batch_size = torch.rand(64, 1, 28, 28) * 2 - 1, 8
        gan = ConditionalGAN(num_classes=4, image_shape=(1, 28, 28), latent_dim=8, features=4, ema_decay=0.9)
    labels = torch.arange(len(images)) % 4
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="gan_ddp",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Report()],
    )
    trainer.fit(gan, DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True))
    # Gloo threads alive at interpreter shutdown can abort the process; tear the group down first.
    if dist.is_initialized():
        dist.destroy_process_group()


def _digests(module) -> dict[str, str]:
    digests = {}
    for name in ("generator", "discriminator", "generator_ema"):
        hasher = hashlib.sha256()
        for tensor in getattr(module, name).parameters():
            hasher.update(tensor.detach().cpu().numpy().tobytes())
        digests[name] = hasher.hexdigest()
    return digests


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 4)
