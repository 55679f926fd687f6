"""Feeds FID, KID, IS and precision/recall uneven shards on 2 gloo processes; rank 0 writes what each rank computed.

Run by tests/metrics/test_kid.py in a subprocess: ``python ddp_feature_metrics_script.py OUT.json INIT_FILE``.
Every rank rebuilds the same global features from a seed and takes its own contiguous share (rank 0
the first block): rank 0 holds **no** real features and never calls ``update(..., real=True)``, rank 1
holds no logits and never calls the Inception Score's ``update``; the ranks feed chunks of different
sizes, so they also make different numbers of ``update`` calls. Collectives time out after 30 s, so a
hang fails instead of waiting forever.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

SHARDS = {"real": (0, 150), "fake": (70, 33), "logits": (41, 0)}
DIM, CLASSES = 8, 10
KID_ARGS = dict(subsets=10, subset_size=40, seed=3)
ISC_ARGS = dict(splits=4)
PRC_ARGS = dict(k=3, batch_size=32)  # several distance blocks


def global_data() -> dict:
    import torch

    generator = torch.Generator().manual_seed(11)
    real = torch.randn(sum(SHARDS["real"]), DIM, generator=generator)
    fake = 0.6 * torch.randn(sum(SHARDS["fake"]), DIM, generator=generator) + 0.7
    logits = 3.0 * torch.randn(sum(SHARDS["logits"]), CLASSES, generator=generator)
    return {"real": real, "fake": fake, "logits": logits}


def shard(features, sizes, rank):
    start = sum(sizes[:rank])
    return features[start : start + sizes[rank]]


def worker(rank: int, world: int, out_path: str, init_file: str) -> None:
    import torch
    import torch.distributed as dist

    from lightning_gan.metrics.fid import FrechetInceptionDistance
    from lightning_gan.metrics.inception_score import InceptionScore
    from lightning_gan.metrics.kid import KernelInceptionDistance
    from lightning_gan.metrics.precision_recall import PrecisionRecall

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=30)
    )
    try:
        data = global_data()
        chunk = 30 if rank == 0 else 11
        parts = {side: list(shard(data[side], SHARDS[side], rank).split(chunk)) for side in SHARDS}
        kid, isc, prc = KernelInceptionDistance(**KID_ARGS), InceptionScore(**ISC_ARGS), PrecisionRecall(**PRC_ARGS)
        fid = FrechetInceptionDistance(DIM)
        fid_parts = {side: list(shard(data[side], SHARDS[side], rank).split(chunk)) for side in ("real", "fake")}
        for side, pieces in fid_parts.items():  # rank 0 never adds a real feature: its sums stay zero
            for part in pieces:
                fid.update(part, real=side == "real")

        def feed(real_too: bool) -> None:
            for side in ("real", "fake") if real_too else ("fake",):
                for part in parts[side]:  # empty on rank 0 for "real": no update call at all
                    kid.update(part, real=side == "real")
                    prc.update(part, real=side == "real")
            for part in parts["logits"]:  # empty on rank 1
                isc.update(part)

        def values() -> dict:
            kid_mean, kid_std = kid.compute()
            isc_mean, isc_std = isc.compute()
            pr = prc.compute()
            return {
                "kid_mean": kid_mean.item(), "kid_std": kid_std.item(), "isc_mean": isc_mean.item(),
                "isc_std": isc_std.item(), "precision": pr["precision"].item(), "recall": pr["recall"].item(),
            }

        feed(real_too=True)
        report = {"rank": rank, **values(), "fid": fid.compute().item()}

        # The callback's path: take the gathered real features (to cache them), fix them, evaluate again.
        real = kid.real_features()
        report["real_count"] = len(real)
        report["real_features_equal"] = bool(torch.equal(real, data["real"])) and bool(
            torch.equal(prc.real_features(), data["real"])
        )
        for metric in (kid, isc, prc):
            metric.reset()
        kid.set_real_features(real)
        prc.set_real_features(real)
        feed(real_too=False)
        report.update({f"fixed_{key}": value for key, value in values().items()})

        # A non-finite feature on one rank only: every rank must raise, none may hang.
        broken = KernelInceptionDistance(**KID_ARGS)
        broken.update(data["real"], real=True)
        fake = shard(data["fake"], SHARDS["fake"], rank).clone()
        if rank == 1:
            fake[0, 0] = float("nan")
        broken.update(fake, real=False)
        try:
            broken.compute()
            report["nonfinite_error_raised"] = False
        except ValueError as err:
            report["nonfinite_error_raised"] = "NaN" in str(err)

        gathered: list = [None] * world
        dist.all_gather_object(gathered, report)
        if rank == 0:
            with open(out_path, "w") as handle:
                json.dump(gathered, handle)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    import lightning_gan.metrics.inception_score  # noqa: F401  (imported once here; the forked ranks inherit it)
    import lightning_gan.metrics.kid  # noqa: F401
    import lightning_gan.metrics.precision_recall  # noqa: F401

    # "fork" rather than spawn: the ranks start in milliseconds instead of re-importing torch and torchmetrics.
    mp.start_processes(worker, args=(2, sys.argv[1], sys.argv[2]), nprocs=2, join=True, start_method="fork")
