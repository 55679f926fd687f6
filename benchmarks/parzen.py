"""Parzen-window log-likelihood: the package's chunked GEMM estimate vs the original per-point NumPy loop.

Setting of Goodfellow et al. (2014): 10,000 test points under a Parzen window on 10,000 samples, d = 784.
The baseline is a float64 NumPy loop over test points (the shape of the original code); it is timed on a
subset and reported per point. Goals: >= 10x faster per point in float32 with error < 1e-3 nats per
point; the 10-value sigma sweep costs <= 1.5x one sigma; memory bounded by the chunk size, not N x M.

    python benchmarks/parzen.py [--device cuda] [--n 10000] [--baseline_points 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from lightning_gan.metrics.parzen import default_sigmas, parzen_log_likelihood

GOALS = {"speedup": 10.0, "max_error_nats": 1e-3, "sweep_cost": 1.5}


def naive_numpy(x: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    d = centres.shape[1]
    out = np.empty(len(x))
    for i, point in enumerate(x):
        a = -((point - centres) ** 2).sum(axis=1) / (2 * sigma**2)
        top = a.max()
        out[i] = top + np.log(np.mean(np.exp(a - top))) - d * np.log(sigma * np.sqrt(2 * np.pi))
    return out


def timed(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n", type=int, default=10_000, help="test points and samples")
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--baseline_points", type=int, default=200)
    parser.add_argument("--chunk_size", type=int, default=1024)
    args = parser.parse_args()
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    # MNIST-like values in [0, 1]: a sample set and a test set drawn around shared prototypes.
    prototypes = torch.rand(50, args.dim, generator=generator)
    centres = (prototypes[torch.randint(50, (args.n,), generator=generator)] + 0.1 * torch.randn(args.n, args.dim, generator=generator)).clamp(0, 1)
    x = (prototypes[torch.randint(50, (args.n,), generator=generator)] + 0.1 * torch.randn(args.n, args.dim, generator=generator)).clamp(0, 1)
    sigmas = default_sigmas()
    best = float(sigmas[len(sigmas) // 2])

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x_dev, c_dev = x.to(device), centres.to(device)
    parzen_log_likelihood(x_dev[:64], c_dev, [best], chunk_size=args.chunk_size)  # warm-up
    one_time, one = timed(lambda: parzen_log_likelihood(x_dev, c_dev, [best], chunk_size=args.chunk_size), device)
    sweep_time, sweep = timed(lambda: parzen_log_likelihood(x_dev, c_dev, sigmas, chunk_size=args.chunk_size), device)
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    k = args.baseline_points
    start = time.perf_counter()
    reference = naive_numpy(x[:k].double().numpy(), centres.double().numpy(), best)
    naive_per_point = (time.perf_counter() - start) / k
    package_per_point = one_time / args.n
    error = float(np.abs(one[:k, 0].cpu().numpy() - reference).max())
    speedup = naive_per_point / package_per_point
    sweep_cost = sweep_time / one_time
    dense_mb = args.n * args.n * 8 / 2**20

    print(f"naive NumPy float64 loop: {naive_per_point * 1e3:8.3f} ms/point (timed on {k} points)")
    print(f"package float32, 1 sigma: {package_per_point * 1e3:8.3f} ms/point  -> {speedup:6.1f}x  (goal >= {GOALS['speedup']}x)")
    print(f"max error vs float64 reference: {error:.2e} nats  (goal < {GOALS['max_error_nats']})")
    print(f"10-sigma sweep / 1 sigma: {sweep_cost:.2f}x  (goal <= {GOALS['sweep_cost']}x)")
    print(f"peak RSS growth {rss_growth_mb:.0f} MB for N x M = {args.n} x {args.n} (dense distances would be {dense_mb:.0f} MB; "
          f"chunk {args.chunk_size})")
    met = speedup >= GOALS["speedup"] and error < GOALS["max_error_nats"] and sweep_cost <= GOALS["sweep_cost"]
    print("ALL GOALS MET" if met else "NOT ALL GOALS MET")
    print(json.dumps({"benchmark": "parzen", "device": args.device, "n": args.n, "dim": args.dim,
                      "naive_ms_per_point": naive_per_point * 1e3, "package_ms_per_point": package_per_point * 1e3,
                      "speedup": speedup, "max_error_nats": error, "sweep_cost": sweep_cost,
                      "rss_growth_mb": rss_growth_mb, "dense_distance_mb": dense_mb, "goals": GOALS}))


if __name__ == "__main__":
    main()
