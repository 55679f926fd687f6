"""Gradient averaging under 2 processes: gan_ddp's one all-reduce after the backward vs DDP's overlapped buckets.

``GANDDPStrategy`` averages a network's gradients in one bucketed all-reduce once its backward has
finished; ``DistributedDataParallel`` (one wrapper per network, the way Lightning Fabric's DCGAN example
does it) starts each bucket's all-reduce while the backward goes on. Both sides here run the same
hand-written DCGAN step on the same process group (gloo on CPU, NCCL on CUDA), so the ratio isolates
the averaging. A third side averages as ``GANDDPStrategy(overlap_communication=True)`` does: bucket
by bucket from parameter hooks, during the backward. Goal: >= 0.95x the wrappers' steps/s.

    python benchmarks/ddp_overlap.py                     # 2 CPU processes, DCGAN-64 (features 32, batch 64)
    python benchmarks/ddp_overlap.py --device cuda       # needs 2 GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from lightning_gan import DCGAN
from lightning_gan._overlap import OverlappedGradientAverage
from lightning_gan.strategies import _coalesced_in_place

GOAL = 0.95


def average_after_backward(module: torch.nn.Module) -> None:
    """What gan_ddp does (GANDDPStrategy.all_reduce_gradients): one flat all-reduce per dtype."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    world = dist.get_world_size()

    def average(flat: torch.Tensor) -> None:
        dist.all_reduce(flat)
        flat.div_(world)

    _coalesced_in_place(grads, average)


AVERAGING_SECONDS: list[float] = []  # time gan_ddp's side spends averaging (the part overlap could hide)


def timed_steps(rank: int, args: argparse.Namespace, side: str) -> list[float]:
    wrapped, overlapped = side == "ddp_wrappers", side == "gan_ddp_overlap"
    device = torch.device(args.device, rank) if args.device == "cuda" else torch.device("cpu")
    torch.manual_seed(0)
    gan = DCGAN(image_shape=(3, args.size, args.size), latent_dim=100, features=args.features)
    generator, discriminator = gan.generator.to(device), gan.discriminator.to(device)
    if wrapped:
        # `broadcast_buffers=False`: batch-norm statistics stay per rank on both sides, as the step is what is timed.
        generator = DistributedDataParallel(generator, broadcast_buffers=False)  # noqa: deprecated name, kept for its init semantics
        discriminator = DistributedDataParallel(discriminator, broadcast_buffers=False)  # noqa: deprecated name, kept for its init semantics
    # What GANDDPStrategy(overlap_communication=True) does around each backward.
    averagers = [OverlappedGradientAverage(list(net.parameters())) for net in (discriminator, generator)] if overlapped else []
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(args.batch_size, 3, args.size, args.size, device=device) * 2 - 1
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        with torch.no_grad():
            fake = generator(torch.randn(args.batch_size, 100, device=device))
        loss_d = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        if overlapped:
            averagers[0].begin()
        loss_d.backward()
        if overlapped:
            averagers[0].finish()
        elif not wrapped:
            begin = time.perf_counter()
            average_after_backward(discriminator)
            AVERAGING_SECONDS.append(time.perf_counter() - begin)
        opt_d.step()
        # DDP needs every parameter used in every backward, so the discriminator is not frozen: its gradients
        # from the generator's loss are computed and dropped by its next zero_grad, on both sides alike.
        loss_g = F.softplus(-discriminator(generator(torch.randn(args.batch_size, 100, device=device)))).mean()
        opt_g.zero_grad(set_to_none=True)
        if overlapped:
            averagers[1].begin()
        loss_g.backward()
        if overlapped:
            averagers[1].finish()
        elif not wrapped:
            begin = time.perf_counter()
            average_after_backward(generator)
            AVERAGING_SECONDS[-1] += time.perf_counter() - begin
        opt_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    for averager in averagers:
        averager.remove()
    return times[len(times) // 5:]


def worker(rank: int, args: argparse.Namespace, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    torch.set_num_threads(args.threads)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo", rank=rank, world_size=2)
    try:
        per_side: dict[str, list[float]] = {"gan_ddp": [], "gan_ddp_overlap": [], "ddp_wrappers": []}
        for _ in range(args.repeats):  # interleaved
            for name in per_side:
                dist.barrier()
                per_side[name].append(statistics.median(timed_steps(rank, args, name)))
        if rank == 0:
            results.update({name: statistics.median(times) for name, times in per_side.items()})
            results["averaging"] = statistics.median(AVERAGING_SECONDS)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--port", type=int, default=29533)
    args = parser.parse_args()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args, results), nprocs=2)
        seconds = dict(results)
    ratio = seconds["ddp_wrappers"] / seconds["gan_ddp"]  # steps/s of gan_ddp over steps/s of the wrappers
    overlap_ratio = seconds["ddp_wrappers"] / seconds["gan_ddp_overlap"]
    print(f"DCGAN-{args.size} (features {args.features}, batch {args.batch_size}) on 2 {args.device} processes: "
          f"gan_ddp {1 / seconds['gan_ddp']:.2f} steps/s, DDP wrappers {1 / seconds['ddp_wrappers']:.2f} steps/s, "
          f"(gan_ddp averages for {seconds['averaging'] * 1e3:.0f} ms of its {seconds['gan_ddp'] * 1e3:.0f} ms step), "
          f"ratio {ratio:.3f}; gan_ddp(overlap_communication=True) {1 / seconds['gan_ddp_overlap']:.2f} steps/s, ratio "
          f"{overlap_ratio:.3f} (goal >= {GOAL}: {'MET' if max(ratio, overlap_ratio) >= GOAL else 'NOT MET'})")
    print(json.dumps({"benchmark": "ddp_overlap", "device": args.device, "size": args.size, "features": args.features,
                      "batch_size": args.batch_size, "gan_ddp_steps_per_s": 1 / seconds["gan_ddp"],
                      "ddp_wrappers_steps_per_s": 1 / seconds["ddp_wrappers"],
                      "gan_ddp_averaging_s_per_step": seconds["averaging"], "ratio": ratio,
                      "gan_ddp_overlap_steps_per_s": 1 / seconds["gan_ddp_overlap"], "overlap_ratio": overlap_ratio, "goal": GOAL}))


if __name__ == "__main__":
    main()
