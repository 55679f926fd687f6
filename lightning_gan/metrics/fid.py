r"""The Fréchet Inception Distance (Heusel et al., 2017) as a distributed-exact torchmetrics ``Metric``.

Real and generated samples are embedded by a feature extractor (by default torch-fidelity's
``inception-v3-compat``, the TF1 InceptionV3 behind the published numbers) and each set is summarised
by a Gaussian :math:`\mathcal N(\mu, \Sigma)`; the FID is the Fréchet distance between the two:

.. math:: \|\mu_r - \mu_g\|^2 + \operatorname{tr}\Sigma_r + \operatorname{tr}\Sigma_g
          - 2 \operatorname{tr}\big((\Sigma_r \Sigma_g)^{1/2}\big)

Pieces:

* :class:`FrechetInceptionDistance`: the metric. It takes **features**, not images, and keeps float64
  sums (count, :math:`\sum x`, :math:`\sum x x^\top`) so that the multi-process result is the exact
  single-process one whatever the shards' sizes.
* :class:`InceptionFeatureExtractor`: images to 2048-d features with torch-fidelity's network and its
  reference (TF1-compatible) resize; weights from ``weights_path``, the
  ``LIGHTNING_GAN_INCEPTION_WEIGHTS`` environment variable, or torch-fidelity's download.
* :func:`extract_features`: runs any extractor (any ``nn.Module`` mapping images to ``(N, d)``) and
  checks its output.
* :class:`~lightning_gan.metrics.cache.RealStatisticsCache` (in ``metrics/cache.py``): the real set's
  statistics on disk, keyed by the extractor's weights' hash and a fingerprint of the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn
from torchmetrics import Metric

__all__ = [
    "INCEPTION_NAME",
    "INCEPTION_WEIGHTS_URL",
    "WEIGHTS_ENV_VAR",
    "FrechetInceptionDistance",
    "InceptionFeatureExtractor",
    "InceptionWeightsNotFoundError",
    "default_inception_weights_path",
    "extract_features",
    "extractor_fingerprint",
    "extractor_name",
    "images_to_uint8",
    "resolve_inception_weights",
]

#: The environment variable naming a local copy of the InceptionV3 weights.
WEIGHTS_ENV_VAR = "LIGHTNING_GAN_INCEPTION_WEIGHTS"
#: torch-fidelity's name of its TF1-compatible InceptionV3 feature extractor.
INCEPTION_NAME = "inception-v3-compat"
#: Where torch-fidelity downloads the weights from (read from torch-fidelity when it is importable).
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
try:  # Follow torch-fidelity if a later release moves the file.
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3 as INCEPTION_WEIGHTS_URL  # noqa: F811
except ImportError:  # pragma: no cover - torch-fidelity is a dependency
    pass


# ---------------------------------------------------------------------------------------------- the metric


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    # Autocast leaves float64 alone, but say so explicitly: nothing in the statistics may run in bf16/fp16.
    if device_type in ("cpu", "cuda"):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _moments(count: Tensor, total: Tensor, outer: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased (``n - 1``) covariance from a count, a sum and a sum of outer products.

    ``sum(x x^T) - n mu mu^T`` cancels when the mean is large next to the spread; in float64, with
    features of O(1) (Inception's are in [0, ~10]), the relative error stays near 1e-12.
    """
    mean = total / count
    cov = (outer - count * torch.outer(mean, mean)) / (count - 1)
    return mean, (cov + cov.T) / 2  # exactly symmetric, as np.cov's is


