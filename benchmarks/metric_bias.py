"""How FID and KID move with the number of generated samples, on a model whose true distance is known.

Not a speed claim: the numbers behind "compare FIDs at the same sample count" in docs/metrics.md. Real and
generated features are 2048-d Gaussians (InceptionV3's pool dimension) with a power-law covariance
spectrum like Inception features' (eigenvalue i proportional to (i + 1) ** -1.2, total variance 100) and
a mean shift of norm 1 between them, so the population FID is known in closed form (baseline). The real
side keeps ``--num_real`` samples; the generated side is evaluated at each ``--sizes`` count, several
seeds each. FID comes from :class:`FrechetInceptionDistance`, KID from :class:`KernelInceptionDistance`
(torch-fidelity's defaults: 100 subsets of 1000).

    python benchmarks/metric_bias.py [--sizes 1000 5000 10000 50000] [--seeds 3] [--num_real 50000]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lightning_gan.metrics.fid import FrechetInceptionDistance, _frechet_distance
from lightning_gan.metrics.kid import KernelInceptionDistance

DIM = 2048


def _spectrum(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random orthogonal basis and power-law eigenvalues (variance 100 in all)."""
    values = (torch.arange(DIM, dtype=torch.float64) + 1) ** -1.2
    values *= 100.0 / values.sum()
    basis, _ = torch.linalg.qr(torch.randn(DIM, DIM, dtype=torch.float64, generator=generator))
    return basis, values


def _draw(n: int, mean: torch.Tensor, factor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (torch.randn(n, DIM, generator=generator) @ factor + mean).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000, 50000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num_real", type=int, default=50000)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    basis, values = _spectrum(generator)
    real_factor = (basis * values.sqrt()).T.float()  # x = z @ (U diag(sqrt(l)))^T has covariance U diag(l) U^T
    # The generated distribution: the same basis, eigenvalues 20% off in alternating directions, mean shifted.
    fake_values = values * torch.where(torch.arange(DIM) % 2 == 0, 1.2, 0.8).double()
    fake_factor = (basis * fake_values.sqrt()).T.float()
    shift = torch.zeros(DIM, dtype=torch.float64)
    shift[0] = 1.0
    exact = float(
        _frechet_distance(torch.zeros(DIM, dtype=torch.float64), basis @ torch.diag(values) @ basis.T,
                          shift, basis @ torch.diag(fake_values) @ basis.T)
    )
    real = _draw(args.num_real, torch.zeros(DIM), real_factor, generator)
    fid = FrechetInceptionDistance(DIM)
    fid.update(real, real=True)
    mean, covariance, count = fid.real_statistics()
    print(f"population FID (closed form): {exact:.4f}; real set: {count} samples")
    print(f"{'generated':>10} {'FID mean':>10} {'FID - exact':>12} {'KID mean':>10} {'seconds':>8}")
    rows = []
    for size in args.sizes:
        fids, kids = [], []
        start = time.perf_counter()
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(1000 + seed)
            fake = _draw(size, shift.float(), fake_factor, g)
            metric = FrechetInceptionDistance(DIM)
            metric.set_real_statistics(mean, covariance, count)
            metric.update(fake, real=False)
            fids.append(float(metric.compute()))
            kid = KernelInceptionDistance(subsets=100, subset_size=min(1000, size), seed=seed)
            kid.set_real_features(real)
            kid.update(fake, real=False)
            kids.append(float(kid.compute()[0]))
        seconds = (time.perf_counter() - start) / args.seeds
        fid_mean, kid_mean = sum(fids) / len(fids), sum(kids) / len(kids)
        rows.append({"generated": size, "fid": fid_mean, "fid_bias": fid_mean - exact, "kid": kid_mean,
                     "seconds_per_evaluation": seconds})
        print(f"{size:>10} {fid_mean:>10.4f} {fid_mean - exact:>12.4f} {kid_mean:>10.5f} {seconds:>8.1f}")
    by_size = {row["generated"]: row for row in rows}
    if 5000 in by_size and 50000 in by_size:
        ratio = by_size[5000]["fid_bias"] / max(by_size[50000]["fid_bias"], 1e-12)
        print(f"FID at 5k exceeds FID at 50k by {by_size[5000]['fid'] - by_size[50000]['fid']:.4f} "
              f"(bias ratio {ratio:.1f}x, ~1/N predicts 10x)")
    print(json.dumps({"benchmark": "metric_bias", "exact_fid": exact, "num_real": args.num_real, "rows": rows}))


if __name__ == "__main__":
    main()
