"""FID during training: embed the real set once, then generated samples at the end of validation epochs."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any, Optional, Union

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from typing_extensions import override

from lightning_gan.metrics.fid import (
    INCEPTION_NAME,
    FrechetInceptionDistance,
    InceptionFeatureExtractor,
    RealStatisticsCache,
    extract_features,
    extractor_fingerprint,
    extractor_name,
)

__all__ = ["FIDCallback"]

_REAL_SPLITS = ("val", "train")
_LOG_KEY = "val/fid"

# Lightning advises `sync_dist=True` for every epoch-level value logged under DDP (when it collects the
# epoch's metrics, outside any call of ours). The FID is already identical on every rank, so the advice
# does not apply; silence it for this one key only.
warnings.filterwarnings("ignore", message=rf"It is recommended to use `self\.log\('{_LOG_KEY}'")


class FIDCallback(pl.Callback):
    """Logs ``val/fid``, the Fréchet distance between the real set and ``num_samples`` generated samples.

    **When.** At the end of validation (so the module needs a validation loop: a ``validation_step``
    and a validation dataloader), in epochs where ``(epoch + 1) % every_n_epochs == 0``; never during
    the sanity check. ``trainer.validate()`` always evaluates.

    **Real set.** The validation data (``real_images="val"``) or the training data (``"train"``),
    embedded once, on the first evaluation, by iterating the dataloader Lightning prepared, in full
    (``limit_val_batches`` does not shorten it): under DDP each rank embeds its own shard and the
    metric's float64 sums make the union exact. (Lightning's ``DistributedSampler`` pads the shards to
    equal length by repeating up to ``world_size - 1`` samples, as it does for validation itself.) Its
    mean and covariance are then kept for the later evaluations of the same ``fit``/``validate`` call.
    With ``cache_dir`` they are also stored on disk
    (:class:`~lightning_gan.metrics.fid.RealStatisticsCache`, keyed by ``dataset_name``, the split, the
    extractor and the sha256 of its weights); a later run that finds them never embeds the real set.
    Rank 0 reads the cache and broadcasts, so ranks agree even without a shared disk.

    **Generated set.** Samples come from ``pl_module.generate(n)``, which uses the moving-average
    generator when the module has one, in chunks of ``batch_size``. Rank ``r`` of ``W`` draws
    ``num_samples // W`` samples, plus one if ``r < num_samples % W``, so exactly ``num_samples`` are
    drawn in all. Latents are drawn from ``seed + r`` under a forked RNG: the same latents at every
    evaluation (less noise between epochs), different ones on each rank, and training's random stream
    untouched.

    **Value.** Computed in float64 from the synchronised sums, so it is the same on every rank and
    logged with ``sync_dist=False``; also kept as :attr:`last_value`. Not computed: KID and the
    Inception Score. KID's unbiased estimator needs pairwise kernel values between samples, which no
    fixed-size sum state gives exactly (its cubic kernel would need a ``d**3`` state), and a list state
    gathers ragged tensors across ranks; use ``torch_fidelity.calculate_metrics`` offline for those.

    **Extractor.** ``"inception-v3-compat"`` builds
    :class:`~lightning_gan.metrics.fid.InceptionFeatureExtractor` (torch-fidelity's network and resize;
    data and samples in [-1, 1] or uint8); any ``nn.Module`` mapping a batch of samples to ``(N, d)``
    features works too. It is built in :meth:`setup`, so missing weights fail before training starts,
    moved to the training device, kept in eval mode and run without gradients. It is held by the
    callback, not the LightningModule, so it never enters the module's ``state_dict`` or checkpoints.

    Args:
        num_samples: Generated samples per evaluation (>= 2; 10,000 or 50,000 for reported numbers).
        every_n_epochs: Evaluate every this many epochs.
        feature_extractor: ``"inception-v3-compat"`` or an ``nn.Module`` producing ``(N, d)`` features.
        weights_path: Local InceptionV3 weights (else ``LIGHTNING_GAN_INCEPTION_WEIGHTS`` or the download).
        batch_size: Samples generated and embedded at a time.
        real_images: ``"val"`` or ``"train"``: the dataloader whose samples are the real set.
        cache_dir: Directory of the real-statistics cache; ``None`` disables it.
        dataset_name: Names the real data in the cache key; required with ``cache_dir``.
        seed: Base seed of the evaluation latents.

    Raises:
        ValueError: For ``num_samples < 2``, ``every_n_epochs < 1``, ``batch_size < 1``, an unknown
            extractor name or split, or ``cache_dir`` without ``dataset_name``.
        TypeError: If ``feature_extractor`` is neither a string nor an ``nn.Module``; at setup if the
            module has no ``generate(n)``.
        lightning_gan.metrics.fid.InceptionWeightsNotFoundError: At setup, if the Inception weights
            are missing and cannot be downloaded.

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
    ) -> None:
        super().__init__()
        _check_int("num_samples", num_samples, 2, " (a covariance needs two samples)")
        _check_int("every_n_epochs", every_n_epochs, 1)
        _check_int("batch_size", batch_size, 1)
        if isinstance(feature_extractor, str):
            if feature_extractor != INCEPTION_NAME:
                raise ValueError(
                    f"`feature_extractor` must be {INCEPTION_NAME!r} or an nn.Module, got {feature_extractor!r}."
                )
        elif not isinstance(feature_extractor, nn.Module):
            raise TypeError(
                f"`feature_extractor` must be {INCEPTION_NAME!r} or an nn.Module, "
                f"got {type(feature_extractor).__name__}."
            )
        if real_images not in _REAL_SPLITS:
            raise ValueError(f"`real_images` must be one of {_REAL_SPLITS}, got {real_images!r}.")
        if cache_dir is not None and not dataset_name:
            raise ValueError(
                "`cache_dir` needs `dataset_name` (e.g. 'mnist'): the cache key must tell data sets apart, and a "
                "name guessed from the data module could make two data sets share statistics."
            )
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path
        self.batch_size = batch_size
        self.real_images = real_images
        self.cache_dir = cache_dir
        self.dataset_name = dataset_name
        self.seed = seed
        #: The FID of the latest evaluation (a float), or ``None`` before the first one.
        self.last_value: Optional[float] = None
        self._extractor: Optional[nn.Module] = None
        self._metric: Optional[FrechetInceptionDistance] = None

    # ------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        if not callable(getattr(pl_module, "generate", None)):
            raise TypeError(
                f"FIDCallback needs the module to draw samples with `generate(n)`; {type(pl_module).__name__} has none."
            )
        if self._extractor is None:
            if isinstance(self.feature_extractor, nn.Module):
                self._extractor = self.feature_extractor
            else:
                self._extractor = InceptionFeatureExtractor(weights_path=self.weights_path)
        # The module is not on its device yet at setup; the strategy's root device is where it goes.
        self._extractor.to(trainer.strategy.root_device).eval()
        # Each fit/validate call takes its real statistics afresh (or from the cache): the data may differ.
        self._metric = None

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._extractor is None:
            return
        if trainer.state.fn == "fit" and (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        value = self.evaluate(trainer, pl_module)
        # The metric synchronised its sums, so every rank holds the same value: no further reduction.
        pl_module.log(_LOG_KEY, value, sync_dist=False, rank_zero_only=False)

    # ------------------------------------------------------------------ the evaluation

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        """Computes the FID now (all ranks must call it) and returns it; does not log."""
        assert self._extractor is not None, "FIDCallback.evaluate runs after setup"
        device = pl_module.device
        self._extractor.to(device)
        rank, world = trainer.global_rank, trainer.world_size
        if self._metric is None:
            self._metric = FrechetInceptionDistance(self._feature_dim(pl_module)).to(device)
        metric = self._metric.to(device)
        if not metric.has_real_statistics:
            self._prepare_real_statistics(trainer, pl_module, metric)
        metric.reset()  # the generated side only; the real statistics are fixed
        local = self.num_samples // world + (1 if rank < self.num_samples % world else 0)
        with _seeded(device, self.seed + rank):
            for n in _chunks(local, self.batch_size):
                metric.update(self._embed(pl_module.generate(n)), real=False)
        # An empty update so a rank with no samples (num_samples < world size) still counts as updated;
        # every rank then makes the same collectives in compute.
        metric.update(torch.empty(0, metric.num_features, device=device), real=False)
        value = metric.compute()
        metric.reset()
        self.last_value = float(value)
        return self.last_value

    def _feature_dim(self, pl_module: pl.LightningModule) -> int:
        extractor = self._extractor
        dim = getattr(extractor, "num_features", None)
        if isinstance(dim, int):
            return dim
        # Probe with one sample: every rank learns d, even one whose real shard is empty.
        with _seeded(pl_module.device, self.seed):
            return int(self._embed(pl_module.generate(1)).shape[1])

    def _prepare_real_statistics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, metric: FrechetInceptionDistance
    ) -> None:
        cache = RealStatisticsCache(self.cache_dir) if self.cache_dir is not None else None
        key = None
        stats = None
        if cache is not None:
            key = cache.key(
                self.dataset_name, self.real_images, extractor_name(self._extractor),
                extractor_fingerprint(self._extractor), metric.num_features,
            )
            stats = cache.load(key) if trainer.is_global_zero else None
            stats = trainer.strategy.broadcast(stats, src=0)
        if stats is None:
            for images in self._real_batches(trainer, pl_module):
                for chunk in images.split(self.batch_size):
                    metric.update(self._embed(chunk), real=True)
            metric.update(torch.empty(0, metric.num_features, device=pl_module.device), real=True)
            stats = metric.real_statistics()  # synchronised: every rank gets the union's statistics
            if cache is not None and key is not None and trainer.is_global_zero:
                try:
                    cache.save(key, *stats)
                except OSError as err:
                    warnings.warn(f"FIDCallback could not write the real-statistics cache in {self.cache_dir}: {err}")
        metric.reset()
        metric.set_real_statistics(*stats)

    def _real_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Iterator[Tensor]:
        loaders = trainer.val_dataloaders if self.real_images == "val" else trainer.train_dataloader
        loader = _first_loader(loaders)
        if loader is None:
            raise ValueError(
                f"FIDCallback(real_images={self.real_images!r}) found no {self.real_images} dataloader to take real "
                "samples from."
            )
        for batch in loader:
            batch = trainer.strategy.batch_to_device(batch)
            yield _real_from_batch(pl_module, batch)

    def _embed(self, images: Tensor) -> Tensor:
        images = images.detach()
        bad = None
        if images.is_floating_point():
            bad = ~torch.isfinite(images.reshape(len(images), -1)).all(dim=1)
            images = torch.nan_to_num(images, nan=0.0, posinf=0.0, neginf=0.0)
        features = extract_features(self._extractor, images)
        if bad is not None:
            # Non-finite samples become non-finite features: the metric counts them and compute raises on
            # every rank, where raising here, on one rank, would leave the others waiting forever.
            features = torch.where(bad[:, None].to(features.device), torch.full_like(features, float("nan")), features)
        return features


# ---------------------------------------------------------------------------------------------- helpers


def _check_int(name: str, value: Any, minimum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}{why}, got {value!r}.")


def _chunks(total: int, size: int) -> Iterator[int]:
    """Chunk sizes of ``size`` (the last one smaller) adding up to ``total``."""
    for start in range(0, total, size):
        yield min(size, total - start)


def _first_loader(loaders: Any) -> Any:
    if isinstance(loaders, (list, tuple)):
        return loaders[0] if loaders else None
    if isinstance(loaders, dict):
        return next(iter(loaders.values()), None)
    return loaders


def _real_from_batch(pl_module: pl.LightningModule, batch: Any) -> Tensor:
    hook = getattr(pl_module, "real_from_batch", None)
    if callable(hook):
        return hook(batch)
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("image"), Tensor):
        return batch["image"]
    raise TypeError(f"FIDCallback cannot find the samples in a batch of type {type(batch).__name__}.")


@contextlib.contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Seeds the CPU generator and ``device``'s inside a forked RNG, restoring both afterwards."""
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
