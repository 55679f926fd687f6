"""Mode collapse on Stacked MNIST (1,000 modes): the package's DCGAN beside the papers' DCGAN baseline.

Trains a digit classifier on the MNIST digits (its accuracy on held-out digits is reported: the counts are
only as good as it), then the ``DCGAN`` preset on ``StackedMNISTDataModule`` (128,000 stacked 3 x 28 x 28
images), then classifies each channel of 26,000 generated samples and reports the modes covered (out of
1,000) and the reverse KL(p_model || uniform) in nats (lightning_gan.metrics.stacked_mnist), the protocol of
Metz et al. (2017), VEEGAN and PacGAN. The same numbers for 26,000 real stacked images (what a perfect
generator would score with this classifier and sample size) are printed too. A quality measurement, not a
timing.

Full run (PacGAN's setting: batch 64, 50 epochs of 128,000 images = 100,000 generator steps, Adam 2e-4 /
beta1 0.5, latent 100, ``DCGAN`` width 64). Expected time on one H200: about 10-20 minutes, almost all of it
the 100,000 steps (an estimate from the per-step overhead of Lightning's manual optimisation, not yet measured:
no GPU was lent when this script was written):

    python benchmarks/stacked_mnist.py --device cuda --steps 100000 --batch_size 64

CPU smoke run (under 5 minutes on one thread: a narrow DCGAN for 400 steps; its numbers are not comparable
to the papers'):

    python benchmarks/stacked_mnist.py --smoke [--data_dir DIR]

``--data_dir`` is a torchvision root (holding ``MNIST/raw/``), as for ``MNISTDataModule``; the files are
downloaded there when missing. When the folder holds only the test files (``t10k-*``), the digits come from
the 10,000-digit MNIST test split instead of the 60,000 training digits.

The papers' numbers (DCGAN baseline; mean over runs; same metric definitions):

* VEEGAN (Srivastava et al., 2017), Table 2, "DCGAN": 99 modes, KL 3.4 (5 runs, 26,000 samples). Read from
  the table image ``tab.png`` of github.com/akashgit/VEEGAN (the project page, commit 77ec74e).
* PacGAN (Lin et al., 2018), Table 2: "DCGAN [38]" 99.0 modes, KL 3.40 (VEEGAN's number, quoted); "DCGAN (our
  implementation)" 78.9 +- 6.46 modes, KL 4.50 +- 0.127 (10 trials, standard error); PacDCGAN2 1000.0 modes,
  KL 0.06. Read from ``stacked_MNIST_experiments/results/Table2.png`` of github.com/fjxmlzn/PacGAN (commit
  190853e), whose ``VEEGAN_experiment/config.py`` and ``model.py`` give the setting: 128,000 stacked images
  drawn from the 70,000 MNIST train + test digits, 28 x 28, batch 64, 50 epochs, 26,000 evaluation samples,
  and KL(p || uniform over 1,000 modes) with a Keras MNIST CNN as the classifier.

Differences from the papers: their DCGANs are TensorFlow/Theano networks of their own (not this package's
``DCGAN``, whose default width is ``--features 64``), their digits come from train + test together, and
their classifiers differ from ``DigitClassifier``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import pytorch_lightning as pl
import torch

from lightning_gan import DCGAN
from lightning_gan.data import MNISTDataModule, StackedMNISTDataModule, uint8_to_signed_unit
from lightning_gan.metrics.stacked_mnist import StackedMNISTModes, train_digit_classifier

EVAL_SAMPLES = 26_000  # Metz et al. (2017), VEEGAN, PacGAN

#: The papers' DCGAN baseline (and PacGAN's best) on Stacked MNIST; see the module docstring for the sources.
PAPERS = {
    "VEEGAN Table 2: DCGAN": {"modes_covered": 99.0, "reverse_kl": 3.4},
    "PacGAN Table 2: DCGAN [38] (VEEGAN's number)": {"modes_covered": 99.0, "reverse_kl": 3.40},
    "PacGAN Table 2: DCGAN (their implementation, 10 trials +- s.e.)": {
        "modes_covered": 78.9, "modes_covered_se": 6.46, "reverse_kl": 4.50, "reverse_kl_se": 0.127,
    },
    "PacGAN Table 2: PacDCGAN2": {"modes_covered": 1000.0, "reverse_kl": 0.06},
}


def train_split_of(data_dir: str) -> str:
    """"train" unless ``data_dir`` holds the MNIST test files but not the training files (then "test")."""
    probe = MNISTDataModule(data_dir, download=False)
    # The same folder search as MNISTDataModule's setup (torchvision root, MNIST/ or raw/).
    has_train, has_test = probe._find_folder("train") is not None, probe._find_folder("test") is not None
    return "test" if has_test and not has_train else "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=None, help="generator steps (default 100,000; smoke 400)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--data_dir", default="./data", help="torchvision root for MNIST (downloaded when missing)")
    parser.add_argument("--smoke", action="store_true", help="a short CPU run: narrow DCGAN, 400 steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", type=int, default=None, help="DCGAN width (default 64; smoke 16)")
    parser.add_argument("--image_size", type=int, default=28, choices=[28, 32])
    args = parser.parse_args()
    steps = args.steps if args.steps is not None else (400 if args.smoke else 100_000)
    features = args.features if args.features is not None else (16 if args.smoke else 64)
    device = torch.device(args.device)
    start = time.perf_counter()

    pl.seed_everything(args.seed, verbose=False)
    train_split = train_split_of(args.data_dir)
    data = StackedMNISTDataModule(
        args.data_dir, batch_size=args.batch_size, image_size=args.image_size, val_size=0, seed=args.seed,
        train_split=train_split, holdout=0 if train_split == "test" else None,
    )
    data.prepare_data()
    data.setup("fit")
    digits, digit_labels = data.digit_splits["train"]

    classifier, accuracy = train_digit_classifier(digits, digit_labels, seed=args.seed, device=device)
    classifier_seconds = time.perf_counter() - start

    # What a perfect generator would score with this classifier and sample size: 26,000 real stacked images.
    real_metric = StackedMNISTModes(classifier).to(device)
    for chunk in data.splits["train"][0][:EVAL_SAMPLES].split(1000):
        real_metric.update(uint8_to_signed_unit(chunk.to(device)))
    real = {k: v.item() for k, v in real_metric.compute().items()}

    gan = DCGAN(image_shape=data.image_shape, latent_dim=100, features=features)
    train_start = time.perf_counter()
    pl.Trainer(max_steps=steps, accelerator=args.device, devices=1, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0).fit(gan, datamodule=data)
    train_seconds = time.perf_counter() - train_start

    gan = gan.to(device)
    metric = StackedMNISTModes(classifier).to(device)
    eval_start = time.perf_counter()
    for n in [1000] * (EVAL_SAMPLES // 1000) + ([EVAL_SAMPLES % 1000] if EVAL_SAMPLES % 1000 else []):
        metric.update(gan.generate(n))
    model = {k: v.item() for k, v in metric.compute().items()}
    eval_seconds = time.perf_counter() - eval_start
    total = time.perf_counter() - start

    source = f"MNIST {train_split} split ({len(digits):,} digits)"
    print(f"digit classifier: {accuracy:.2%} on held-out digits ({classifier_seconds:.0f} s incl. loading the data)")
    print(f"real stacked images ({real['num_samples']:,.0f}): {real['modes_covered']:.0f} modes, "
          f"KL {real['reverse_kl']:.3f}")
    print(f"DCGAN (features {features}, {steps:,} steps, batch {args.batch_size}, {train_seconds:.0f} s, digits from "
          f"{source}): {model['modes_covered']:.0f} modes of 1000, KL {model['reverse_kl']:.3f} "
          f"on {model['num_samples']:,.0f} samples")
    for name, numbers in PAPERS.items():
        print(f"  {name}: {numbers['modes_covered']:g} modes, KL {numbers['reverse_kl']:g}")
    if args.smoke:
        print(f"smoke run: {total:.0f} s in all; too short and too narrow to compare with the papers")
    print(json.dumps({
        "benchmark": "stacked_mnist", "device": args.device, "smoke": args.smoke, "seed": args.seed,
        "steps": steps, "batch_size": args.batch_size, "features": features, "image_size": args.image_size,
        "train_split": train_split, "digits": len(digits), "classifier_accuracy": accuracy,
        "eval_samples": int(model["num_samples"]), "modes_covered": int(model["modes_covered"]),
        "reverse_kl": model["reverse_kl"] if math.isfinite(model["reverse_kl"]) else None,
        "real_modes_covered": int(real["modes_covered"]), "real_reverse_kl": real["reverse_kl"],
        "papers": PAPERS, "classifier_s": classifier_seconds, "train_s": train_seconds, "eval_s": eval_seconds,
        "total_s": total,
    }))


if __name__ == "__main__":
    main()