def _frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    r"""The Fréchet distance of :math:`\mathcal N(\mu_1, \Sigma_1)` and :math:`\mathcal N(\mu_2, \Sigma_2)` (float64).

    :math:`\operatorname{tr}\sqrt{\Sigma_1\Sigma_2}` is the sum of the square roots of the eigenvalues
    of :math:`\Sigma_1\Sigma_2` (similar to the PSD :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}`, so they
    are real and >= 0 up to rounding). Taking complex square roots of the complex eigenvalues and
    keeping the real part makes rounding-level negative eigenvalues contribute 0 instead of NaN, which is
    what happens with fewer samples than dimensions (singular covariances), where
    ``scipy.linalg.sqrtm`` warns and can return complex or NaN entries. torch-fidelity 0.4 computes the
    same thing with NumPy. The eigenproblem is solved on the CPU (LAPACK, as NumPy does): a
    non-symmetric eigensolver gains little on a GPU, and the CPU path exists in every build.
    """
    mu1, sigma1, mu2, sigma2 = (t.to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    with _no_autocast(mu1.device.type):
        diff = mu1 - mu2
        product = (sigma1 @ sigma2).cpu()
        trace_sqrt = torch.linalg.eigvals(product).sqrt().real.sum().to(mu1.device)
        return diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2.0 * trace_sqrt


class FrechetInceptionDistance(Metric):
    r"""The FID between real and generated samples, from their **features** (any extractor).

    The metric never sees images: call :meth:`update` with ``(N, d)`` feature vectors from whatever
    extractor you use (:class:`InceptionFeatureExtractor` for the published FID), ``real=True`` for
    data and ``real=False`` for samples. :meth:`compute` returns a float64 scalar.

    **Why float64 sums.** Each side keeps ``count``, ``sum`` (``(d,)``) and ``outer`` (``(d, d)``,
    :math:`\sum x x^\top`), all float64 with ``dist_reduce_fx="sum"``: the sum of per-rank sums is the
    sum over the union, so the distributed result equals the single-process one whatever each rank's
    share, and ranks with different numbers of samples make the same collectives (a list state would
    gather ragged tensors instead). Features are cast to float64 *before* they are summed, so the
    value does not depend on the input dtype or on autocast (autocast never touches float64 ops); the
    sums also make memory independent of the number of samples.

    **Why not torchmetrics' FID.** It embeds images itself, with a resize that differs from
    torch-fidelity's reference one, and its result follows the autocast dtype under ``bf16-mixed``.
    This class keeps the statistics apart from the network, so any extractor (and a disk cache of the
    real side) plugs in.

    **Pre-computed real statistics.** :meth:`set_real_statistics` fixes the real side (e.g. from
    :class:`RealStatisticsCache`); it then survives :meth:`reset`, which clears accumulated features
    only, so one metric evaluates many sample sets against the same data. :meth:`real_statistics`
    returns the real side's mean, covariance and count, synchronised across processes.

    **Non-finite features** are never summed; they are counted, and :meth:`compute` raises
    ``ValueError`` on every rank. (Raising in :meth:`update` on the one rank that saw them would leave
    the others waiting forever in the next collective.)

    Args:
        num_features: Dimension ``d`` of the feature vectors (2048 for InceptionV3's pool features).
        **kwargs: Passed to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``, ``process_group``).

    Raises:
        ValueError: From :meth:`update` for features that are not 2-D or not ``num_features`` wide;
            from :meth:`compute` with fewer than 2 samples on either side or any non-finite feature.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> fid = FrechetInceptionDistance(num_features=4)
        >>> fid.update(torch.randn(500, 4), real=True)
        >>> fid.update(torch.randn(500, 4) + 1.0, real=False)
        >>> value = fid.compute()
        >>> value.dtype, round(value.item())  # about ||1||^2 = 4
        (torch.float64, 4)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    real_count: Tensor
    real_sum: Tensor
    real_outer: Tensor
    real_nonfinite: Tensor
    fake_count: Tensor
    fake_sum: Tensor
    fake_outer: Tensor
    fake_nonfinite: Tensor

    def __init__(self, num_features: int = 2048, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"`num_features` must be an integer >= 1, got {num_features!r}.")
        self.num_features = num_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{side}_outer", torch.zeros(num_features, num_features, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(f"{side}_nonfinite", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        # Set by set_real_statistics; plain attributes, not states, so syncs and resets leave them alone.
        self._fixed_real: Optional[tuple[Tensor, Tensor, int]] = None

    def update(self, features: Tensor, real: bool) -> None:  # type: ignore[override]
        """Adds ``(N, d)`` features of real (``real=True``) or generated samples; ``N`` may be 0."""
        if not isinstance(features, Tensor):
            raise TypeError(
                f"`features` must be a tensor of shape (N, {self.num_features}), got {type(features).__name__}."
            )
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"`features` must have shape (N, {self.num_features}) (one {self.num_features}-d vector per sample), "
                f"got {tuple(features.shape)}."
            )
        if real and self._fixed_real is not None:
            raise ValueError(
                "The real statistics were fixed with `set_real_statistics`; call `clear_real_statistics()` before "
                "adding real features."
            )
        side = "real" if real else "fake"
        state = getattr(self, f"{side}_sum")
        x = features.detach().to(device=state.device, dtype=torch.float64)
        with _no_autocast(x.device.type):
            finite = torch.isfinite(x).all(dim=1)
            x = torch.where(finite[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
            # Out-of-place updates: Lightning runs validation hooks under inference mode, and a state
            # replaced there must not be modified in place outside it later (or the other way round).
            setattr(self, f"{side}_count", getattr(self, f"{side}_count") + finite.sum())
            setattr(self, f"{side}_sum", state + x.sum(dim=0))
            setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + x.T @ x)
            setattr(self, f"{side}_nonfinite", getattr(self, f"{side}_nonfinite") + (~finite).sum())

    def forward(self, features: Tensor, real: bool) -> None:  # type: ignore[override]
        """Same as :meth:`update`; returns nothing, as the FID of a single batch means little."""
        self.update(features, real)

    def compute(self) -> Tensor:
        """The FID, a float64 scalar tensor (synchronised across processes by torchmetrics)."""
        mu_r, sigma_r, _ = self._statistics("real")
        mu_f, sigma_f, _ = self._statistics("fake")
        return _frechet_distance(mu_r, sigma_r, mu_f, sigma_f)

    def real_statistics(self) -> tuple[Tensor, Tensor, int]:
        """The real side's ``(mean, covariance, count)`` over all processes, float64.

        Synchronises the states like :meth:`compute` (call it on every rank). Raises ``ValueError``
        with fewer than 2 real samples or non-finite ones.
        """
        if self._fixed_real is not None:
            return self._statistics("real")
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=self.sync_on_compute, should_unsync=True
        ):
            return self._statistics("real")

    def set_real_statistics(self, mean: Tensor, covariance: Tensor, count: int) -> None:
        """Fixes the real side to a pre-computed mean ``(d,)``, covariance ``(d, d)`` and sample count.

        Replaces any real features accumulated so far; kept across :meth:`reset` until
        :meth:`clear_real_statistics`. The count is kept for reporting and the >= 2 check.
        """
        d = self.num_features
        mean, covariance = torch.as_tensor(mean), torch.as_tensor(covariance)
        if mean.shape != (d,) or covariance.shape != (d, d):
            raise ValueError(
                f"Expected a mean of shape ({d},) and a covariance of shape ({d}, {d}), got {tuple(mean.shape)} and "
                f"{tuple(covariance.shape)}."
            )
        count = int(count)
        if count < 2:
            raise ValueError(f"The real statistics need at least 2 samples, got a count of {count}.")
        if not (torch.isfinite(mean).all() and torch.isfinite(covariance).all()):
            raise ValueError("The real mean and covariance must be finite.")
        device = self.real_sum.device
        self._fixed_real = (
            mean.detach().to(device=device, dtype=torch.float64),
            covariance.detach().to(device=device, dtype=torch.float64),
            count,
        )
        for name in ("real_count", "real_sum", "real_outer", "real_nonfinite"):
            setattr(self, name, torch.zeros_like(getattr(self, name)))
        self._computed = None

    def clear_real_statistics(self) -> None:
        """Drops statistics fixed by :meth:`set_real_statistics`; real features may be added again."""
        self._fixed_real = None
        self._computed = None

    @property
    def has_real_statistics(self) -> bool:
        """Whether :meth:`set_real_statistics` fixed the real side."""
        return self._fixed_real is not None

    def _statistics(self, side: str) -> tuple[Tensor, Tensor, int]:
        if side == "real" and self._fixed_real is not None:
            mean, cov, count = self._fixed_real
            device = self.real_sum.device
            return mean.to(device), cov.to(device), count
        nonfinite = int(getattr(self, f"{side}_nonfinite").item())
        count = int(getattr(self, f"{side}_count").item())
        if nonfinite:
            raise ValueError(
                f"{nonfinite} {side} feature vector(s) held NaN or infinite values (the images or the extractor's "
                "output are not finite); the FID is undefined."
            )
        if count < 2:
            real_n = self._fixed_real[2] if self._fixed_real is not None else int(self.real_count.item())
            raise ValueError(
                f"The FID needs at least 2 real and 2 generated samples to estimate covariances, got {real_n} real "
                f"and {int(self.fake_count.item())} generated."
            )
        mean, cov = _moments(
            getattr(self, f"{side}_count"), getattr(self, f"{side}_sum"), getattr(self, f"{side}_outer")
        )
        return mean, cov, count


# ------------------------------------------------------------------------------------------ feature extraction


class InceptionWeightsNotFoundError(FileNotFoundError):
    """The InceptionV3 weights are neither on disk nor downloadable; the message says where to put them."""


def default_inception_weights_path() -> Path:
    """Where torch-fidelity's download lands: ``<torch hub dir>/checkpoints/<file name of the URL>``.

    Example:
        >>> default_inception_weights_path().name
        'weights-inception-2015-12-05-6726825d.pth'
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(INCEPTION_WEIGHTS_URL)


def resolve_inception_weights(weights_path: Union[str, os.PathLike, None] = None) -> Path:
    """The local file of the InceptionV3 weights, downloading them (once) if needed.

    Looks at ``weights_path``, then the ``LIGHTNING_GAN_INCEPTION_WEIGHTS`` environment variable, then
    torch hub's cache (:func:`default_inception_weights_path`, where torch-fidelity would download
    them); only when that file is missing is one download attempted.

    Raises:
        InceptionWeightsNotFoundError: If the given file does not exist, or the download fails
            (offline); the message says where to put the file.

    Example:
        >>> resolve_inception_weights("/nonexistent/inception.pth")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FeatureWeightsNotFoundError: `weights_path` '/nonexistent/inception.pth' does not exist or is not a file. ...
    """
    # One lookup for every extractor (features.py); imported here because features.py builds on this module.
    from lightning_gan.metrics.features import resolve_weights

    return resolve_weights(INCEPTION_NAME, weights_path)


def images_to_uint8(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Maps float images in ``value_range`` to uint8 pixels, the input torch-fidelity's networks take.

    ``((x - low) * 255 / (high - low)).round().clamp(0, 255)``: for the default ``(-1, 1)`` that is
    ``((x + 1) * 127.5).round()``, which inverts :func:`lightning_gan.data.uint8_to_signed_unit` exactly,
    so data stored as uint8 reaches the network as the very pixels torch-fidelity would read from it.
    uint8 input is returned unchanged.

    Raises:
        ValueError: If a float image holds NaN or an infinite value.
        TypeError: For integer images other than uint8.

    Example:
        >>> images_to_uint8(torch.tensor([-1.0, 0.0, 0.999, 1.0, 3.0]))
        tensor([  0, 128, 255, 255, 255], dtype=torch.uint8)
    """
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"Images must be uint8 or floating point, got {images.dtype}.")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("The images hold NaN or infinite values; cannot convert them to pixels.")
    low, high = value_range
    scale = 255.0 / (high - low)
    return ((images.to(torch.float32) - low) * scale).round().clamp(0, 255).to(torch.uint8)


class InceptionFeatureExtractor(nn.Module):
    """torch-fidelity's ``inception-v3-compat`` network: images to its 2048-d pool features.

    Uses torch-fidelity's own ``FeatureExtractorInceptionV3`` (so the same weights give the same
    features as ``torch_fidelity.calculate_metrics``), including its TF1-compatible bilinear resize to
    299 x 299: the reference resize behind published FIDs (torchmetrics' antialiased resize differs).
    Float images in ``value_range`` are converted to uint8 with :func:`images_to_uint8`; uint8 images
    pass unchanged; grey images are repeated to 3 channels. The network runs in float32 with autocast
    off and stays in eval mode whatever ``train()`` is called with.

    Args:
        weights_path: A local copy of the weights; otherwise see :func:`resolve_inception_weights`.
        value_range: Range of float images (``(-1, 1)`` for ``tanh`` generators and
            :func:`~lightning_gan.data.uint8_to_signed_unit` data).
        feature_layer: torch-fidelity's feature name: ``"2048"`` (the pool features of the standard
            FID), or ``"768"``, ``"192"``, ``"64"`` for the smaller FID variants.

    Raises:
        InceptionWeightsNotFoundError: If the weights are missing and cannot be downloaded.

    Example:
        >>> InceptionFeatureExtractor.num_features
        2048
        >>> InceptionFeatureExtractor(weights_path="/nonexistent.pth")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FeatureWeightsNotFoundError: `weights_path` '/nonexistent.pth' does not exist or is not a file. ...
    """

    num_features = 2048
    _LAYERS = ("64", "192", "768", "2048")

    def __init__(
        self,
        weights_path: Union[str, os.PathLike, None] = None,
        value_range: tuple[float, float] = (-1.0, 1.0),
        feature_layer: str = "2048",
    ) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f"`value_range` must be (low, high) with low < high, got {value_range!r}.")
        if feature_layer not in self._LAYERS:
            raise ValueError(f"`feature_layer` must be one of {self._LAYERS}, got {feature_layer!r}.")
        self.value_range = (low, high)
        self.feature_layer = feature_layer
        self.num_features = int(feature_layer)
        self.weights_path = resolve_inception_weights(weights_path)
        self.net = FeatureExtractorInceptionV3(
            INCEPTION_NAME, [feature_layer], feature_extractor_weights_path=str(self.weights_path)
        )
        self._sha256: Optional[str] = None

    @property
    def name(self) -> str:
        """The extractor's name in cache keys: torch-fidelity's, plus the layer and value range if not the defaults."""
        name = INCEPTION_NAME
        if self.feature_layer != "2048":
            name += f"-layer{self.feature_layer}"
        if self.value_range != (-1.0, 1.0):
            name += f"-range{self.value_range[0]:g}_{self.value_range[1]:g}"
        return name

    def fingerprint(self) -> str:
        """sha256 of the weights file (computed once)."""
        if self._sha256 is None:
            self._sha256 = _file_sha256(self.weights_path)
        return self._sha256

    def train(self, mode: bool = True) -> InceptionFeatureExtractor:
        return super().train(False)  # batch norm must keep its running statistics

    def forward(self, images: Tensor) -> Tensor:
        """``(N, 1 or 3, H, W)`` images (uint8, or floats in ``value_range``) to float32 ``(N, num_features)``."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"Expected images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}.")
        pixels = images_to_uint8(images, self.value_range)
        if pixels.shape[1] == 1:
            pixels = pixels.repeat(1, 3, 1, 1)
        with _no_autocast(pixels.device.type):  # the reference features are float32
            (features,) = self.net(pixels)
        return features


