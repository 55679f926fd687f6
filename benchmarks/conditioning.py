"""How quickly a conditional generator obeys its label: label embedding vs conditional batch norm, on MNIST.

Trains a small CNN classifier on the training images, then a ConditionalGAN (DCGAN nets) with the chosen
conditionings for ``--steps`` generator steps, and reports the fraction of 1,000 samples drawn for given
digits (100 per digit) that the classifier reads as the digit asked for. Chance is 10%; the classifier's
own accuracy on held-out digits is printed beside it as the ceiling. Not a timing: a quality measurement,
kept here so the numbers in docs/conditional.md can be rerun.

    python benchmarks/conditioning.py --generator_conditioning embedding --steps 1500
    python benchmarks/conditioning.py --generator_conditioning batch_norm --steps 4000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_gan import ConditionalGAN
from lightning_gan.data import MNISTDataModule

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "MNIST"


def gather(loader) -> tuple[Tensor, Tensor]:
    images, labels = zip(*loader)
    return torch.cat(images).float(), torch.cat(labels)


def train_classifier(images: Tensor, labels: Tensor, epochs: int = 3) -> nn.Module:
    classifier = nn.Sequential(
        nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 49, 10)
    )
    optimizer = torch.optim.Adam(classifier.parameters(), 1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(images)).split(128):
            loss = F.cross_entropy(classifier(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return classifier.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA))
    parser.add_argument("--train_split", default="test", help="'test' trains on the 10k test files (8k after holdout)")
    parser.add_argument("--generator_conditioning", default="embedding", choices=["embedding", "batch_norm"])
    parser.add_argument("--discriminator_conditioning", default="projection", choices=["projection", "concat"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()

    pl.seed_everything(args.seed, verbose=False)
    data = MNISTDataModule(args.data_dir, train_split=args.train_split, holdout=2000, val_size=0, batch_size=64,
                           download=False)
    data.setup("fit")
    data.setup("test")
    classifier = train_classifier(*gather(data.train_dataloader()))
    held_out, held_out_labels = gather(data.test_dataloader())
    with torch.no_grad():
        ceiling = (classifier(held_out).argmax(1) == held_out_labels).float().mean().item()

    gan = ConditionalGAN(num_classes=10, image_shape=(1, 28, 28), latent_dim=64, features=32,
                         generator_conditioning=args.generator_conditioning,
                         discriminator_conditioning=args.discriminator_conditioning)
    start = time.perf_counter()
    pl.Trainer(max_steps=args.steps, accelerator=args.device, devices=1, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0).fit(gan, datamodule=data)
    seconds = time.perf_counter() - start
    gan.eval()
    asked = torch.arange(10).repeat(100)
    with torch.no_grad():
        read = classifier(gan.generate(len(asked), labels=asked).float().cpu()).argmax(1)
    obeyed = (read == asked).float().mean().item()
    print(f"{args.generator_conditioning}/{args.discriminator_conditioning}, {args.steps} steps ({seconds:.0f} s): "
          f"{obeyed:.1%} of samples read as the digit asked for (classifier on held-out digits: {ceiling:.1%})")
    print(json.dumps({"benchmark": "conditioning", **vars(args), "obeyed": obeyed, "classifier_accuracy": ceiling,
                      "train_seconds": seconds}))


if __name__ == "__main__":
    main()
