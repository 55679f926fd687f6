"""Training-step throughput: lightning_gan's GAN through Trainer.fit vs a hand-written PyTorch loop.

Both sides run the same maths on the same networks, optimizers and in-memory data: per batch one
discriminator step (non-saturating loss, fake samples detached) and one generator step with the
discriminator frozen. The package runs with its default logging on. Prints samples/s for each side and
the ratio (goal: >= 0.95 in every case), and one JSON line per case.

    python benchmarks/step_overhead.py                  # CPU, all cases
    python benchmarks/step_overhead.py --device cuda --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from lightning_gan import DCGAN, VanillaGAN
from lightning_gan.data import TensorDataModule

GOAL = 0.95


@dataclass
class Case:
    name: str
    build: Callable[[], pl.LightningModule]
    data_shape: tuple[int, ...]
    batch_size: int
    steps: int


CASES = [
    Case(
        "toy_mlp_2d_b256",
        lambda **kw: VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(128, 128), discriminator_hidden=(128, 128),
                           maxout_pieces=1, dropout=0.0, output_activation="identity", **kw),
        (2,), 256, 600,
    ),
    Case("dcgan_28_b64", lambda **kw: DCGAN(image_shape=(1, 28, 28), latent_dim=100, features=32, **kw), (1, 28, 28), 64, 40),
    Case("goodfellow_mlp_mnist_b100", lambda **kw: VanillaGAN(image_shape=(1, 28, 28), **kw), (1, 28, 28), 100, 80),
]


def plain_loop(gan: pl.LightningModule, data: torch.Tensor, batch_size: int, steps: int, device: torch.device,
               autocast_dtype: torch.dtype | None) -> float:
    """Seconds per step of a hand-written loop over the same networks; returns the median per-step time."""
    generator, discriminator = gan.generator.to(device), gan.discriminator.to(device)
    latent_dim, betas = gan.hparams.latent_dim, tuple(gan.hparams.betas)
    opt_g = torch.optim.Adam(generator.parameters(), lr=gan.hparams.lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=gan.hparams.lr_d, betas=betas)
    data = data.to(device)
    n_batches = len(data) // batch_size

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    times = []
    order = torch.randperm(len(data), device=device)
    for step in range(steps):
        start = time.perf_counter()
        b = step % n_batches
        if b == 0:
            order = torch.randperm(len(data), device=device)
        real = data[order[b * batch_size:(b + 1) * batch_size]]
        with autocast():
            with torch.no_grad():
                fake = generator(torch.randn(batch_size, latent_dim, device=device))
            loss_d = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        discriminator.requires_grad_(False)
        with autocast():
            loss_g = F.softplus(-discriminator(generator(torch.randn(batch_size, latent_dim, device=device)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[len(times) // 5:])


class StepTimer(pl.Callback):
    """Wall time between consecutive batch starts: the step plus everything Lightning does around it."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    @property
    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]


def package_loop(gan: pl.LightningModule, data: torch.Tensor, batch_size: int, steps: int, accelerator: str,
                 precision: str, log_dir: str) -> float:
    k = gan.hparams.steps_per_batch
    steps = -(-steps // k) * k
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, max_steps=steps, precision=precision,
        logger=pl.loggers.CSVLogger(log_dir), enable_progress_bar=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[timer],
    )
    trainer.fit(gan, datamodule=TensorDataModule(data, batch_size=batch_size * k, on_accelerator=True))
    return statistics.median(timer.times[len(timer.times) // 5:]) / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES])
    parser.add_argument("--log_dir", default="/tmp/lightning_gan_bench")
    parser.add_argument("--steps_per_batch", type=int, default=1)
    args = parser.parse_args()
    device = torch.device(args.device)
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    pl.seed_everything(0, verbose=False)
    for case in (c for c in CASES if c.name in args.cases):
        data = torch.rand(case.batch_size * 20, *case.data_shape) * 2 - 1
        plain, package = [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both sides alike
            plain.append(plain_loop(case.build(), data, case.batch_size, case.steps, device, autocast_dtype))
            package.append(package_loop(case.build(steps_per_batch=args.steps_per_batch), data, case.batch_size, case.steps, args.device, args.precision,
                                        args.log_dir))
        plain_rate = case.batch_size / statistics.median(plain)
        package_rate = case.batch_size / statistics.median(package)
        ratio = package_rate / plain_rate
        print(f"{case.name:28s} plain {plain_rate:10.0f} samples/s  package {package_rate:10.0f} samples/s  "
              f"ratio {ratio:.3f}  (goal >= {GOAL})  {'MET' if ratio >= GOAL else 'NOT MET'}")
        print(json.dumps({"benchmark": "step_overhead", "case": case.name, "device": args.device,
                          "precision": args.precision, "plain_samples_per_s": plain_rate,
                          "package_samples_per_s": package_rate, "ratio": ratio, "goal": GOAL}))


if __name__ == "__main__":
    main()
