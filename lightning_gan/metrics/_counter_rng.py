"""A counter-based random stream: every draw is a pure function of ``(seed, point, chain, stream, step, index)``.

AIS needs each test point's chains to draw the same numbers wherever the point is processed (which
process of a DDP run holds it, which batch it shares with others), so that sharding the points changes
nothing but the order of a sum. ``torch.Generator`` is a sequential stream: its numbers depend on how
much was drawn before, so one generator per point would need a Python loop over points at every step.
Hashing a counter gives independent, reproducible numbers for all rows in one batched tensor operation,
on any device, with no state to carry between steps.

The hash is Wellons' ``lowbias32`` (a 32-bit integer finaliser with near-ideal avalanche), evaluated in
int64 with the 32-bit products split into 16-bit halves so no intermediate overflows: results are the
same on every device and equal to the pure-Python evaluation of the same formula.
"""

from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

__all__ = ["combine", "mix32", "normals", "row_keys", "uniforms"]

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_TWO_POW_32 = float(2**32)

IntLike = Union[int, Tensor]


def _mul32(x: IntLike, constant: int) -> IntLike:
    """``x * constant mod 2**32`` for ``0 <= x < 2**32``, with every intermediate below ``2**49``."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK


def mix32(x: IntLike) -> IntLike:
    """Wellons' ``lowbias32`` finaliser of a 32-bit value (a Python int or an int64 tensor in ``[0, 2**32)``).

    Example:
        >>> mix32(1) == int(mix32(torch.tensor(1)))
        True
    """
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def combine(key: IntLike, value: IntLike) -> IntLike:
    """A new 32-bit key from ``key`` and a non-negative ``value`` (values of 2**32 and above fold in both halves)."""
    low = value & _MASK
    high = value >> 32
    key = mix32(key ^ mix32((low + _GOLDEN) & _MASK))
    if isinstance(high, Tensor) or high:
        key = mix32(key ^ mix32((high + 2 * _GOLDEN) & _MASK))
    return key


def row_keys(seed: int, point_ids: Tensor, num_chains: int) -> Tensor:
    """Keys of shape ``(points, chains)``: one per (point, chain), independent of the other points."""
    if point_ids.dtype != torch.int64:
        point_ids = point_ids.long()
    if (point_ids < 0).any():
        raise ValueError("point ids must be >= 0.")
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}.")
    seed_key = combine(0x5EED, seed)
    per_point = combine(torch.full_like(point_ids, seed_key), point_ids)
    chains = torch.arange(num_chains, device=point_ids.device, dtype=torch.int64)
    return combine(per_point[:, None], chains[None, :])


def _bits(keys: Tensor, stream: int, step: int, count: int) -> Tensor:
    """``(rows, count)`` 32-bit values for the given keys at ``(stream, step)``."""
    base = combine(combine(keys, stream), step)
    index = mix32(torch.arange(count, device=keys.device, dtype=torch.int64) + 0x632BE5AB)
    # Two rounds: the first spreads the index over the key, the second decorrelates neighbouring indices.
    return mix32(mix32(base[:, None] ^ index[None, :]) ^ base[:, None])


def uniforms(keys: Tensor, stream: int, step: int, count: int = 1) -> Tensor:
    """float64 uniforms in the open interval (0, 1), shape ``(rows, count)``."""
    return (_bits(keys, stream, step, count).to(torch.float64) + 0.5) / _TWO_POW_32


def normals(keys: Tensor, stream: int, step: int, count: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normals of shape ``(rows, count)`` by the Box-Muller transform (computed in float64).

    The uniforms are 32-bit, so the largest magnitude is ``sqrt(2 ln 2**33) ~ 6.8``: a tail of probability
    ~1e-11 per draw is cut, far below anything an estimate of this package can resolve.
    """
    u = uniforms(keys, stream, step, 2 * count)
    radius = torch.sqrt(-2.0 * torch.log(u[:, :count]))
    return (radius * torch.cos(2.0 * math.pi * u[:, count:])).to(dtype)
