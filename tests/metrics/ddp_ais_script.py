"""AISLogLikelihood synced over 2 CPU processes (gloo): each rank scores an unequal shard of the points.

Run by tests/metrics/test_ais.py in a subprocess. Usage: ``python ddp_ais_script.py OUT.json``; rank 0 writes
every rank's synced result.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def problem():
    """The generator, points and metric options every rank (and the single-process reference) uses."""
    import torch
    from torch import nn

    torch.manual_seed(3)
    generator = nn.Sequential(nn.Linear(3, 24), nn.Tanh(), nn.Linear(24, 30))
    x = torch.randn(21, 30) * 0.5
    return generator, x, dict(latent_dim=3, sigmas=[0.2, 0.5], num_steps=40, num_chains=4, seed=5)


def _run(rank: int, world_size: int, port: int, out_path: str) -> None:
    import torch
    import torch.distributed as dist

    from lightning_gan.metrics import AISLogLikelihood

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        generator, x, kwargs = problem()
        ids = torch.arange(len(x))
        # Unequal shards, interleaved so no rank holds a contiguous block: 11 and 10 points.
        mine = ids[rank::world_size]
        metric = AISLogLikelihood(generator=generator, **kwargs)
        for part in mine.split(4):
            metric.update(x[part], point_ids=part)
        result = metric.compute()
        metric.sync()
        count = int(metric.count.item())
        metric.unsync()
        report = {"rank": rank, "count": count, "log_likelihood": result["log_likelihood"].tolist(),
                  "stderr": result["stderr"].tolist()}
        gathered: list = [None] * world_size
        dist.all_gather_object(gathered, report)
        if rank == 0:
            with open(out_path, "w") as handle:
                json.dump(gathered, handle)
    finally:
        dist.destroy_process_group()


def main(out_path: str) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    other = mp.get_context("spawn").Process(target=_run, args=(1, 2, port, out_path))
    other.start()
    try:
        _run(0, 2, port, out_path)
    finally:
        other.join(timeout=60)
    if other.exitcode != 0:
        raise SystemExit(f"rank 1 exited with code {other.exitcode}")


if __name__ == "__main__":
    main(sys.argv[1])
