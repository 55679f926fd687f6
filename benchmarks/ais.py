"""AIS log-likelihood (Wu et al., 2017): the batched estimator's speed, and its error against an exact answer.

Speed: points x chains per second of ``ais_log_likelihood`` on all points at once (points x chains rows in
one tensor) against a per-point Python loop of the same maths (one call per point, its 16 chains batched;
the same random numbers, so the two agree point for point). Generator: an MLP 10-256-512-784 with tanh
output, random weights, on data simulated from it; then the same for the linear generator below, whose rows
are cheap, so per-call overhead weighs most. The loop is timed on a subset and reported per point; the two
sides alternate (``--repeats``). The paper-sized run (1,000 MNIST test points, 16 chains, 10,000
distributions, 10 leapfrog steps) is **extrapolated** from the cost per (row x generator pass), measured at
its batch size (16,000 rows, simulated points: the time does not depend on the data) on a short schedule.
Goal: >= 20x points x chains per second.

Exactness: a linear generator G(z) = W z + b (z in R^10, x in R^784) has the marginal N(b, W W^T + s^2 I),
so log p(x) is exact (float64); AIS - exact is reported per schedule as a mean and standard error over
points simulated from the model. ``--bdmc`` adds the bidirectional Monte Carlo gap of a small MLP.

    python benchmarks/ais.py [--device cuda] [--quick] [--points 100] [--long_points 25] [--bdmc]
    python benchmarks/ais.py --parts speed          # or exact, bdmc; default: speed exact
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
from torch import nn

from lightning_gan.metrics.annealing import ais_log_likelihood, bdmc, simulate

GOAL_SPEEDUP = 20.0
PAPER = {"points": 1000, "chains": 16, "num_steps": 10_000, "leapfrog_steps": 10}


def mlp(hidden: tuple[int, ...], latent_dim: int = 10, out: int = 784, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers, width = [], latent_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, out), nn.Tanh())


def generator_passes(num_steps: int, leapfrog_steps: int) -> int:
    """Forward + backward passes per row: one at the start, ``leapfrog_steps`` per transition (T - 1 of them)."""
    return 1 + (num_steps - 1) * leapfrog_steps


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def linear_generator(device: torch.device, latent_dim: int = 10, dim: int = 784):
    """G(z) = W z + b with W = randn(784, 10) * 0.3, b = randn(784) * 0.5 (torch.manual_seed(0)); returns (G, W, b)."""
    torch.manual_seed(0)
    w, b = torch.randn(dim, latent_dim) * 0.3, torch.randn(dim) * 0.5
    w_dev, b_dev = w.to(device), b.to(device)
    return (lambda z: z @ w_dev.T + b_dev), w, b


def speed_case(args, device: torch.device, name: str, gen) -> tuple[dict, float]:
    """Batched vs per-point loop on one generator; returns the record and the batched cost per row pass."""
    _, x = simulate(gen, args.speed_points, 10, args.sigma, seed=1, device=device)
    common = dict(latent_dim=10, sigmas=[args.sigma], num_steps=args.speed_steps, num_chains=16, leapfrog_steps=10)
    ais_log_likelihood(gen, x[:2], **{**common, "num_steps": 3})  # warm-up
    k = min(args.baseline_points, args.speed_points)

    def loop():
        return torch.cat([ais_log_likelihood(gen, x[i:i + 1], point_ids=torch.tensor([i], device=device),
                                             **common).log_likelihood for i in range(k)])

    # Interleaved repeats (batched, then the loop), times summed: a shared machine slows both sides alike.
    batched_s = loop_s = 0.0
    ratios = []
    for _ in range(args.repeats):
        b_s, batched = timed(lambda: ais_log_likelihood(gen, x, **common), device)
        l_s, looped = timed(loop, device)
        batched_s, loop_s = batched_s + b_s, loop_s + l_s
        ratios.append((l_s / k) / (b_s / args.speed_points))
    batched_s, loop_s = batched_s / args.repeats, loop_s / args.repeats
    loop_per_point, batched_per_point = loop_s / k, batched_s / args.speed_points
    cost = batched_s / (args.speed_points * 16 * generator_passes(args.speed_steps, 10))
    out = {"generator": name, "points": args.speed_points, "chains": 16, "num_steps": args.speed_steps,
           "leapfrog_steps": 10, "baseline_points_timed": k, "batched_s": batched_s, "loop_s_timed": loop_s,
           "loop_s_scaled": loop_per_point * args.speed_points,
           "batched_point_chains_per_s": 16 / batched_per_point, "loop_point_chains_per_s": 16 / loop_per_point,
           "speedup": loop_per_point / batched_per_point, "speedup_per_repeat": ratios, "s_per_row_pass": cost,
           "max_abs_diff_loop_vs_batched": float((looped - batched.log_likelihood[:k].cpu()).abs().max())}
    print(f"speed, {name}: {args.speed_points} points x 16 chains, {args.speed_steps} distributions, 10 leapfrog "
          f"steps, sigma {args.sigma}, {device}")
    print(f"  per-point loop: {out['loop_point_chains_per_s']:9.1f} points x chains/s  (timed on {k} points: {loop_s:.2f} s per repeat; "
          f"scaled to {args.speed_points}: {out['loop_s_scaled']:.1f} s)")
    print(f"  batched:        {out['batched_point_chains_per_s']:9.1f} points x chains/s  ({batched_s:.2f} s per repeat)"
          f"  -> {out['speedup']:.1f}x [{min(ratios):.1f}-{max(ratios):.1f}] over {args.repeats} interleaved repeats "
          f"(goal >= {GOAL_SPEEDUP:g}x)")
    print(f"  {cost * 1e6:.2f} us per (row x generator pass) batched; loop vs batched estimates, max |difference| "
          f"over the {k} points: {out['max_abs_diff_loop_vs_batched']:.2e} nats")
    return out, cost


def speed(args, device: torch.device) -> dict:
    gen = mlp((256, 512)).to(device)
    out, cost = speed_case(args, device, "MLP 10-256-512-784 tanh", gen)
    out["linear"], _ = speed_case(args, device, "linear 10-784 (overhead-bound)", linear_generator(device)[0])
    total_passes = PAPER["points"] * PAPER["chains"] * generator_passes(PAPER["num_steps"], PAPER["leapfrog_steps"])
    out["paper_extrapolated_s_from_speed_run"] = cost * total_passes
    if args.probe_steps:
        # The cost per row pass at the paper's own batch size (16,000 rows), measured on a short schedule.
        _, xp = simulate(gen, PAPER["points"], 10, args.sigma, seed=2, device=device)
        probe_s, _ = timed(lambda: ais_log_likelihood(gen, xp, 10, [args.sigma], num_steps=args.probe_steps), device)
        probe_cost = probe_s / (PAPER["points"] * 16 * generator_passes(args.probe_steps, 10))
        out.update(probe_steps=args.probe_steps, probe_s=probe_s, s_per_row_pass_1000pt=probe_cost,
                   paper_extrapolated_s=probe_cost * total_passes)
        print(f"  MLP measured at 1,000 points x 16 chains, {args.probe_steps} distributions: {probe_s:.2f} s = "
              f"{probe_cost * 1e6:.3f} us per (row x generator pass)")
    best = out.get("paper_extrapolated_s", out["paper_extrapolated_s_from_speed_run"])
    print(f"  MLP, paper-sized run (1,000 points x 16 chains, 10,000 distributions, 10 leapfrog steps; {total_passes:.3g} "
          f"row passes): EXTRAPOLATED {best / 3600:.1f} h on {device}"
          + ("" if "paper_extrapolated_s" not in out else
             f" (from the speed run's cost: {out['paper_extrapolated_s_from_speed_run'] / 3600:.1f} h)"))
    return out


def exactness(args, device: torch.device) -> list[dict]:
    latent, dim, sigma = 10, 784, 0.3
    linear, w, b = linear_generator(device, latent, dim)
    n = max(1000, args.points, args.long_points)  # a fixed draw, so point i is the same for any --points
    z = torch.randn(n, latent)
    x = z @ w.T + b + sigma * torch.randn(n, dim)
    marginal = torch.distributions.MultivariateNormal(
        b.double(), covariance_matrix=w.double() @ w.double().T + sigma**2 * torch.eye(dim, dtype=torch.float64))
    exact = marginal.log_prob(x.double())
    x_dev = x.to(device)
    rows = []
    print(f"exactness: linear G(z) = W z + b, z in R^10, x in R^784, sigma {sigma}, data simulated from the model; "
          f"16 chains, 10 leapfrog steps, step size 0.1 (adapted), {device}")
    print(f"  exact log p(x) mean {float(exact[:args.points].mean()):.2f} nats")
    print(f"  {'distributions':>13} {'points':>6} {'mean AIS - exact':>17} {'s.e.':>7} {'max |err|':>9} {'accept':>6} {'time':>8} {'first ' + str(args.long_points):>12} {'s.e.':>7}")
    for steps in args.exact_steps:
        p = args.points if steps <= 1000 else args.long_points
        seconds, result = timed(lambda: ais_log_likelihood(linear, x_dev[:p], latent, [sigma], num_steps=steps,
                                                           num_chains=16, leapfrog_steps=10), device)
        err = result.log_likelihood[:, 0].cpu() - exact[:p]
        row = {"num_steps": steps, "points": p, "mean_error": float(err.mean()),
               "se": float(err.std() / math.sqrt(p)) if p > 1 else float("nan"), "max_abs_error": float(err.abs().max()),
               "acceptance": float(result.acceptance_rate.mean()), "seconds": seconds}
        q = min(p, args.long_points)  # every row also on the long rows' points (ids 0..q-1 draw the same numbers)
        row[f"mean_error_first_{q}"] = float(err[:q].mean())
        row[f"se_first_{q}"] = float(err[:q].std() / math.sqrt(q)) if q > 1 else float("nan")
        rows.append(row)
        print(f"  {steps:>13,} {p:>6} {row['mean_error']:>+17.4f} {row['se']:>7.4f} {row['max_abs_error']:>9.4f} "
              f"{row['acceptance']:>6.2f} {seconds:>7.1f}s {row[f'mean_error_first_{q}']:>+12.4f} {row[f'se_first_{q}']:>7.4f}")
    return rows


def bdmc_gaps(args, device: torch.device) -> list[dict]:
    gen = mlp((64,), seed=3).to(device)
    rows = []
    print(f"BDMC: MLP 10-64-784 tanh (random weights), sigma {args.bdmc_sigma}, simulated data, 16 chains, "
          f"10 leapfrog steps, {device}")
    print(f"  {'distributions':>13} {'points':>6} {'lower':>10} {'upper':>10} {'gap':>8} {'time':>8}")
    for steps in args.exact_steps:
        p = args.points if steps <= 1000 else args.long_points
        seconds, result = timed(lambda: bdmc(gen, 10, p, args.bdmc_sigma, num_steps=steps, num_chains=16,
                                             device=device), device)
        row = {"num_steps": steps, "points": p, "lower": float(result.lower.mean()), "upper": float(result.upper.mean()),
               "gap": float(result.gap), "seconds": seconds}
        rows.append(row)
        print(f"  {steps:>13,} {p:>6} {row['lower']:>10.2f} {row['upper']:>10.2f} {row['gap']:>8.3f} {seconds:>7.1f}s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="sub-minute smoke run (small counts, short schedules)")
    parser.add_argument("--parts", nargs="+", default=["speed", "exact"], choices=["speed", "exact", "bdmc"])
    parser.add_argument("--bdmc", action="store_true", help="also run the BDMC gap of a small MLP")
    parser.add_argument("--points", type=int, default=100, help="points per schedule of <= 1,000 steps")
    parser.add_argument("--long_points", type=int, default=25, help="points per schedule of > 1,000 steps")
    parser.add_argument("--exact_steps", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--speed_points", type=int, default=100)
    parser.add_argument("--speed_steps", type=int, default=30)
    parser.add_argument("--baseline_points", type=int, default=20, help="points the per-point loop is timed on")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the speed comparison")
    parser.add_argument("--probe_steps", type=int, default=5, help="schedule of the 1,000-point cost probe (0: skip)")
    parser.add_argument("--sigma", type=float, default=0.1, help="observation noise of the speed runs")
    parser.add_argument("--bdmc_sigma", type=float, default=0.1)
    args = parser.parse_args()
    if args.quick:
        args.points, args.long_points, args.exact_steps = 10, 10, [20, 100]
        args.speed_points, args.speed_steps, args.baseline_points, args.probe_steps, args.repeats = 50, 10, 5, 0, 1
    if args.bdmc and "bdmc" not in args.parts:
        args.parts.append("bdmc")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    device = torch.device(args.device)
    load_before = os.getloadavg()[0]
    # Other jobs on the cores make torch's spinning OpenMP threads stall the many small ops of the per-point loop
    # far more than the batched GEMMs (seen here: a "24x" from a loop slowed 100x): trust a ratio only when idle.
    print(f"load average before: {load_before:.2f}; torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    record = {"benchmark": "ais", "device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        record["device_name"] = torch.cuda.get_device_name(device)
    if "speed" in args.parts:
        record["speed"] = speed(args, device)
        print("GOAL MET" if record["speed"]["speedup"] >= GOAL_SPEEDUP else "GOAL NOT MET")
    if "exact" in args.parts:
        record["exactness"] = exactness(args, device)
    if "bdmc" in args.parts:
        record["bdmc"] = bdmc_gaps(args, device)
    record["load_average_before_after"] = [load_before, os.getloadavg()[0]]
    print(f"load average after: {record['load_average_before_after'][1]:.2f}")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
