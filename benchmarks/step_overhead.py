"""Training-step throughput: lightning_gan's GAN through Trainer.fit vs a hand-written PyTorch loop.

Both sides run the same maths on the same networks, optimizers and in-memory data: per generator step
``n_critic`` discriminator steps (fake samples detached; the case's loss, and the WGAN-GP penalty where
the case has one; each on its own real batch, as the presets' ``critic_data="fresh"`` does) and one
generator step with the discriminator frozen. The two sides run interleaved, step by step, in one
process (see ``Interleaved``). The package runs with its
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


class PlainLoop:
    """A hand-written loop over a second copy of the case's networks: the same maths, no framework."""

    def __init__(self, gan: pl.LightningModule, data: torch.Tensor, batch_size: int, device: torch.device,
                 autocast_dtype: torch.dtype | None) -> None:
        self.generator, self.discriminator = gan.generator.to(device), gan.discriminator.to(device)
        hp = gan.hparams
        self.latent_dim, self.n_critic, self.gp_weight = hp.latent_dim, hp.n_critic, hp.gp_weight
        self.d_loss, self.g_loss = D_LOSSES[hp.loss], G_LOSSES[hp.loss]
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=tuple(hp.betas))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))
        self.data, self.batch_size, self.device, self.autocast_dtype = data.to(device), batch_size, device, autocast_dtype
        self.n_batches, self.batch = len(data) // batch_size, 0
        self.order = torch.randperm(len(data), device=device)
        self.fresh = hp.critic_data == "fresh"  # each critic step on its own real batch, as the package does

    def _next_real(self) -> torch.Tensor:
        if self.batch == self.n_batches:
            self.batch, self.order = 0, torch.randperm(len(self.data), device=self.device)
        b, size = self.batch, self.batch_size
        self.batch += 1
        return self.data[self.order[b * size:(b + 1) * size]]

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def step(self) -> None:
        size = self.batch_size
        real = self._next_real()
        generator, discriminator = self.generator, self.discriminator
        for critic_step in range(self.n_critic):
            if self.fresh and critic_step > 0:
                real = self._next_real()
            with self._autocast():
                with torch.no_grad():
                    fake = generator(torch.randn(size, self.latent_dim, device=self.device))
                loss_d = self.d_loss(discriminator(real), discriminator(fake))
                if self.gp_weight:
                    loss_d = loss_d + self.gp_weight * gradient_penalty(discriminator, real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        discriminator.requires_grad_(False)
        with self._autocast():
            loss_g = self.g_loss(discriminator(generator(torch.randn(size, self.latent_dim, device=self.device))))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        discriminator.requires_grad_(True)


class Interleaved(pl.Callback):
    """Before each of the package's batches, takes as many plain-loop steps; times both sides.

    Interleaving step by step puts both sides under the same machine load at every moment (on a shared
    machine the load drifts by tens of percent within a minute, which separate runs cannot tell from a
    difference). A package interval runs from one batch start to the next: the step and everything
    Lightning does around it, epoch ends included.
    """

    def __init__(self, plain: PlainLoop, steps_per_batch: int) -> None:
        self.plain, self.steps_per_batch = plain, steps_per_batch
        self.plain_times: list[float] = []
        self.package_times: list[float] = []
        self._package_started: float | None = None

    def _now(self) -> float:
        if self.plain.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = self._now()
        if self._package_started is not None:
            self.package_times.append(now - self._package_started)
        for _ in range(self.steps_per_batch):
            self.plain.step()
        self._package_started = self._now()
        self.plain_times.append(self._package_started - now)

    def ratio(self, warmup: int = 0) -> tuple[float, float]:
        """(plain seconds per step, package samples/s over plain samples/s).

        The first fifth of the intervals (warm-up), or the first ``warmup`` if more, are left out.
        """
        n = len(self.package_times)
        skip = max(n // 5, warmup)
        plain, package = self.plain_times[skip:n], self.package_times[skip:]
        return sum(plain) / (len(plain) * self.steps_per_batch), sum(plain) / sum(package)


def measure(case: Case, options: dict, data: torch.Tensor, device: torch.device, precision: str,
            autocast_dtype: torch.dtype | None, log_dir: str) -> tuple[float, float]:
    """(plain seconds per step, package/plain throughput ratio) for one package configuration."""
    gan = case.build(**options)
    k = gan.hparams.steps_per_batch
    # A compiled module runs its first step eagerly and compiles in the next ones (recompiling once if a
    # guard fails): leave 3 batches of warm-up out of its measurement, and measure as many after them.
    compiled = bool(options.get("compile"))
    batches = max(-(-case.steps // k), 6) + (3 if compiled else 0)
    timer = Interleaved(PlainLoop(case.build(), data, case.batch_size, device, autocast_dtype), k)
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, max_steps=batches * k, precision=precision, log_every_n_steps=50 * k,
        logger=pl.loggers.CSVLogger(log_dir), enable_progress_bar=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[timer],
    )
    # The data module serves batches of gan.micro_batches_per_batch x batch_size.
    trainer.fit(gan, datamodule=TensorDataModule(data, batch_size=case.batch_size, on_accelerator=True))
    return timer.ratio(warmup=3 if compiled else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES])
    parser.add_argument("--log_dir", default="/tmp/lightning_gan_bench")
    parser.add_argument("--steps_per_batch", type=int, default=10, help="for the amortised column")
    parser.add_argument("--no_compile", action="store_true", help="leave out the compiled column")
    parser.add_argument("--columns", nargs="*", default=None,
                        help="only these columns (eager, steps_per_batch, compiled, captured); default: all that apply")
    parser.add_argument("--capture", action="store_true", help="add compile={'mode': 'reduce-overhead'} (CUDA graphs)")
    args = parser.parse_args()
    device = torch.device(args.device)
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    columns = {"eager": {}, f"steps_per_batch={args.steps_per_batch}": {"steps_per_batch": args.steps_per_batch}}
    if not args.no_compile:
        columns["compiled"] = {"compile": True}
    if args.capture:
        columns["captured"] = {"compile": {"mode": "reduce-overhead"}}
    if args.columns:
        columns = {name: options for name, options in columns.items() if name.split("=")[0] in args.columns}
    pl.seed_everything(0, verbose=False)
    for case in (c for c in CASES if c.name in args.cases):
        # 20 generator steps' worth of real batches (n_critic of them per step where critic data is fresh).
        data = torch.rand(case.batch_size * 20 * case.build().hparams.n_critic, *case.data_shape) * 2 - 1
        plain: list[float] = []
        ratios_seen: dict[str, list[float]] = {name: [] for name in columns}
        for _ in range(args.repeats):
            for name, options in columns.items():
                seconds, ratio = measure(case, options, data, device, args.precision, autocast_dtype, args.log_dir)
                plain.append(seconds)
                ratios_seen[name].append(ratio)
        plain_rate = case.batch_size / statistics.median(plain)
        ratios = {name: statistics.median(seen) for name, seen in ratios_seen.items()}
        rates = {name: ratio * plain_rate for name, ratio in ratios.items()}
        # The goal is for the eager paths (plain or with steps_per_batch): compiling is opt-in.
        eager_ratios = [ratio for name, ratio in ratios.items() if name not in ("compiled", "captured")]
        eager_met = bool(eager_ratios) and max(eager_ratios) >= GOAL
        print(f"{case.name:26s} plain {plain_rate:9.0f}/s  "
              + "  ".join(f"{n} {r:.3f}x [{min(ratios_seen[n]):.2f}-{max(ratios_seen[n]):.2f}]" for n, r in ratios.items())
              + (f"  (best eager path >= {GOAL}: {'MET' if eager_met else 'NOT MET'})" if eager_ratios else ""), flush=True)
        print(json.dumps({"benchmark": "step_overhead", "case": case.name, "device": args.device,
                          "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                          "precision": args.precision, "plain_samples_per_s": plain_rate,
                          "package_samples_per_s": rates, "ratio": ratios, "ratio_runs": ratios_seen, "goal": GOAL}), flush=True)


if __name__ == "__main__":
    main()
