"""Training-step throughput: lightning_gan's GAN through Trainer.fit vs a hand-written PyTorch loop.

Both sides run the same maths on the same networks, optimizers and in-memory data: per batch
``n_critic`` discriminator steps (fake samples detached; the case's loss, and the WGAN-GP penalty where
the case has one) and one generator step with the discriminator frozen. The package runs with its
default logging on, in three ways: eager (the default), eager with ``steps_per_batch`` (Lightning's
per-batch cost paid once per that many steps), and compiled (``compile=True``; inductor, measured after
its warm-up). Prints samples/s of the plain loop and each column's ratio to it (goal for the eager
columns: >= 0.95), and one JSON line per case.

    python benchmarks/step_overhead.py                  # CPU, all cases (~20 min on one core)
    python benchmarks/step_overhead.py --cases toy_mlp_2d_b256 --no_compile
    python benchmarks/step_overhead.py --device cuda --precision bf16-mixed --capture
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from lightning_gan import DCGAN, SNGAN, WGANGP, VanillaGAN
from lightning_gan.data import TensorDataModule

GOAL = 0.95


@dataclass
class Case:
    name: str
    build: Callable[..., pl.LightningModule]
    data_shape: tuple[int, ...]
    batch_size: int
    steps: int
    options: dict = field(default_factory=dict)


TOY = dict(image_shape=(2,), latent_dim=2, generator_hidden=(128, 128), discriminator_hidden=(128, 128), maxout_pieces=1,
           dropout=0.0, output_activation="identity")
CASES = [
    Case("toy_mlp_2d_b256", lambda **kw: VanillaGAN(**TOY, **kw), (2,), 256, 600),
    Case("dcgan_28_b64", lambda **kw: DCGAN(image_shape=(1, 28, 28), latent_dim=100, features=32, **kw), (1, 28, 28), 64, 40),
    Case("dcgan_28_b256", lambda **kw: DCGAN(image_shape=(1, 28, 28), latent_dim=100, features=32, **kw), (1, 28, 28), 256, 15),
    Case("dcgan_64_b128", lambda **kw: DCGAN(image_shape=(3, 64, 64), latent_dim=100, features=32, **kw), (3, 64, 64), 128, 10),
    Case("dcgan_64_w8_b64", lambda **kw: DCGAN(image_shape=(3, 64, 64), latent_dim=100, features=8, **kw), (3, 64, 64), 64, 30),
    Case("wgan_gp_28_ncritic5_b64", lambda **kw: WGANGP(image_shape=(1, 28, 28), latent_dim=128, features=16, **kw),
         (1, 28, 28), 64, 15),
    Case("sngan_32_b64", lambda **kw: SNGAN(image_shape=(3, 32, 32), generator_features=32, discriminator_features=32,
                                            n_critic=1, **kw), (3, 32, 32), 64, 20),
    Case("goodfellow_mlp_mnist_b100", lambda **kw: VanillaGAN(image_shape=(1, 28, 28), **kw), (1, 28, 28), 100, 80),
]

# The losses of the cases, written out as a plain loop would (the package's are in lightning_gan.losses).
D_LOSSES = {
    "non_saturating": lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
    "wasserstein": lambda real, fake: fake.mean() - real.mean(),
    "hinge": lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
}
G_LOSSES = {
    "non_saturating": lambda fake: F.softplus(-fake).mean(),
    "wasserstein": lambda fake: -fake.mean(),
    "hinge": lambda fake: -fake.mean(),
}


def gradient_penalty(discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    epsilon = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (epsilon * real + (1 - epsilon) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def plain_loop(gan: pl.LightningModule, data: torch.Tensor, batch_size: int, steps: int, device: torch.device,
               autocast_dtype: torch.dtype | None) -> float:
    """Seconds per step of a hand-written loop over the same networks; returns the median per-step time."""
    generator, discriminator = gan.generator.to(device), gan.discriminator.to(device)
    hp = gan.hparams
    latent_dim, betas, n_critic, gp_weight = hp.latent_dim, tuple(hp.betas), hp.n_critic, hp.gp_weight
    d_loss, g_loss = D_LOSSES[hp.loss], G_LOSSES[hp.loss]
    opt_g = torch.optim.Adam(generator.parameters(), lr=hp.lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=hp.lr_d, betas=betas)
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
        for _ in range(n_critic):
            with autocast():
                with torch.no_grad():
                    fake = generator(torch.randn(batch_size, latent_dim, device=device))
                loss_d = d_loss(discriminator(real), discriminator(fake))
                if gp_weight:
                    loss_d = loss_d + gp_weight * gradient_penalty(discriminator, real, fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        discriminator.requires_grad_(False)
        with autocast():
            loss_g = g_loss(discriminator(generator(torch.randn(batch_size, latent_dim, device=device))))
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
    """Median seconds per generator step of ``gan`` through ``Trainer.fit``; the first fifth (warm-up) is left out."""
    k = gan.hparams.steps_per_batch
    batches = max(-(-steps // k), 6)
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, max_steps=batches * k, precision=precision, log_every_n_steps=50 * k,
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
    parser.add_argument("--steps_per_batch", type=int, default=10, help="for the amortised column")
    parser.add_argument("--no_compile", action="store_true", help="leave out the compiled column")
    parser.add_argument("--capture", action="store_true", help="add compile={'mode': 'reduce-overhead'} (CUDA graphs)")
    args = parser.parse_args()
    device = torch.device(args.device)
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    columns = {"eager": {}, f"steps_per_batch={args.steps_per_batch}": {"steps_per_batch": args.steps_per_batch}}
    if not args.no_compile:
        columns["compiled"] = {"compile": True}
    if args.capture:
        columns["captured"] = {"compile": {"mode": "reduce-overhead"}}
    pl.seed_everything(0, verbose=False)
    for case in (c for c in CASES if c.name in args.cases):
        data = torch.rand(case.batch_size * 20, *case.data_shape) * 2 - 1
        plain: list[float] = []
        package: dict[str, list[float]] = {name: [] for name in columns}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every side alike
            plain.append(plain_loop(case.build(), data, case.batch_size, case.steps, device, autocast_dtype))
            for name, options in columns.items():
                package[name].append(package_loop(case.build(**options), data, case.batch_size, case.steps,
                                                  args.device, args.precision, args.log_dir))
        plain_rate = case.batch_size / statistics.median(plain)
        rates = {name: case.batch_size / statistics.median(times) for name, times in package.items()}
        ratios = {name: rate / plain_rate for name, rate in rates.items()}
        # The goal is for the eager paths (plain or with steps_per_batch): compiling is opt-in.
        eager_met = max(ratio for name, ratio in ratios.items() if name not in ("compiled", "captured")) >= GOAL
        print(f"{case.name:26s} plain {plain_rate:9.0f}/s  " + "  ".join(f"{n} {r:.3f}x" for n, r in ratios.items())
              + f"  (best eager path >= {GOAL}: {'MET' if eager_met else 'NOT MET'})", flush=True)
        print(json.dumps({"benchmark": "step_overhead", "case": case.name, "device": args.device,
                          "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                          "precision": args.precision, "plain_samples_per_s": plain_rate,
                          "package_samples_per_s": rates, "ratio": ratios, "goal": GOAL}), flush=True)


if __name__ == "__main__":
    main()
