"""Likelihood and sample quality disagree: why GANs are trained without a likelihood, and judged by two metrics.

    python examples/likelihood_vs_samples.py                  # about a minute on a CPU
    python examples/likelihood_vs_samples.py --steps 3000 --out ring8.png

On a ring of 8 Gaussians (std 0.05, radius 2; the density is known exactly) it compares four models:

* the data distribution p itself (the reference);
* a GAN trained for ``--steps`` generator steps;
* a memorising model: a Parzen mixture of width 1e-3 on the GAN's training points (its samples are training
  points, barely moved);
* ``0.01 p + 0.99 noise``, the noise uniform on [-4, 4]^2.

For each it prints the held-out log-likelihood: exact where the model has a density, and for the GAN, which has
none, the annealed-importance-sampling estimate of Wu et al. (2017) (the generator with Gaussian observation noise,
sigma chosen on validation points, with the BDMC gap that bounds its error on the model's own data); beside it
the Parzen-window estimate from 10,000 samples (the number reported for GANs, sigma chosen on validation data)
and how far that is from the better number; and the sample quality: the mean true log-density of its samples, ``E_{y ~ model}[log p(y)]``
(:class:`~lightning_gan.metrics.LogProbOfSamples`). The memoriser draws perfect samples and gives held-out data a
terrible likelihood; the noise model's likelihood is within log 100 = 4.6 nats of the truth's while 99% of its
samples are off the data. Neither number alone ranks models by what we want. A PNG shows the samples side by side.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torchvision.utils import make_grid

from lightning_gan import VanillaGAN
from lightning_gan.data import GaussianMixture2D, ToyDataModule
from lightning_gan.callbacks.ais import differentiable_generator
from lightning_gan.metrics import AISLogLikelihood, LogProbOfSamples, bdmc, parzen_log_likelihood

MEMORISER_EPS = 1e-3  # kernel width of the memorising model
NOISE_WEIGHT = 0.99  # weight of the noise in the noise model
NOISE_BOX = 4.0  # the noise is uniform on [-NOISE_BOX, NOISE_BOX]^2
PARZEN_SIGMAS = torch.logspace(-2, 0, 10, dtype=torch.float64)
AIS_SIGMAS = torch.logspace(-2, -0.5, 7, dtype=torch.float64)  # observation noise of the GAN's AIS, data units
AIS_CHAINS = 16
AIS_SELECTION_CHAINS = 4  # choosing sigma needs the ranking of a 7-value grid, not a tight estimate


@dataclass
class Row:
    """One model's numbers (nats; higher is better for each)."""

    model: str
    #: Mean exact log-density of the held-out points; None for a model without a density (the GAN).
    exact_log_likelihood: Optional[float]
    #: The AIS estimate of the same (the GAN only): mean, standard error, chosen sigma, BDMC gap; else None.
    ais_log_likelihood: Optional[float]
    ais_stderr: Optional[float]
    ais_sigma: Optional[float]
    bdmc_gap: Optional[float]
    #: Mean Parzen-window log-likelihood of the held-out points under the model's samples.
    parzen_log_likelihood: float
    #: The Parzen width chosen on the validation points.
    parzen_sigma: float
    #: Mean true log-density of the model's samples, E_{y ~ model}[log p(y)].
    sample_quality: float
    #: Fraction of samples within 3 stds of a mode centre.
    on_a_mode: float
    #: Modes holding at least 1% of the samples.
    modes_covered: int


# ---------------------------------------------------------------------------------------------- the models


