"""Mode coverage on the 2-D ring of 8 and grid of 25 Gaussians, the protocol of VEEGAN and PacGAN.

Protocol (PacGAN, Lin et al. 2018, section 5 and Table 1; every setting read from the authors' code,
github.com/fjxmlzn/PacGAN, ``synthetic_data_experiments``):

* **Data.** ring: 8 modes at ``(cos 2 pi k/8, sin 2 pi k/8)`` (radius 1), std 0.01; grid: 25 modes at
  ``{-4, -2, 0, 2, 4}^2``, std 0.05. A fixed training set of 100,000 points, drawn once per seed.
* **Networks.** Generator 2 -> 400 -> 400 -> 400 -> 400 -> 2 (batch norm + ReLU hidden layers, linear
  output), latent ``z ~ N(0, I_2)``; discriminator: three maxout layers of 200 units x 5 pieces, then a
  linear output (no dropout). Batch 100.
* **Budget.** PacGAN trains 400 epochs x 1,000 iterations = 400,000 generator steps (Adam, lr 1e-4,
  beta1 0.8) and averages 10 seeds. VEEGAN (Srivastava et al. 2017, Table 1) averages 5 runs and does
  not state its step budget in the paper.
* **Evaluation.** 2,500 samples; a sample is high quality within 3 std of its nearest mode; a mode is
  covered with at least one high-quality sample; reverse KL from the high-quality samples' mode histogram
  to uniform (:class:`lightning_gan.metrics.ModeCoverage`).

What this script changes, and says so in its output: the step budget. These networks cost ~50 ms per
non-saturating step on one CPU core (~1.2 GFLOP), ~6 times that for WGAN-GP's five critic steps with
their double backward, so PacGAN's 400,000 steps are hours per run even on a GPU (the small networks are
launch-bound there: roughly 1.5 ms per step, 10 min per non-saturating run and ~1 h per WGAN-GP run on
one GPU; run seeds on several GPUs). ``--steps`` defaults to 300, so that ``--seeds 3`` runs on a 2-core
CPU in under 15 minutes (6.4 min measured, two worker processes): that table demonstrates the protocol and the recipes' relative order early in
training, not the papers' end points; ``--paper_budget`` trains the full 400,000 steps.

Recipes, each the package's :class:`~lightning_gan.GAN` on the networks above:

* ``vanilla``: the non-saturating GAN with PacGAN's optimiser (Adam 1e-4, betas (0.8, 0.999));
* ``ttur``: the same with the two time-scale update rule, ``lr_d=4e-4, lr_g=1e-4`` (SAGAN's pairing);
* ``wgan_gp_fresh`` / ``wgan_gp_reused``: the ``WGANGP`` preset's recipe (Wasserstein loss, ``gp_weight=10``,
  ``n_critic=5``, Adam 1e-4, betas (0, 0.9)) with a fresh real batch per critic step (Algorithm 1 of
  Gulrajani et al. 2017) and with one batch reused by all five;
* ``ns_r1``: the non-saturating GAN with the R1 penalty (``r1_gamma=0.1``), PacGAN's optimiser.

    python benchmarks/mode_coverage.py --seeds 3                 # CPU, ~7 min on 2 cores
    python benchmarks/mode_coverage.py --device cuda --paper_budget --seeds 10
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
import warnings
from typing import Any

# The papers' numbers for their GAN baseline, as printed (modes, % high quality, reverse KL).
PAPERS = {
    "ring": [
        ("PacGAN Table 1, GAN (10 seeds, +- standard error)", "6.3 +- 0.5", "98.2 +- 0.2", "0.45 +- 0.09"),
        ("PacGAN Table 1, PacGAN2", "7.9 +- 0.1", "95.6 +- 2.0", "0.07 +- 0.03"),
        ("VEEGAN Table 1, GAN (5 runs, mean)", "1", "99.3", "-"),
        ("VEEGAN Table 1, VEEGAN", "8", "52.9", "-"),
    ],
    "grid": [
        ("PacGAN Table 1, GAN (10 seeds, +- standard error)", "17.3 +- 0.8", "94.8 +- 0.7", "0.70 +- 0.07"),
        ("PacGAN Table 1, PacGAN2", "23.8 +- 0.7", "91.3 +- 0.8", "0.13 +- 0.04"),
        ("VEEGAN Table 1, GAN (5 runs, mean)", "3.3", "0.5", "-"),
        ("VEEGAN Table 1, VEEGAN", "24.6", "40", "-"),
    ],
}
RECIPES: dict[str, dict[str, Any]] = {
    "vanilla": dict(loss="non_saturating", lr_g=1e-4, lr_d=1e-4, betas=(0.8, 0.999)),
    "ttur": dict(loss="non_saturating", lr_g=1e-4, lr_d=4e-4, betas=(0.8, 0.999)),
    "wgan_gp_fresh": dict(loss="wasserstein", gp_weight=10.0, n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9),
                          critic_data="fresh"),
    "wgan_gp_reused": dict(loss="wasserstein", gp_weight=10.0, n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9),
                           critic_data="reused"),
    "ns_r1": dict(loss="non_saturating", r1_gamma=0.1, lr_g=1e-4, lr_d=1e-4, betas=(0.8, 0.999)),
}
PAPER_STEPS = 400_000
GOAL = {"grid": (24, 0.9), "ring": (8, 0.9)}  # modes covered, high-quality share, in >= 90% of the seeds


def mixture(name: str):
    from lightning_gan.data import grid25, ring8

    return ring8(radius=1.0, std=0.01) if name == "ring" else grid25(spacing=2.0, std=0.05)


def networks():
    from torch import nn

    from lightning_gan.nets import MLPDiscriminator

    layers: list[nn.Module] = []
    width = 2
    for _ in range(4):
        layers += [nn.Linear(width, 400, bias=False), nn.BatchNorm1d(400), nn.ReLU()]
        width = 400
    generator = nn.Sequential(*layers, nn.Linear(400, 2))
    discriminator = MLPDiscriminator((2,), (200, 200, 200), maxout_pieces=5, dropout=0.0)
    return generator, discriminator


def run_one(job: tuple[str, str, int, int, str, int]) -> dict[str, Any]:
    """Trains one recipe on one data set with one seed; returns the coverage of 2,500 samples."""
    data_name, recipe, seed, steps, device, steps_per_batch = job
    import pytorch_lightning as pl
    import torch

    from lightning_gan import GAN
    from lightning_gan.data import TensorDataModule
    from lightning_gan.metrics import ModeCoverage

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    pl.seed_everything(seed, verbose=False)
    mix = mixture(data_name)
    points, _ = mix.sample(100_000, generator=torch.Generator().manual_seed(seed))
    generator, discriminator = networks()
    options = dict(RECIPES[recipe])
    options.setdefault("critic_data", "fresh")
    gan = GAN(generator, discriminator, latent_dim=2, discriminator_outputs="logits" if options["loss"] != "wasserstein"
              else "scores", steps_per_batch=steps_per_batch, **options)
    steps = steps // steps_per_batch * steps_per_batch
    trainer = pl.Trainer(accelerator=device, devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=steps)
    start = time.perf_counter()
    trainer.fit(gan, datamodule=TensorDataModule(points, batch_size=100, on_accelerator=True))
    seconds = time.perf_counter() - start
    metric = ModeCoverage(mix.means, mix.stds)
    gan.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(2333)  # PacGAN's evaluation seed
        metric.update(gan.generate(2500).cpu())
    result = {k: float(v) for k, v in metric.compute().items()}
    return {"data": data_name, "recipe": recipe, "seed": seed, "steps": steps, "seconds": seconds, **result}


def summarise(rows: list[dict[str, Any]], data_name: str, recipe: str) -> dict[str, Any]:
    mine = [r for r in rows if r["data"] == data_name and r["recipe"] == recipe]

    def mean_std(key: str) -> tuple[float, float]:
        values = [r[key] for r in mine if not math.isnan(r[key])]
        if not values:
            return math.nan, math.nan
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    modes_goal, quality_goal = GOAL[data_name]
    met = sum(r["modes_covered"] >= modes_goal and r["high_quality_share"] >= quality_goal for r in mine)
    return {"data": data_name, "recipe": recipe, "seeds": len(mine), "modes": mean_std("modes_covered"),
            "high_quality_percent": tuple(100 * v for v in mean_std("high_quality_share")),
            "reverse_kl": mean_std("mode_kl"), "seeds_meeting_goal": met,
            "seconds_per_run": statistics.mean(r["seconds"] for r in mine)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300, help="generator steps per run")
    parser.add_argument("--paper_budget", action="store_true", help=f"train {PAPER_STEPS:,} steps, as PacGAN")
    parser.add_argument("--data", nargs="*", default=["ring", "grid"], choices=["ring", "grid"])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one thread each)")
    parser.add_argument("--steps_per_batch", type=int, default=50, help="Lightning's per-batch cost paid once per this many steps")
    args = parser.parse_args()
    steps = PAPER_STEPS if args.paper_budget else args.steps
    jobs = [(d, r, seed, steps, args.device, args.steps_per_batch)
            for d in args.data for r in args.recipes for seed in range(args.seeds)]
    start = time.perf_counter()
    workers = 1 if args.device == "cuda" else max(1, args.workers)
    if workers == 1:
        rows = [run_one(job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            rows = pool.map(run_one, jobs, chunksize=1)
    print(f"\nMode coverage, {args.seeds} seed(s) per cell, {steps:,} generator steps per run "
          f"(PacGAN: {PAPER_STEPS:,}), 2,500 samples, batch 100, {args.device}; mean +- std over seeds")
    for data_name in args.data:
        modes_goal, quality_goal = GOAL[data_name]
        k = 8 if data_name == "ring" else 25
        print(f"\n{data_name} ({k} modes)   goal: >= {modes_goal} modes and >= {quality_goal:.0%} high quality "
              f"in >= 90% of seeds")
        print(f"{'recipe':40s} {'modes':>12s} {'high quality %':>16s} {'reverse KL':>14s} {'goal met':>9s}")
        for recipe in args.recipes:
            s = summarise(rows, data_name, recipe)
            print(f"{recipe:40s} {s['modes'][0]:6.1f} +- {s['modes'][1]:3.1f} "
                  f"{s['high_quality_percent'][0]:8.1f} +- {s['high_quality_percent'][1]:4.1f} "
                  f"{s['reverse_kl'][0]:7.3f} +- {s['reverse_kl'][1]:4.2f} {s['seeds_meeting_goal']:4d}/{s['seeds']}")
            print(json.dumps({"benchmark": "mode_coverage", "steps": steps, "device": args.device, **s}))
        for source, modes, quality, kl in PAPERS[data_name]:
            print(f"{source:40s} {modes:>12s} {quality:>16s} {kl:>14s}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
