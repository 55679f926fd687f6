"""FID during training: :class:`GenerativeMetricsCallback` with FID alone, under its familiar name."""

from __future__ import annotations

import os
from typing import Optional, Union

from torch import nn

from lightning_gan.callbacks.generative_metrics import GenerativeMetricsCallback
from lightning_gan.metrics.fid import INCEPTION_NAME

__all__ = ["FIDCallback"]


class FIDCallback(GenerativeMetricsCallback):
    """Logs ``val/fid``, the Fréchet distance between the real set and ``num_samples`` generated samples.

    Everything :class:`~lightning_gan.callbacks.GenerativeMetricsCallback` says holds (the real set read
    in full, in a fixed order, sharded without padding; the cache checked against the data; the same
    latents at every evaluation; ``value_range``); only the metric is fixed to FID. Add KID, the
    Inception Score and precision/recall from the same feature pass with
    ``GenerativeMetricsCallback(metrics=("fid", "kid", "is", "pr"))``.

    Args:
        num_samples: Generated samples per evaluation (>= 2; 10,000 or 50,000 for reported numbers).
        every_n_epochs: Evaluate every this many epochs.
        feature_extractor: A torch-fidelity extractor name (default ``"inception-v3-compat"``) or an
            ``nn.Module`` producing ``(N, d)`` features.
        weights_path: Local weights of a named extractor (else its environment variable or the download).
        batch_size: Samples generated and embedded at a time.
        real_images: ``"val"`` or ``"train"``: whose dataset is the real set.
        cache_dir: Directory of the real-statistics cache; ``None`` disables it.
        dataset_name: Names the real data in the cache key; required with ``cache_dir``.
        seed: Base seed of the evaluation latents.
        value_range: The range of float images, data and samples (``(0, 1)`` for a sigmoid generator).

    Raises:
        ValueError: For ``num_samples < 2``, ``every_n_epochs < 1``, ``batch_size < 1``, an unknown
            extractor name or split, ``cache_dir`` without ``dataset_name``, or a bad ``value_range``.
        TypeError: If ``feature_extractor`` is neither a string nor an ``nn.Module``; at setup if the
            module has no ``generate(n)``.
        lightning_gan.metrics.fid.InceptionWeightsNotFoundError: At setup, if the weights are missing
            and cannot be downloaded.

    Example:
        >>> callback = FIDCallback(num_samples=64, batch_size=32, feature_extractor=nn.Flatten())
        >>> callback.num_samples, callback.last_value
        (64, None)
        >>> FIDCallback(num_samples=1)
        Traceback (most recent call last):
        ...
        ValueError: `num_samples` must be an integer >= 2 (a covariance needs two samples), got 1.
    """

    def __init__(
        self,
        num_samples: int = 10000,
        every_n_epochs: int = 1,
        feature_extractor: Union[str, nn.Module] = INCEPTION_NAME,
        weights_path: Optional[Union[str, os.PathLike]] = None,
        batch_size: int = 250,
        real_images: str = "val",
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        dataset_name: Optional[str] = None,
        seed: int = 0,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__(
            metrics=("fid",),
            num_samples=num_samples,
            every_n_epochs=every_n_epochs,
            feature_extractor=feature_extractor,
            weights_path=weights_path,
            batch_size=batch_size,
            real_images=real_images,
            cache_dir=cache_dir,
            dataset_name=dataset_name,
            seed=seed,
            value_range=value_range,
        )

    @property
    def last_value(self) -> Optional[float]:
        """The FID of the latest evaluation, or ``None`` before the first one."""
        return self.last_values.get("val/fid")
