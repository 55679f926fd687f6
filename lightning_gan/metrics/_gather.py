"""The shared base of the metrics that need the feature vectors themselves (KID, Inception Score, precision/recall).

Unlike the FID, which needs only sums, these metrics index into the feature sets (seeded subsets,
nearest neighbours), so each rank keeps its features in list states (``dist_reduce_fx="cat"``) that are
gathered on :meth:`~torchmetrics.Metric.compute`. :class:`FeatureSetsMetric` makes that gather safe and
exact under DDP:

* **No rank waits forever.** torchmetrics gathers one tensor per list state, but a rank that never
  called ``update`` has an empty list, which it replaces by a 1-D ``torch.tensor([])``; its shape
  exchange then disagrees in rank with the others' ``(n, d)`` and the collective fails or hangs. Here
  every rank first learns the feature dimension of every side (one small ``all_gather``), then
  contributes exactly one ``(n_rank, d)`` tensor per side, ``n_rank`` possibly 0; the states are
  therefore gathered with the same collectives, in the same order, on every rank.
* **Rank order.** The gathered pieces are concatenated in rank order, so contiguous shards (rank 0 holds
  the first block, and so on) give back the single-process order, and metrics that draw seeded subsets
  or permutations of the set give the single-process value.
* **Errors on every rank.** Non-finite feature vectors are dropped and counted (float64 ``sum`` states);
  :meth:`compute` raises ``ValueError`` on every rank, as do size checks on the gathered sets, so no rank
  is left waiting in a collective the others skipped.
* **A fixed real side.** :meth:`set_real_features` fixes the real set (e.g. cached on disk); it survives
  :meth:`reset`, so one metric evaluates many sample sets against the same data.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

__all__ = ["FeatureSetsMetric"]


class FeatureSetsMetric(Metric):
    """A metric over one or more sets of ``(N, d)`` float32 feature vectors kept in full (see the module doc).

    Subclasses name their sets (``sides``) and read them with :meth:`_features`, which checks them.

    Args:
        sides: Names of the feature sets, e.g. ``("real", "fake")``.
        num_features: The dimension ``d`` if known; otherwise taken from the first features seen.
        **kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, sides: Sequence[str], num_features: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_features is not None and (
            isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1
        ):
            raise ValueError(f"`num_features` must be None or an integer >= 1, got {num_features!r}.")
        self.num_features = num_features
        self._sides = tuple(sides)
        for side in self._sides:
            self.add_state(f"features_{side}", default=[], dist_reduce_fx="cat")
            self.add_state(f"nonfinite_{side}", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        # Set by set_real_features; a plain attribute, not a state, so syncs and resets leave it alone.
        self._fixed_real: Optional[Tensor] = None

    # ------------------------------------------------------------------------------------------ updating

    def _known_dim(self, skip_real: bool = False) -> Optional[int]:
        if self.num_features is not None:
            return self.num_features
        if self._fixed_real is not None and not skip_real:
            return int(self._fixed_real.shape[1])
        for side in self._sides:
            if skip_real and side == "real":
                continue
            value = getattr(self, f"features_{side}")
            if isinstance(value, Tensor):
                return int(value.shape[1])
            if value:
                return int(value[0].shape[1])
        return None

    def _check_features(self, features: Tensor, what: str = "features", skip_real: bool = False) -> None:
        dim = self._known_dim(skip_real)
        width = "d" if dim is None else str(dim)
        if not isinstance(features, Tensor):
            raise TypeError(f"`{what}` must be a tensor of shape (N, {width}), got {type(features).__name__}.")
        if features.ndim != 2 or (dim is not None and features.shape[1] != dim):
            raise ValueError(
                f"`{what}` must have shape (N, {width}) (one vector per sample), got {tuple(features.shape)}."
            )

    def _add(self, side: str, features: Tensor, what: str = "features") -> None:
        """Stores the finite rows of ``features`` (as float32, on the metric's device) and counts the others."""
        self._check_features(features, what)
        if side == "real" and self._fixed_real is not None:
            raise ValueError(
                "The real features were fixed with `set_real_features`; call `clear_real_features()` before adding "
                "real features."
            )
        x = features.detach().to(device=self.device, dtype=torch.float32)
        finite = torch.isfinite(x).all(dim=1)
        # An empty (0, d) piece is kept too: it tells this rank the dimension even if it sees no samples.
        getattr(self, f"features_{side}").append(x if bool(finite.all()) else x[finite])
        name = f"nonfinite_{side}"
        setattr(self, name, getattr(self, name) + (~finite).sum())  # out of place: see FrechetInceptionDistance

    def forward(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Same as :meth:`update`; returns nothing, as these metrics of a single batch mean little."""
        self.update(*args, **kwargs)

    # --------------------------------------------------------------------------------------------- reading

    def _local(self, side: str) -> Optional[Tensor]:
        value = getattr(self, f"features_{side}")
        if isinstance(value, Tensor):  # synchronised: already concatenated
            return value
        if not value:
            return None
        if len(value) > 1:  # concatenate once and keep the result: later reads do not copy again
            value[:] = [torch.cat(value)]
        return value[0]

    def _features(self, side: str) -> Tensor:
        """The ``(N, d)`` float32 features of ``side`` (all processes' inside ``compute``); raises on non-finite ones."""
        if side == "real" and self._fixed_real is not None:
            return self._fixed_real.to(self.device)
        nonfinite = int(getattr(self, f"nonfinite_{side}").item())
        if nonfinite:
            raise ValueError(
                f"{nonfinite} {side} feature vector(s) held NaN or infinite values (the images or the extractor's "
                f"output are not finite); {type(self).__name__} is undefined."
            )
        local = self._local(side)
        if local is None:
            return torch.zeros(0, self._known_dim() or 0, device=self.device)
        return local

    def _counts(self) -> str:
        return ", ".join(f"{len(self._features(side))} {side}" for side in self._sides)

    # ------------------------------------------------------------------------------------------ real side

    def set_real_features(self, features: Tensor) -> None:
        """Fixes the real set to ``features`` ``(N, d)`` (e.g. loaded from a disk cache).

        Replaces any real features accumulated so far; kept across :meth:`reset` until
        :meth:`clear_real_features`. Under DDP give every rank the same, full set: it is not gathered.
        Stored as float32 on the metric's device.

        Raises:
            ValueError: If ``features`` is not ``(N, d)`` (``d`` = ``num_features`` when given) or holds
                NaN or infinite values.
        """
        if "real" not in self._sides:
            raise TypeError(f"{type(self).__name__} has no real side.")
        self._check_features(features, skip_real=True)  # a new real set may change d if nothing else fixes it
        if not bool(torch.isfinite(features).all()):
            raise ValueError("The real features must be finite.")
        self._fixed_real = features.detach().to(device=self.device, dtype=torch.float32).clone()
        self._clear_side("real")
        self._computed = None

    def _clear_side(self, side: str) -> None:
        setattr(self, f"features_{side}", [])
        setattr(self, f"nonfinite_{side}", torch.zeros((), dtype=torch.float64, device=self.device))

    def clear_real_features(self) -> None:
        """Drops features fixed by :meth:`set_real_features`; real features may be added again."""
        self._fixed_real = None
        self._computed = None

    @property
    def has_real_features(self) -> bool:
        """Whether :meth:`set_real_features` fixed the real side."""
        return self._fixed_real is not None

    def real_features(self) -> Tensor:
        """The real set ``(N, d)`` float32, over all processes (in rank order), e.g. to cache it on disk.

        Synchronises the states like :meth:`compute` (call it on every rank). Returns the fixed set if
        :meth:`set_real_features` gave one.

        Raises:
            ValueError: If a real feature vector was not finite.
        """
        if "real" not in self._sides:
            raise TypeError(f"{type(self).__name__} has no real side.")
        if self._fixed_real is not None:
            return self._fixed_real.to(self.device)
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self.sync_on_compute, should_unsync=True):
            return self._features("real").clone()

    def reset(self) -> None:
        """Clears the accumulated features (not those fixed by :meth:`set_real_features`)."""
        super().reset()

    # ----------------------------------------------------------------------------------------- DDP gather

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Optional[Any] = None) -> None:
        group = process_group or self.process_group
        local = {side: self._local(side) for side in self._sides}
        dims = torch.tensor(
            [-1 if local[side] is None else local[side].shape[1] for side in self._sides],
            dtype=torch.int64,
            device=self.device,
        )
        all_dims = torch.stack(list(dist_sync_fn(dims, group=group)))  # (world, sides), the same on every rank
        pieces = {}
        for i, side in enumerate(self._sides):
            seen = sorted({int(d) for d in all_dims[:, i].tolist() if d >= 0})
            if len(seen) > 1:  # every rank sees the same table, so every rank raises here
                raise ValueError(
                    f"The processes hold {side} features of different dimensions {seen} (per rank: "
                    f"{all_dims[:, i].tolist()}); every process must use the same extractor and layer."
                )
            dim = seen[0] if seen else (self._known_dim() or 0)
            value = local[side]
            pieces[side] = value if value is not None else torch.zeros(0, dim, device=self.device)
        for side in self._sides:  # exactly one (n_rank, d) tensor per side: the same collectives on every rank
            setattr(self, f"features_{side}", [pieces[side]])
        super()._sync_dist(dist_sync_fn, process_group)
