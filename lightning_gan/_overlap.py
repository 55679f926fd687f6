"""Averaging one optimizer's gradients across processes bucket by bucket while its backward still runs.

``GANDDPStrategy`` averages a network's gradients in one all-reduce after its backward. DDP instead
starts each bucket's all-reduce as soon as the backward has produced every gradient in it, so
communication hides behind the rest of the backward. This does the same from parameter hooks
(``register_post_accumulate_grad_hook``), without DDP's module wrapper, for one backward at a time:
the strategy opens a round around a backward (``begin``/``end``) and waits for it before clipping and
stepping (``finish``).

Every rank launches the same collectives in the same order, whatever its backward produced: buckets
are launched strictly in order, and at ``finish`` the ones not launched yet (a parameter that got no
gradient on this rank contributes zeros, as in the synchronous path) are launched too. A gradient that
grows again after its bucket was sent (a second backward in the same round) has its bucket averaged
again, synchronously, at ``finish``, on every rank (the ranks agree on which buckets in one small
all-reduce), so the result always equals the synchronous average.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor

# DDP's defaults: a small first bucket, so communication starts early in the backward, then 25 MB buckets.
FIRST_BUCKET_BYTES = 1 << 20
BUCKET_BYTES = 25 << 20


class OverlappedGradientAverage:
    """Averages the gradients of ``params`` over all processes, launching bucket all-reduces during the backward."""

    def __init__(self, params: list[Tensor], bucket_bytes: int = BUCKET_BYTES,
                 first_bucket_bytes: int = FIRST_BUCKET_BYTES) -> None:
        self._params = list(params)
        self._bucket_bytes = bucket_bytes
        self._first_bucket_bytes = first_bucket_bytes
        self._buckets: list[list[Tensor]] = []
        self._bucket_of: dict[int, int] = {}
        self._layout: Optional[tuple[int, ...]] = None
        self._open = False
        self._in_round = False
        #: Buckets sent while a backward was still running (the overlap), over all rounds so far.
        self.sent_during_backward = 0
        self._reset()
        self._handles = [p.register_post_accumulate_grad_hook(self._accumulated) for p in self._params]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def num_buckets(self) -> int:
        return len(self._buckets)

    @property
    def in_round(self) -> bool:
        """Whether a round was begun and not finished yet."""
        return self._in_round

    def begin(self) -> None:
        """Opens a round: gradients produced from now on are sent as their buckets fill."""
        if not self._in_round:
            self._plan()
            self._in_round = True
        self._open = True

    def end(self) -> None:
        """Stops sending; gradients produced after this are averaged at :meth:`finish`."""
        self._open = False

    def finish(self) -> None:
        """Sends what is left, waits for every bucket and writes the averages into the gradients."""
        self._open = False
        world_size = dist.get_world_size()
        for index in range(self._next_bucket, len(self._buckets)):
            self._launch(index)
        # Which buckets grew after they were sent, on any rank: one more small collective, so that every rank
        # re-sends the same buckets (a rank sends a bucket early only when all its gradients arrived, which
        # can differ between ranks).
        dirty = torch.zeros(len(self._buckets), device=self._buckets[0][0].device if self._buckets else "cpu")
        for index in self._dirty:
            dirty[index] = 1
        dist.all_reduce(dirty, op=dist.ReduceOp.MAX)
        for (index, flat, work), resend in zip(self._launched, dirty.tolist()):
            work.wait()
            bucket = self._buckets[index]
            if resend:  # average what the gradients hold now (every rank's holds its whole sum by now)
                flat = torch._utils._flatten_dense_tensors([p.grad for p in bucket])
                dist.all_reduce(flat)
            flat.div_(world_size)
            for param, averaged in zip(bucket, torch._utils._unflatten_dense_tensors(flat, bucket)):
                param.grad.copy_(averaged)
        self._reset()
        self._in_round = False

    # ------------------------------------------------------------------ internals

    def _reset(self) -> None:
        self._missing = [len(bucket) for bucket in self._buckets]
        self._seen: set[int] = set()
        self._dirty: set[int] = set()
        self._launched: list[tuple[int, Tensor, dist.Work]] = []
        self._next_bucket = 0

    def _plan(self) -> None:
        # The parameters that train in this round (toggling freezes the others), in reverse order: the
        # backward reaches the last layers first. Buckets hold one dtype each. Rebuilt when the set changes.
        trained = [p for p in self._params if p.requires_grad]
        layout = tuple(id(p) for p in trained)
        if layout == self._layout:
            self._reset()
            return
        self._layout = layout
        self._buckets, size, limit = [], 0, self._first_bucket_bytes
        for param in reversed(trained):
            nbytes = param.numel() * param.element_size()
            if self._buckets and size + nbytes <= limit and self._buckets[-1][0].dtype == param.dtype:
                self._buckets[-1].append(param)
                size += nbytes
            else:
                if self._buckets:
                    limit = self._bucket_bytes
                self._buckets.append([param])
                size = nbytes
        self._bucket_of = {id(p): index for index, bucket in enumerate(self._buckets) for p in bucket}
        self._reset()

    def _accumulated(self, param: Tensor) -> None:
        index = self._bucket_of.get(id(param))
        if not self._in_round or index is None:
            return
        if id(param) in self._seen:
            if index < self._next_bucket:
                self._dirty.add(index)
            return
        self._seen.add(id(param))
        self._missing[index] -= 1
        if not self._open:
            return
        while self._next_bucket < len(self._buckets) and self._missing[self._next_bucket] == 0:
            self._launch(self._next_bucket)
            self.sent_during_backward += 1

    def _launch(self, index: int) -> None:
        assert index == self._next_bucket, "buckets are sent in order, so every rank sends the same sequence"
        bucket = self._buckets[index]
        for param in bucket:
            if param.grad is None:  # no gradient on this rank: contributes zeros, like the synchronous path
                param.grad = torch.zeros_like(param)
        # A copy even for a one-tensor bucket (where flattening would return a view of the gradient): a later
        # backward may add to the gradient while the all-reduce still writes into the buffer.
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])
        self._launched.append((index, flat, dist.all_reduce(flat, async_op=True)))
        self._next_bucket += 1