def extract_features(extractor: nn.Module, images: Tensor) -> Tensor:
    """Runs ``extractor`` on ``images`` without gradients or autocast and checks it gave ``(N, d)``.

    Any ``nn.Module`` mapping a batch of images to one feature vector per image works (e.g. a
    classifier's penultimate layer); a 1-tuple output (torch-fidelity's extractors) is unpacked.
    Floating images are cast to the extractor's parameter dtype.

    Raises:
        ValueError: If the output is not a 2-D tensor with one row per image; the message gives its shape.

    Example:
        >>> extract_features(nn.Flatten(), torch.zeros(5, 1, 2, 2)).shape
        torch.Size([5, 4])
    """
    dtype = next((p.dtype for p in extractor.parameters() if p.is_floating_point()), None)
    if dtype is not None and images.is_floating_point() and images.dtype != dtype:
        images = images.to(dtype)
    with torch.no_grad(), _no_autocast(images.device.type):
        out = extractor(images)
    if isinstance(out, (tuple, list)) and len(out) == 1:
        out = out[0]
    if not isinstance(out, Tensor):
        raise ValueError(f"The feature extractor must return a tensor of shape (N, d), got {type(out).__name__}.")
    if out.ndim != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(
            f"The feature extractor must map {images.shape[0]} images to features of shape ({images.shape[0]}, d), "
            f"got shape {tuple(out.shape)}; flatten or pool its output to one vector per image."
        )
    return out


def extractor_name(extractor: nn.Module) -> str:
    """An extractor's name for cache keys: its ``name`` attribute if a string, else its class name."""
    name = getattr(extractor, "name", None)
    return name if isinstance(name, str) else type(extractor).__qualname__


def extractor_fingerprint(extractor: nn.Module) -> str:
    """sha256 identifying an extractor's weights: its ``fingerprint()`` if it has one, else a hash of its state dict."""
    fingerprint = getattr(extractor, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    hasher = hashlib.sha256()
    for name, tensor in extractor.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def _file_sha256(path: Union[str, os.PathLike]) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()
