"""The real set's statistics (and, for KID and precision/recall, its features) cached on disk.

Embedding 50,000 real images costs more than most evaluations, so they are embedded once per data set
and network. A cache keyed only on a name the user gives goes stale when the data behind the name
change, so each file also records a fingerprint of the data (their size and a hash of samples at both
ends, :meth:`lightning_gan.data.FixedOrderShards.fingerprint`) and their count; a file whose
fingerprint or count differs from the data at hand is never used: the caller recomputes, with a warning
that says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import torch
from torch import Tensor

__all__ = ["CachedRealSet", "RealStatisticsCache"]


class CachedRealSet(NamedTuple):
    """What the cache holds for one real set: float64 moments, the count, and optionally the features."""

    mean: Tensor
    covariance: Tensor
    count: int
    features: Optional[Tensor] = None


class RealStatisticsCache:
    """The real set's ``(mean, covariance, count[, features])`` on disk, one file per data set and network.

    The file is chosen by :meth:`key`: the data set's name, the split, the extractor's name, the sha256
    of its weights and the feature dimension. torch-fidelity's own cache key leaves the weights out, so
    statistics from one network could be compared with features from another; here a different weights
    file is a different file. Inside, the file records the data's ``fingerprint`` and ``count``:
    :meth:`load` refuses (returns ``None`` and warns) when they differ from the data at hand, so reusing
    a name for other data recomputes instead of silently reusing. Files are written to a temporary file
    and renamed (``os.replace``), so a reader never sees half a file.

    Args:
        cache_dir: Directory of the cache files (created on the first save).

    Example:
        >>> import tempfile
        >>> cache = RealStatisticsCache(tempfile.mkdtemp())
        >>> key = cache.key("mnist", "val", "inception-v3-compat", "ab" * 32, 2)
        >>> cache.load(key, fingerprint="f1", count=100) is None
        True
        >>> _ = cache.save(key, "f1", torch.zeros(2), torch.eye(2), 100)
        >>> cache.load(key, fingerprint="f1", count=100).count
        100
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     stale = cache.load(key, fingerprint="f2", count=100)
        >>> stale is None, "recomputing" in str(caught[0].message)
        (True, True)
    """

    def __init__(self, cache_dir: Union[str, os.PathLike]) -> None:
        self.cache_dir = Path(cache_dir)

    @staticmethod
    def key(dataset: str, split: str, extractor: str, weights_sha256: str, num_features: int) -> dict[str, Any]:
        """The file's key: a dict of its parts (also stored in the file and checked on load)."""
        return {
            "dataset": str(dataset),
            "split": str(split),
            "extractor": str(extractor),
            "weights_sha256": str(weights_sha256),
            "num_features": int(num_features),
        }

    def path(self, key: dict[str, Any]) -> Path:
        """The file of ``key``: readable parts plus a hash of the whole key (sanitising may merge names)."""

        def clean(text: str) -> str:
            return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:48]

        digest = hashlib.sha256(repr(sorted(key.items())).encode()).hexdigest()[:16]
        parts = [clean(key["dataset"]), clean(key["split"]), clean(key["extractor"]), key["weights_sha256"][:12]]
        return self.cache_dir / f"fid-real-{'-'.join(parts)}-d{key['num_features']}-{digest}.pt"

    def load(
        self, key: dict[str, Any], fingerprint: str, count: int, need_features: bool = False
    ) -> Optional[CachedRealSet]:
        """The entry of ``key`` if it was written for these data, else ``None``.

        Args:
            key: From :meth:`key`.
            fingerprint: The fingerprint of the real data at hand.
            count: Their number of samples.
            need_features: Also require the stored features (KID, precision/recall need them).

        Returns ``None`` silently when there is no (readable) file, and with a ``UserWarning`` naming
        what differs when the file was written for other data or lacks the features.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt or foreign file is a miss; it is overwritten on save
            return None
        if not isinstance(stored, dict) or stored.get("key") != key:
            return None
        stored_count, stored_fingerprint = int(stored.get("count", -1)), stored.get("fingerprint")
        if stored_count != int(count) or stored_fingerprint != fingerprint:
            warnings.warn(
                f"The real-statistics cache {path} was written for other data under the name "
                f"{key['dataset']!r} ({stored_count} samples, fingerprint {str(stored_fingerprint)[:12]}; now "
                f"{int(count)} samples, fingerprint {fingerprint[:12]}): recomputing, and replacing the file.",
                UserWarning,
                stacklevel=2,
            )
            return None
        features = stored.get("features")
        if need_features and features is None:
            warnings.warn(
                f"The real-statistics cache {path} holds no features (KID and precision/recall need them): "
                "recomputing, and replacing the file.",
                UserWarning,
                stacklevel=2,
            )
            return None
        return CachedRealSet(stored["mean"], stored["covariance"], stored_count, features)

    def save(
        self,
        key: dict[str, Any],
        fingerprint: str,
        mean: Tensor,
        covariance: Tensor,
        count: int,
        features: Optional[Tensor] = None,
    ) -> Path:
        """Stores an entry atomically; returns the file's path."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "key": key,
            "fingerprint": str(fingerprint),
            "mean": mean.detach().cpu().to(torch.float64),
            "covariance": covariance.detach().cpu().to(torch.float64),
            "count": int(count),
        }
        if features is not None:
            payload["features"] = features.detach().cpu().to(torch.float32).contiguous()
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(payload, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path
