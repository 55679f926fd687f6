"""FID, KID, Inception Score and precision/recall during training, all from one pass through the extractor."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import Metric
from typing_extensions import override

from lightning_gan.callbacks._evaluation import (
    _Bounds,
    _check_int,
    _check_range,
    _chunks,
    _first_loader,
    _gather_in_rank_order,
    _real_from_batch,
    _seeded,
)
from lightning_gan.data.sharding import FixedOrderShards
from lightning_gan.metrics.cache import RealStatisticsCache
from lightning_gan.metrics.features import FeatureExtractor, extractor_names, metric_layer
from lightning_gan.metrics.fid import INCEPTION_NAME, FrechetInceptionDistance, extract_features, extractor_fingerprint, extractor_name
from lightning_gan.metrics.inception_score import InceptionScore
from lightning_gan.metrics.kid import KernelInceptionDistance
from lightning_gan.metrics.precision_recall import PrecisionRecall

__all__ = ["METRICS", "GenerativeMetricsCallback"]

#: The metrics the callback computes, by the names ``metrics=`` takes.
METRICS = ("fid", "kid", "is", "pr")
_REAL_SPLITS = ("val", "train")
# torch-fidelity's names of the metrics, for the layer each one reads.
_FIDELITY_NAMES = {"fid": "fid", "kid": "kid", "is": "isc", "pr": "prc"}
_LOG_KEYS = {
    "fid": ("val/fid",),
    "kid": ("val/kid_mean", "val/kid_std"),
    "is": ("val/is_mean", "val/is_std"),
    "pr": ("val/precision", "val/recall"),
}

# Lightning advises `sync_dist=True` for every epoch-level value logged under DDP. These values are
# computed from synchronised states and are identical on every rank, so the advice does not apply.
for _keys in _LOG_KEYS.values():
    for _key in _keys:
        warnings.filterwarnings("ignore", message=rf"It is recommended to use `self\.log\('{_key}'")


class GenerativeMetricsCallback(pl.Callback):
    """Logs FID, KID, Inception Score and precision/recall of generated samples, from one feature pass.

    Each generated batch goes through the extractor **once**; its pool features feed FID, KID and
    precision/recall, and its logits the Inception Score (torch-fidelity's layer for each metric, see
    :func:`~lightning_gan.metrics.features.metric_layer`). Logged keys: ``val/fid``; ``val/kid_mean``,
    ``val/kid_std``; ``val/is_mean``, ``val/is_std``; ``val/precision``, ``val/recall`` (those of the
    chosen ``metrics``). All values are computed from states synchronised across processes, so they are
    the same on every rank; they are also kept in :attr:`last_values`.

    **When.** At the end of validation in epochs where ``(epoch + 1) % every_n_epochs == 0`` (never in
    the sanity check); ``trainer.validate()`` always evaluates.

    **Real set.** The dataset behind the validation (``real_images="val"``) or training (``"train"``)
    loader, read **in full and in index order** by the callback itself
    (:class:`~lightning_gan.data.FixedOrderShards`): not the training loader's shuffled, ``drop_last``
    batches, and under DDP not Lightning's padded ``DistributedSampler`` shards. Process ``r`` embeds a
    contiguous block, so every real sample counts exactly once and the union is the single-process set.
    The result is kept for later evaluations in the same ``fit``/``validate`` call, and with
    ``cache_dir`` on disk (:class:`~lightning_gan.metrics.RealStatisticsCache`): keyed on
    ``dataset_name``, the split, the extractor and the sha256 of its weights, and checked against a
    fingerprint and the count of the data, so a name reused for other data recomputes (with a warning)
    instead of reusing stale statistics.

    **Generated set.** ``num_samples`` samples from ``pl_module.generate(n)`` (the moving-average
    generator when there is one), ``num_samples // W`` per rank (the first ``num_samples % W`` one
    more), in chunks of ``batch_size``, with latents from ``seed + rank`` under a forked RNG: the same
    latents at every evaluation, and training's random stream untouched.

    **Pixels.** Samples and real images are floats in ``value_range`` (``(-1, 1)`` for ``tanh``
    generators, ``(0, 1)`` for ``sigmoid`` ones) or uint8; they are mapped to the 0..255 pixels the
    extractor was trained on. Values outside ``value_range`` by more than half a pixel raise
    ``ValueError`` naming the observed range (on every rank together), and real images that never go
    below the middle of the range get a warning that ``value_range`` is probably wrong.

    **Extractor.** A name from torch-fidelity's registry (``"inception-v3-compat"``, the default and
    the network behind published FIDs; ``"vgg16"``, on which precision/recall was defined;
    ``"clip-vit-b-32"``; ``"dinov2-vit-l-14"`` for FD_DINOv2) builds a
    :class:`~lightning_gan.metrics.features.FeatureExtractor` in :meth:`setup`, so missing weights
    fail before training starts. Any ``nn.Module`` mapping images to ``(N, d)`` works too: its output
    then feeds every metric (the Inception Score reads it as class logits). The extractor is held by
    the callback, never by the module's ``state_dict``.

    **Cost.** KID and precision/recall keep the features themselves: ``N * d * 4`` bytes per side
    (50,000 x 2048 float32 = 400 MB), gathered to every rank under DDP; precision/recall's k-NN radii
    cost ``O(N^2 d)``. FID and IS alone keep only sums and logits.

    Args:
        metrics: Which of ``"fid"``, ``"kid"``, ``"is"``, ``"pr"`` to compute.
        num_samples: Generated samples per evaluation (10,000 or 50,000 for reported numbers).
        every_n_epochs: Evaluate every this many epochs.
        feature_extractor: A torch-fidelity extractor name or an ``nn.Module`` giving ``(N, d)``.
        weights_path: Local weights of a named extractor (else its environment variable or the download).
        batch_size: Samples generated and embedded at a time.
        real_images: ``"val"`` or ``"train"``: whose dataset is the real set.
        cache_dir: Directory of the real-set cache; ``None`` disables it.
        dataset_name: Names the real data in the cache key; required with ``cache_dir``.
        seed: Base seed of the evaluation latents.
        value_range: The range of float images (data and samples).
        kid_subsets: KID's number of subsets (torch-fidelity's default 100).
        kid_subset_size: KID's subset size (default 1000; at most the size of either set).
        is_splits: Inception Score's number of splits (default 10).
        pr_k: The k of precision/recall's k-NN manifolds (default 3).

    Raises:
        ValueError: For an unknown metric, extractor name or split; counts below their minimum;
            ``cache_dir`` without ``dataset_name``; a bad ``value_range``.
        TypeError: If ``feature_extractor`` is neither a string nor an ``nn.Module``; at setup if the
            module has no ``generate(n)``.
        lightning_gan.metrics.fid.InceptionWeightsNotFoundError: At setup, if a named extractor's
            weights are missing and cannot be downloaded.

    Example:
        >>> callback = GenerativeMetricsCallback(metrics=("fid", "kid"), num_samples=64, kid_subset_size=32,
        ...     feature_extractor=nn.Flatten())
        >>> callback.metrics, callback.last_values
        (('fid', 'kid'), {})
        >>> GenerativeMetricsCallback(metrics=("fid", "lpips"))
        Traceback (most recent call last):
        ...
        ValueError: `metrics` must be names from ('fid', 'kid', 'is', 'pr'), got 'lpips'.
    """

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
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
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        pr_k: int = 3,
    ) -> None:
        super().__init__()
        if isinstance(metrics, str):
            metrics = (metrics,)
        for name in metrics:
            if name not in METRICS:
                raise ValueError(f"`metrics` must be names from {METRICS}, got {name!r}.")
        if not metrics:
            raise ValueError(f"`metrics` must name at least one of {METRICS}.")
        _check_int("num_samples", num_samples, 2, " (a covariance needs two samples)")
        for name, value in (("every_n_epochs", every_n_epochs), ("batch_size", batch_size),
                            ("kid_subsets", kid_subsets), ("is_splits", is_splits), ("pr_k", pr_k)):
            _check_int(name, value, 1)
        _check_int("kid_subset_size", kid_subset_size, 2)
        if "kid" in metrics and kid_subset_size > num_samples:
            raise ValueError(
                f"`kid_subset_size` ({kid_subset_size}) must not exceed `num_samples` ({num_samples}): each KID subset "
                "is drawn from the generated samples without replacement."
            )
        if isinstance(feature_extractor, str):
            if feature_extractor not in extractor_names():
                raise ValueError(
                    f"`feature_extractor` must be one of {extractor_names()} or an nn.Module, got {feature_extractor!r}."
                )
        elif not isinstance(feature_extractor, nn.Module):
            raise TypeError(
                f"`feature_extractor` must be an extractor name (e.g. {INCEPTION_NAME!r}) or an nn.Module, "
                f"got {type(feature_extractor).__name__}."
            )
        if real_images not in _REAL_SPLITS:
            raise ValueError(f"`real_images` must be one of {_REAL_SPLITS}, got {real_images!r}.")
        if cache_dir is not None and not dataset_name:
            raise ValueError(
                "`cache_dir` needs `dataset_name` (e.g. 'mnist'): the cache key must tell data sets apart, and a "
                "name guessed from the data module could make two data sets share statistics."
            )
        low, high = _check_range(value_range)
        self.metrics = tuple(dict.fromkeys(metrics))
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path
        self.batch_size = batch_size
        self.real_images = real_images
        self.cache_dir = cache_dir
        self.dataset_name = dataset_name
        self.seed = seed
        self.value_range = (low, high)
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.is_splits = is_splits
        self.pr_k = pr_k
        #: The values of the latest evaluation by log key (e.g. ``{"val/fid": 12.3}``); empty before one.
        self.last_values: dict[str, float] = {}
        #: What the latest evaluation measured on: sample counts, split, extractor, weights hash.
        self.protocol: dict[str, Any] = {}
        #: Called with the number of samples just embedded on this rank (a progress bar's ``update``).
        self.progress: Optional[Callable[[int], Any]] = None
        self._extractor: Optional[nn.Module] = None
        self._metrics: Optional[dict[str, Metric]] = None
        self._dims: dict[Optional[str], int] = {}
        self._real_ready = False

    # ------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        if not callable(getattr(pl_module, "generate", None)):
            raise TypeError(
                f"{type(self).__name__} needs the module to draw samples with `generate(n)`; "
                f"{type(pl_module).__name__} has none."
            )
        self._build_extractor()
        assert self._extractor is not None
        # The module is not on its device yet at setup; the strategy's root device is where it goes.
        self._extractor.to(trainer.strategy.root_device).eval()
        # Each fit/validate call takes its real set afresh (or from the cache): the data may differ.
        self._metrics = None
        self._real_ready = False

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._extractor is None:
            return
        if trainer.state.fn == "fit" and (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        values = self.evaluate(trainer, pl_module)
        for key, value in values.items():
            # Computed from synchronised states: the same on every rank, so no further reduction.
            pl_module.log(key, value, sync_dist=False, rank_zero_only=False)

    # ------------------------------------------------------------------ the evaluation

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, progress: Optional[Callable[[int], Any]] = None
    ) -> dict[str, float]:
        """Computes the metrics now (every rank must call it) and returns them by log key; does not log.

        Args:
            trainer: The trainer (for the rank, world size and real dataloader).
            pl_module: The module whose ``generate(n)`` draws the samples.
            progress: Called with the number of samples just embedded on this rank; default
                :attr:`progress` (the standalone evaluator sets a progress bar's ``update`` there).
        """
        progress = progress if progress is not None else self.progress
        self._build_extractor()
        assert self._extractor is not None
        device = pl_module.device
        self._extractor.to(device)
        rank, world = trainer.global_rank, trainer.world_size
        metrics = self._ensure_metrics(pl_module)
        if not self._real_ready:
            self._prepare_real(trainer, pl_module, metrics)
        for metric in metrics.values():
            metric.reset()  # the generated side only; the real side is fixed
        local = self.num_samples // world + (1 if rank < self.num_samples % world else 0)
        bounds = _Bounds()
        with _seeded(device, self.seed + rank):
            for n in _chunks(local, self.batch_size):
                images = pl_module.generate(n).detach()
                bounds.add(images)
                self._update(metrics, self._embed(images), real=False)
                if progress is not None:
                    progress(n)
        self._update(metrics, self._empty_features(device), real=False)
        bounds.check(self.value_range, "generated samples", device)
        values: dict[str, float] = {}
        if "fid" in metrics:
            values["val/fid"] = float(metrics["fid"].compute())
        if "kid" in metrics:
            mean, std = metrics["kid"].compute()
            values["val/kid_mean"], values["val/kid_std"] = float(mean), float(std)
        if "is" in metrics:
            mean, std = metrics["is"].compute()
            values["val/is_mean"], values["val/is_std"] = float(mean), float(std)
        if "pr" in metrics:
            result = metrics["pr"].compute()
            values["val/precision"], values["val/recall"] = float(result["precision"]), float(result["recall"])
        for metric in metrics.values():
            metric.reset()
        self.last_values = values
        self.protocol["num_samples"] = self.num_samples
        return values

    # ------------------------------------------------------------------ pieces

    def _build_extractor(self) -> None:
        if self._extractor is not None:
            return
        if isinstance(self.feature_extractor, nn.Module):
            self._extractor = self.feature_extractor
        else:
            # Only the layers the chosen metrics read (FID alone does not need the logits).
            layers = dict.fromkeys(metric_layer(_FIDELITY_NAMES[m], self.feature_extractor) for m in self.metrics)
            self._extractor = FeatureExtractor(
                self.feature_extractor, layers=tuple(layers), weights_path=self.weights_path,
                value_range=self.value_range,
            )

    def _layers(self) -> dict[str, Optional[str]]:
        """The extractor output each metric reads: a layer name, or ``None`` for a plain-tensor extractor."""
        if isinstance(self._extractor, FeatureExtractor):
            return {m: metric_layer(_FIDELITY_NAMES[m], self._extractor.extractor_name) for m in self.metrics}
        return {m: None for m in self.metrics}

    def _ensure_metrics(self, pl_module: pl.LightningModule) -> dict[str, Metric]:
        if self._metrics is not None:
            return self._metrics
        self._dims = dims = self._feature_dims(pl_module)
        layers = self._layers()
        built: dict[str, Metric] = {}
        for name in self.metrics:
            dim = dims[layers[name]]
            if name == "fid":
                built[name] = FrechetInceptionDistance(dim)
            elif name == "kid":
                built[name] = KernelInceptionDistance(subsets=self.kid_subsets, subset_size=self.kid_subset_size)
            elif name == "is":
                built[name] = InceptionScore(splits=self.is_splits)
            else:
                built[name] = PrecisionRecall(k=self.pr_k)
        self._metrics = {name: metric.to(pl_module.device) for name, metric in built.items()}
        return self._metrics

    def _feature_dims(self, pl_module: pl.LightningModule) -> dict[Optional[str], int]:
        dims = getattr(self._extractor, "num_features", None)
        if isinstance(dims, dict):
            return dict(dims)
        if isinstance(dims, int):
            return {None: dims}
        # Probe with one sample: every rank learns d, even one whose real shard is empty.
        with _seeded(pl_module.device, self.seed):
            features = self._embed(pl_module.generate(1).detach())
        return {layer: int(t.shape[1]) for layer, t in features.items()}

    def _embed(self, images: Tensor) -> dict[Optional[str], Tensor]:
        """Features of ``images`` by layer (``None`` for a plain-tensor extractor), from one forward pass."""
        bad = None
        if images.is_floating_point():
            bad = ~torch.isfinite(images.reshape(len(images), -1)).all(dim=1)
            images = torch.nan_to_num(images, nan=0.0, posinf=0.0, neginf=0.0)
        if isinstance(self._extractor, FeatureExtractor):
            with torch.no_grad():
                outputs: dict[Optional[str], Tensor] = dict(self._extractor(images))
        else:
            outputs = {None: extract_features(self._extractor, images)}
        if bad is not None and bool(bad.any()):
            # Non-finite samples become non-finite features: the metrics count them and raise in compute
            # on every rank, where raising here, on one rank, would leave the others waiting forever.
            mask = bad[:, None].to(next(iter(outputs.values())).device)
            outputs = {k: torch.where(mask, torch.full_like(v, float("nan")), v) for k, v in outputs.items()}
        return outputs

    def _empty_features(self, device: torch.device) -> dict[Optional[str], Tensor]:
        # An empty update on every rank, so a rank with no samples still makes the same collectives.
        return {layer: torch.empty(0, dim, device=device) for layer, dim in self._dims.items()}

    def _update(self, metrics: dict[str, Metric], features: dict[Optional[str], Tensor], real: bool) -> None:
        layers = self._layers()
        for name, metric in metrics.items():
            x = features[layers[name]]
            if name == "is":
                if not real:
                    metric.update(x)
            else:
                metric.update(x, real=real)

    def _prepare_real(self, trainer: pl.Trainer, pl_module: pl.LightningModule, metrics: dict[str, Metric]) -> None:
        shards = self._real_shards(trainer)
        rank, world = trainer.global_rank, trainer.world_size
        real_metrics = {name: m for name, m in metrics.items() if name != "is"}
        if not real_metrics:
            self._real_ready = True
            return
        need_features = any(name in real_metrics for name in ("kid", "pr"))
        layer = self._layers()[next(iter(real_metrics))]
        dim = self._dims[layer]
        fingerprint = shards.fingerprint()
        count = len(shards)
        self.protocol.update(
            real_split=self.real_images,
            real_count=count,
            real_fingerprint=fingerprint,
            extractor=extractor_name(self._extractor),
            weights_sha256=extractor_fingerprint(self._extractor),
            layers={name: layer_name for name, layer_name in self._layers().items()},
            value_range=list(self.value_range),
        )
        cache = RealStatisticsCache(self.cache_dir) if self.cache_dir is not None else None
        key = None
        cached = None
        if cache is not None:
            key = cache.key(
                str(self.dataset_name), self.real_images, extractor_name(self._extractor),
                extractor_fingerprint(self._extractor), dim,
            )
            cached = cache.load(key, fingerprint, count, need_features) if trainer.is_global_zero else None
            cached = trainer.strategy.broadcast(cached, src=0)
        self.protocol["real_from_cache"] = cached is not None
        if cached is None:
            fid = FrechetInceptionDistance(dim).to(pl_module.device)
            features_seen: list[Tensor] = []
            bounds = _Bounds()
            for batch in shards.batches(rank, world):
                images = _real_from_batch(pl_module, trainer.strategy.batch_to_device(batch)).detach()
                for chunk in images.split(self.batch_size):
                    bounds.add(chunk)
                    x = self._embed(chunk)[layer]
                    fid.update(x, real=True)
                    if need_features:
                        features_seen.append(x.float())
            bounds.check(self.value_range, "real images", pl_module.device, real=True)
            fid.update(torch.empty(0, dim, device=pl_module.device), real=True)
            mean, covariance, total = fid.real_statistics()  # synchronised: the union's statistics
            features = None
            if need_features:
                local = torch.cat(features_seen) if features_seen else torch.empty(0, dim, device=pl_module.device)
                features = _gather_in_rank_order(local, trainer).cpu()
            if cache is not None and key is not None and trainer.is_global_zero:
                try:
                    cache.save(key, fingerprint, mean, covariance, total, features)
                except OSError as err:
                    warnings.warn(f"{type(self).__name__} could not write the real-set cache in {self.cache_dir}: {err}")
        else:
            mean, covariance, total, features = cached
        for name, metric in real_metrics.items():
            metric.reset()
            if name == "fid":
                metric.set_real_statistics(mean, covariance, total)
            else:
                assert features is not None
                metric.set_real_features(features.to(pl_module.device))
        self._real_ready = True

    def _real_shards(self, trainer: pl.Trainer) -> FixedOrderShards:
        loaders = trainer.val_dataloaders if self.real_images == "val" else trainer.train_dataloader
        if self.real_images == "train" and loaders is None:
            # Outside fit (trainer.validate) the training loader is not built; ask the data for it.
            source = trainer.datamodule if trainer.datamodule is not None else trainer.lightning_module
            loaders = source.train_dataloader() if callable(getattr(source, "train_dataloader", None)) else None
        loader = _first_loader(loaders)
        if loader is None:
            raise ValueError(
                f"{type(self).__name__}(real_images={self.real_images!r}) found no {self.real_images} dataloader to "
                "take real samples from."
            )
        return FixedOrderShards(loader, self.batch_size)
