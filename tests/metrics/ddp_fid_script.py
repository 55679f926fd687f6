"""Feeds FrechetInceptionDistance uneven shards on 2 gloo processes; rank 0 writes what each rank computed.

Run by tests/metrics/test_fid.py in a subprocess: ``python ddp_fid_script.py OUT.json INIT_FILE``.
Every rank rebuilds the same global features from a seed and takes its own, unevenly sized share
(rank 0: 101 real / 40 fake, rank 1: 57 real / 23 fake), fed in chunks of different sizes so the
ranks also make different numbers of ``update`` calls.
"""

from __future__ import annotations

import json
import sys

SHARDS = {"real": (101, 57), "fake": (40, 23)}
DIM = 6


def global_features() -> dict:
    import torch

    generator = torch.Generator().manual_seed(7)
    real = torch.randn(sum(SHARDS["real"]), DIM, generator=generator) * 2.0 + 1.0
    fake = torch.randn(sum(SHARDS["fake"]), DIM, generator=generator) @ torch.randn(DIM, DIM, generator=generator)
    return {"real": real, "fake": fake}


def shard(features, sizes, rank):
    start = sum(sizes[:rank])
    return features[start : start + sizes[rank]]


def worker(rank: int, world: int, out_path: str, init_file: str) -> None:
    import torch.distributed as dist

    from lightning_gan.metrics.fid import FrechetInceptionDistance

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        features = global_features()
        metric = FrechetInceptionDistance(num_features=DIM)
        chunk = 30 if rank == 0 else 11
        for side in ("real", "fake"):
            for part in shard(features[side], SHARDS[side], rank).split(chunk):
                metric.update(part, real=side == "real")
        value = metric.compute().item()
        # The callback's path: fix the synchronised real statistics, reset, feed the generated side again.
        mean, cov, count = metric.real_statistics()
        metric.reset()
        metric.set_real_statistics(mean, cov, count)
        for part in shard(features["fake"], SHARDS["fake"], rank).split(chunk):
            metric.update(part, real=False)
        fixed_value = metric.compute().item()
        report = {"rank": rank, "value": value, "fixed_value": fixed_value, "real_count": count}
        gathered: list = [None] * world
        dist.all_gather_object(gathered, report)
        if rank == 0:
            with open(out_path, "w") as handle:
                json.dump(gathered, handle)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    import lightning_gan.metrics.fid  # noqa: F401  (imported once here; the forked ranks inherit it)

    # "fork" rather than spawn: the ranks start in milliseconds instead of re-importing torch and torchmetrics.
    mp.start_processes(worker, args=(2, sys.argv[1], sys.argv[2]), nprocs=2, join=True, start_method="fork")
