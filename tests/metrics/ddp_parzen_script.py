"""ParzenLogLikelihood synced over 2 CPU processes (gloo): each rank scores its own, unequal shard of x.

Run by tests/metrics/test_parzen.py in a subprocess. Usage: ``python ddp_parzen_script.py OUT.json``;
rank 0 writes every rank's synced result.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def problem():
    """The data every rank (and the single-process reference in the test) uses."""
    import torch

    g = torch.Generator().manual_seed(7)
    # float64 and offset from 0: the merge of the ranks' (count, mean, M2) states is then checked to ~1e-12
    # relative, with a mean large beside the spread at the widest sigma.
    x = torch.randn(75, 6, generator=g, dtype=torch.float64) + 20.0
    centres = torch.randn(40, 6, generator=g, dtype=torch.float64) + 20.0
    return x, centres, [0.3, 0.6, 1.2, 100.0]


def _run(rank: int, world_size: int, port: int, out_path: str) -> None:
    import torch.distributed as dist

    from lightning_gan.metrics.parzen import ParzenLogLikelihood

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        x, centres, sigmas = problem()
        shard = x[:30] if rank == 0 else x[30:]  # unequal shards: 30 and 45 points
        metric = ParzenLogLikelihood(sigmas=sigmas, chunk_size=16)
        metric.set_centres(centres)
        for part in shard.split(20):
            metric.update(part)
        result = metric.compute()
        metric.sync()  # the summed count, as compute saw it
        count = int(metric.count.item())
        metric.unsync()
        report = {
            "rank": rank,
            "count": count,
            "log_likelihood": result["log_likelihood"].tolist(),
            "stderr": result["stderr"].tolist(),
            "best_sigma": result["best_sigma"].item(),
        }
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
    # This process is rank 0 and spawns only rank 1: one interpreter start (and torch import) fewer.
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
