"""Bucketed averaging during the backward (``GANDDPStrategy(overlap_communication=True)``) on 2 gloo processes.

Its result must equal the synchronous average bitwise, also when a parameter gets no gradient on one
rank only (that rank sends its buckets later than the other) and when a second backward adds to
gradients whose bucket was already sent.
"""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lightning_gan import GANDDPStrategy
from lightning_gan._overlap import OverlappedGradientAverage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _synchronous_average(params: list[torch.Tensor]) -> None:
    # gan_ddp's default path: one bucketed all-reduce after the backward.
    GANDDPStrategy().all_reduce_gradients(torch.optim.SGD(params, lr=0.0))


def _worker(rank: int, port: int, results: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        head = nn.Linear(2, 2)  # trained on rank 0 only: its bucket (the first: reversed order) fills on rank 0 only
        params = [*net.parameters(), *head.parameters()]
        averager = OverlappedGradientAverage(params, bucket_bytes=4096, first_bucket_bytes=1024)
        x = torch.randn(8, 4) * (rank + 1)

        def backward() -> None:
            out = net(x)
            loss = out.pow(2).mean() + (head(out).sum() if rank == 0 else 0)
            loss.backward()

        outcome = {}
        for name, backwards in (("one backward", 1), ("two backwards", 2), ("one backward again", 1)):
            for p in params:
                p.grad = None
            for _ in range(backwards):
                backward()
            _synchronous_average(params)
            expected = [p.grad.clone() for p in params]
            for p in params:
                p.grad = None
            averager.begin()
            for _ in range(backwards):
                backward()
            averager.end()
            averager.finish()
            outcome[name] = [torch.equal(p.grad, e) for p, e in zip(params, expected)]
        outcome["buckets"] = averager.num_buckets
        outcome["sent_during_backward"] = averager.sent_during_backward
        results[rank] = outcome
    finally:
        dist.destroy_process_group()


def test_overlapped_average_equals_the_synchronous_one_bitwise_whatever_the_backwards():
    with mp.Manager() as manager:
        results = manager.dict()
        # fork: the workers inherit the imported modules (spawn would re-import torch and Lightning in each, ~8 s)
        mp.start_processes(_worker, args=(_free_port(), results), nprocs=2, start_method="fork")
        results = dict(results)
    for rank in (0, 1):
        for name in ("one backward", "two backwards", "one backward again"):
            assert all(results[rank][name]), (rank, name, results[rank][name])
        assert results[rank]["buckets"] >= 3
    # Rank 0's buckets filled during its backwards; rank 1's first bucket never did (no gradient for the
    # head there), so it sent everything at the end, in the same order.
    assert results[0]["sent_during_backward"] >= results[0]["buckets"] and results[1]["sent_during_backward"] == 0
