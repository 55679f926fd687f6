"""Where a package step's time goes, op by op, against the plain loop of step_overhead.py on the same case.

Runs a few warm-up steps, then profiles ``--steps`` steps of each side with ``torch.profiler`` (CPU
activities) and prints the ops whose total time differs most between them, per step, and each side's
time outside any op (Python, Lightning).

    python benchmarks/profile_step.py --case dcgan_64_w8_b64
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from step_overhead import CASES, PlainLoop  # noqa: E402

from lightning_gan.data import TensorDataModule  # noqa: E402


class StepTimer(pl.Callback):
    """Wall time between consecutive batch starts: the step plus everything Lightning does around it."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    @property
    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]


class ProfileSteps(pl.Callback):
    """Profiles batches [warmup, warmup + steps)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.prof = warmup, steps, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.prof = profile(activities=[ProfilerActivity.CPU])
            self.prof.__enter__()
        elif trainer.global_step == self.warmup + self.steps and self.prof is not None:
            self.prof.__exit__(None, None, None)


def op_totals(prof, steps: int) -> dict[str, float]:
    """Self CPU time per op name, in ms per step."""
    return {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="dcgan_64_w8_b64", choices=[c.name for c in CASES])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    case = next(c for c in CASES if c.name == args.case)
    data = torch.rand(case.batch_size * 20, *case.data_shape) * 2 - 1
    pl.seed_everything(0, verbose=False)

    loop = PlainLoop(case.build(), data, case.batch_size, torch.device("cpu"), None)
    for _ in range(args.warmup):
        loop.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof_plain:
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            loop.step()
            times.append(time.perf_counter() - start)
    plain_seconds = statistics.median(times)
    plain = op_totals(prof_plain, args.steps)

    hook, timer = ProfileSteps(args.warmup, args.steps), StepTimer()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=args.warmup + args.steps + 1, logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[hook, timer])
    trainer.fit(case.build(), datamodule=TensorDataModule(data, batch_size=case.batch_size, on_accelerator=True))
    package = op_totals(hook.prof, args.steps)
    package_seconds = statistics.median(timer.times[args.warmup:args.warmup + args.steps])

    print(f"{case.name}: plain {plain_seconds * 1e3:.1f} ms/step, package {package_seconds * 1e3:.1f} ms/step")
    print(f"{'op':45s} {'plain ms':>10s} {'package ms':>11s} {'diff':>8s}")
    names = sorted(set(plain) | set(package), key=lambda n: -abs(package.get(n, 0) - plain.get(n, 0)))
    for name in names[:args.top]:
        a, b = plain.get(name, 0.0), package.get(name, 0.0)
        print(f"{name[:45]:45s} {a:10.2f} {b:11.2f} {b - a:+8.2f}")
    print(f"{'all ops':45s} {sum(plain.values()):10.2f} {sum(package.values()):11.2f} "
          f"{sum(package.values()) - sum(plain.values()):+8.2f}")


if __name__ == "__main__":
    main()
