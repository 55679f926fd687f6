"""Train a GAN on a ring of 8 Gaussians and report how many modes it covers. No download needed.

    python examples/toy_gan.py                                  # one CPU process, a few minutes
    python examples/toy_gan.py --accelerator cpu --devices 2    # two processes with the GAN-aware DDP
    python examples/toy_gan.py --model ConditionalGAN           # one class per mode: samples of class k on mode k
    python examples/toy_gan.py --model ACGAN                    # the same, the discriminator predicting the class

Mode collapse, the classic GAN failure, shows here as a ring with missing modes. The conditional model is told
which mode to draw; its report is, per class, the fraction of samples within 3 std of that class's own mode.
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch

from lightning_gan import ACGAN, ConditionalGAN, VanillaGAN
from lightning_gan.data import ToyDataModule


def mode_report(samples: torch.Tensor, data: ToyDataModule) -> tuple[float, int]:
    """Fraction of samples within 3 std of a mode, and how many modes get at least 1% of the samples."""
    means, stds = data.distribution.means.float(), data.distribution.stds.float()
    distances = torch.cdist(samples, means)
    nearest_distance, nearest = distances.min(dim=1)
    close = nearest_distance < 3 * stds[nearest]
    counts = torch.bincount(nearest[close], minlength=len(means))
    return close.float().mean().item(), int((counts >= 0.01 * len(samples)).sum())


def per_class_report(gan: ConditionalGAN | ACGAN, data: ToyDataModule, per_class: int = 1000) -> list[float]:
    """For each class k, the fraction of samples drawn for k within 3 std of mixture component k."""
    means, stds = data.distribution.means.float(), data.distribution.stds.float()
    fractions = []
    for k in range(data.num_classes):
        samples = gan.generate(per_class, labels=torch.full((per_class,), k)).float().cpu()
        fractions.append(((samples - means[k]).norm(dim=1) < 3 * stds[k]).float().mean().item())
    return fractions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max_steps", type=int, default=3000, help="generator steps")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=("VanillaGAN", "ConditionalGAN", "ACGAN"), default="VanillaGAN")
    args = parser.parse_args()

    pl.seed_everything(args.seed)
    data = ToyDataModule("ring8", n_samples=50_000, batch_size=args.batch_size, seed=args.seed)
    shared = dict(image_shape=(2,), latent_dim=2, generator_hidden=(128, 128), discriminator_hidden=(128, 128),
                  output_activation="identity", lr_g=1e-3, lr_d=1e-3, ema_decay=0.99)
    if args.model == "ConditionalGAN":
        # The mixture components are the classes; MLP nets, projection discriminator, spectral norm, hinge loss.
        gan = ConditionalGAN(num_classes=data.num_classes, architecture="mlp", **shared)
    elif args.model == "ACGAN":  # an auxiliary classifier on the discriminator instead of a label input
        gan = ACGAN(num_classes=data.num_classes, architecture="mlp", **shared)
    else:
        gan = VanillaGAN(maxout_pieces=1, dropout=0.0, **shared)
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    multi_process = isinstance(devices, int) and devices > 1
    trainer = pl.Trainer(
        max_steps=args.max_steps,
        accelerator=args.accelerator,
        devices=devices,
        strategy="gan_ddp" if multi_process else "auto",
        logger=pl.loggers.CSVLogger("lightning_logs", name="toy_gan"),
        log_every_n_steps=100,
        enable_checkpointing=False,
    )
    trainer.fit(gan, datamodule=data)
    if trainer.is_global_zero:
        gan.eval()
        quality, covered = mode_report(gan.generate(10_000).float().cpu(), data)
        print(f"samples within 3 std of a mode: {quality:.1%}; modes covered: {covered}/{data.num_classes}")
        if gan.num_classes is not None:
            fractions = per_class_report(gan, data)
            print("samples of class k within 3 std of mode k: " + " ".join(f"{f:.0%}" for f in fractions))


if __name__ == "__main__":
    main()