class MemorisingModel:
    """A Parzen mixture of width ``eps`` on the training points: samples are training points plus tiny noise."""

    def __init__(self, train: Tensor, eps: float = MEMORISER_EPS) -> None:
        self.train, self.eps = train.double(), eps

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        pick = torch.randint(len(self.train), (n,), generator=generator)
        return (self.train[pick] + self.eps * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()

    def log_prob(self, x: Tensor) -> Tensor:
        # The model's own density, exactly: a Parzen window of width eps on the training points.
        return parzen_log_likelihood(x, self.train, [self.eps], dtype=torch.float64)[:, 0]


class NoisyModel:
    """``(1 - w) p + w U([-box, box]^2)``: a little of the truth, mostly uniform noise."""

    def __init__(self, truth: GaussianMixture2D, weight: float = NOISE_WEIGHT, box: float = NOISE_BOX) -> None:
        self.truth, self.weight, self.box = truth, weight, box

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        from_truth, _ = self.truth.sample(n, generator=generator)
        noise = (torch.rand(n, 2, generator=generator) * 2 - 1) * self.box
        use_noise = torch.rand(n, generator=generator) < self.weight
        return torch.where(use_noise[:, None], noise, from_truth)

    def log_prob(self, x: Tensor) -> Tensor:
        x = x.double()
        inside = (x.abs() <= self.box).all(dim=1)
        log_noise = torch.where(
            inside,
            torch.tensor(math.log(self.weight) - 2 * math.log(2 * self.box), dtype=torch.float64),
            torch.tensor(-math.inf, dtype=torch.float64),
        )
        return torch.logaddexp(math.log(1 - self.weight) + self.truth.log_prob(x), log_noise)


def train_gan(data: ToyDataModule, steps: int, seed: int, accelerator: str = "cpu") -> VanillaGAN:
    """A small MLP GAN on the toy data, with a moving average of the generator (what ``generate`` samples from)."""
    pl.seed_everything(seed, verbose=False)
    gan = VanillaGAN(
        image_shape=(2,),
        latent_dim=2,
        generator_hidden=(128, 128),
        discriminator_hidden=(128, 128),
        maxout_pieces=1,
        dropout=0.0,
        output_activation="identity",
        lr_g=1e-3,
        lr_d=1e-3,
        ema_decay=0.99,
    )
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    threads = torch.get_num_threads()
    if accelerator == "cpu":
        # Nets this small gain nothing from more threads, and on a busy machine threads waiting for each other
        # make each step several times slower.
        torch.set_num_threads(1)
    try:
        trainer.fit(gan, datamodule=data)
    finally:
        torch.set_num_threads(threads)
    return gan.eval().cpu()


# ---------------------------------------------------------------------------------------------- the metrics


def sample_quality(log_prob: Callable[[Tensor], Tensor], samples: Tensor) -> float:
    """E_{y ~ model}[log p(y)] with the package's metric."""
    metric = LogProbOfSamples(log_prob)
    for part in samples.split(2000):
        metric.update(part)
    return float(metric.compute())


def parzen_estimate(samples: Tensor, val: Tensor, test: Tensor) -> tuple[float, float]:
    """The held-out Parzen log-likelihood with sigma chosen on ``val``, as reported for GANs: (value, sigma)."""
    on_val = parzen_log_likelihood(val, samples, PARZEN_SIGMAS).mean(dim=0)
    sigma = float(PARZEN_SIGMAS[int(on_val.argmax())])
    return float(parzen_log_likelihood(test, samples, [sigma]).mean()), sigma


def ais_estimate(gan: VanillaGAN, val: Tensor, test: Tensor, steps: int, points: int) -> tuple[float, float, float, float]:
    """The GAN's held-out AIS log-likelihood as Wu et al. measure it: (mean, stderr, sigma, BDMC gap).

    Sigma is chosen on half as many validation points as the ``points`` test points scored at it; the BDMC gap
    comes from a sixth as many points simulated from the model at that sigma.
    """
    generator, latent_dim = differentiable_generator(gan)
    options = dict(latent_dim=latent_dim, num_steps=steps, generator=generator)
    choose = AISLogLikelihood(sigmas=AIS_SIGMAS, num_chains=AIS_SELECTION_CHAINS, **options)
    choose.update(val[: max(points // 2, 1)])
    sigma = float(choose.compute()["best_sigma"])
    score = AISLogLikelihood(sigmas=[sigma], num_chains=AIS_CHAINS, **options)
    score.update(test[:points])
    result = score.compute()
    gap = bdmc(generator, latent_dim, max(points // 6, 1), sigma, num_steps=steps, num_chains=AIS_CHAINS).gap
    return float(result["best_log_likelihood"]), float(result["best_stderr"]), sigma, float(gap)


def mode_coverage(truth: GaussianMixture2D, samples: Tensor) -> tuple[float, int]:
    distance, nearest = torch.cdist(samples.double(), truth.means).min(dim=1)
    close = distance < 3 * truth.stds[nearest]
    counts = torch.bincount(nearest[close], minlength=truth.num_components)
    return float(close.double().mean()), int((counts >= 0.01 * len(samples)).sum())


def evaluate(
    name: str,
    samples: Tensor,
    truth: GaussianMixture2D,
    val: Tensor,
    test: Tensor,
    log_prob: Optional[Callable[[Tensor], Tensor]],
    ais: Optional[tuple[float, float, float, float]] = None,
) -> Row:
    parzen, sigma = parzen_estimate(samples, val, test)
    on_a_mode, covered = mode_coverage(truth, samples)
    ais_ll, ais_stderr, ais_sigma, gap = ais if ais is not None else (None, None, None, None)
    return Row(
        model=name,
        exact_log_likelihood=None if log_prob is None else float(log_prob(test).mean()),
        ais_log_likelihood=ais_ll,
        ais_stderr=ais_stderr,
        ais_sigma=ais_sigma,
        bdmc_gap=gap,
        parzen_log_likelihood=parzen,
        parzen_sigma=sigma,
        sample_quality=sample_quality(truth.log_prob, samples),
        on_a_mode=on_a_mode,
        modes_covered=covered,
    )


# ---------------------------------------------------------------------------------------------- the experiment


def run(
    steps: int = 2000,
    n_train: int = 5000,
    n_eval: int = 10_000,
    seed: int = 0,
    out: Optional[Path] = None,
    accelerator: str = "cpu",
    ais_steps: int = 400,
    ais_points: int = 200,
) -> list[Row]:
    """Trains the GAN, builds the other models, and returns one :class:`Row` per model (truth, GAN, memoriser, noise).

    ``n_eval`` samples are drawn from each model, and as many validation and test points from the data.
    With ``out``, the samples are also drawn side by side into that PNG.
    """
    data = ToyDataModule("ring8", n_samples=n_train, n_val=n_eval, n_test=n_eval, batch_size=256, seed=seed)
    truth = data.distribution
    train, val, test = (data._splits[name][0] for name in ("train", "val", "test"))
    gan = train_gan(data, steps, seed, accelerator)

    generator = torch.Generator().manual_seed(seed + 1)
    memoriser, noisy = MemorisingModel(train), NoisyModel(truth)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        gan_samples = gan.generate(n_eval).float()
    samples = {
        "data p (reference)": truth.sample(n_eval, generator=generator)[0],
        "GAN": gan_samples,
        "memoriser (eps 1e-3)": memoriser.sample(n_eval, generator),
        "0.01 p + 0.99 noise": noisy.sample(n_eval, generator),
    }
    log_probs = {
        "data p (reference)": truth.log_prob,
        "GAN": None,
        "memoriser (eps 1e-3)": memoriser.log_prob,
        "0.01 p + 0.99 noise": noisy.log_prob,
    }
    ais = {"GAN": ais_estimate(gan, val, test, ais_steps, ais_points)}
    rows = [evaluate(name, samples[name], truth, val, test, log_probs[name], ais.get(name)) for name in samples]
    if out is not None:
        save_panels(out, [(name, samples[name]) for name in samples], truth)
    return rows


def best_estimate(row: Row) -> float:
    """The exact held-out log-likelihood where the model has one, else the AIS estimate."""
    return row.exact_log_likelihood if row.exact_log_likelihood is not None else float(row.ais_log_likelihood)


def format_table(rows: Sequence[Row]) -> str:
    header = ("model", "held-out LL exact / AIS", "held-out LL Parzen", "Parzen - best", "sample quality", "on a mode",
              "modes")
    lines = [
        header,
        *(
            (
                r.model,
                f"{r.exact_log_likelihood:.2f} (exact)" if r.exact_log_likelihood is not None
                else f"{r.ais_log_likelihood:.2f} +- {r.ais_stderr:.2f} (AIS, s={r.ais_sigma:.3f})",
                f"{r.parzen_log_likelihood:.2f} (s={r.parzen_sigma:.3f})",
                f"{r.parzen_log_likelihood - best_estimate(r):+.2f}",
                f"{r.sample_quality:.2f}",
                f"{r.on_a_mode:.0%}",
                f"{r.modes_covered}/8",
            )
            for r in rows
        ),
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


# ---------------------------------------------------------------------------------------------- the picture


def scatter_panel(points: Tensor, truth: GaussianMixture2D, extent: float = 4.4, size: int = 256) -> Tensor:
    """A ``(3, size, size)`` image in [0, 1]: the points in blue over the mode centres in green, on white."""
    image = torch.ones(3, size, size)

    def pixels(xy: Tensor) -> tuple[Tensor, Tensor]:
        cols = ((xy[:, 0] + extent) / (2 * extent) * (size - 1)).round().long()
        rows = ((extent - xy[:, 1]) / (2 * extent) * (size - 1)).round().long()
        keep = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
        return rows[keep], cols[keep]

    for dy in (-2, -1, 0, 1, 2):  # a green cross on each mode centre
        for dx in (-2, -1, 0, 1, 2):
            if dx and dy:
                continue
            rows, cols = pixels(truth.means.float() + torch.tensor([dx, dy]) * (2 * extent / size))
            image[:, rows, cols] = torch.tensor([0.1, 0.7, 0.1]).unsqueeze(1)
    finite = points[torch.isfinite(points).all(dim=1)].float()
    rows, cols = pixels(finite)
    image[:, rows, cols] = torch.tensor([0.1, 0.2, 0.8]).unsqueeze(1)
    return image


def save_panels(path: Path, panels: Sequence[tuple[str, Tensor]], truth: GaussianMixture2D, points: int = 3000) -> Path:
    """Draws the panels side by side (PIL and torchvision only: no plotting library), each titled, into a PNG."""
    images = [scatter_panel(samples[:points], truth) for _, samples in panels]
    grid = make_grid(torch.stack(images), nrow=len(images), padding=24, pad_value=1.0)
    picture = Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(picture)
    for i, (name, _) in enumerate(panels):
        draw.text((24 + i * (256 + 24), 6), name, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def main(argv: Optional[Sequence[str]] = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="GAN generator steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("likelihood_vs_samples.png"), help="the PNG to write")
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run(steps=args.steps, seed=args.seed, out=args.out, accelerator=args.accelerator)
    print(format_table(rows))
    print(
        "\nLL: mean log-density of 10,000 held-out points (nats; the GAN's AIS: 200 points, 16 chains, 400 "
        f"distributions, BDMC gap {next(r.bdmc_gap for r in rows if r.bdmc_gap is not None):.2f} nats). "
        "Sample quality: mean true log-density of 10,000 samples.\nThe memoriser's samples are as good as the data's, its held-out likelihood the worst; the noise "
        "model's likelihood is within log 100 = 4.61 nats of p's, its samples the worst. Judge a GAN by both kinds."
    )
    print(f"\nsamples drawn into {args.out}; {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
