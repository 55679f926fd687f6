r"""Any of torch-fidelity's feature extractors by name, several layers from one forward pass.

The FID, KID, Inception Score and precision/recall all read features of the same images, often from
different layers of the same network (torch-fidelity's ``inception-v3-compat``: the 2048-d pool
features for FID/KID/precision-recall, the 1008 ``logits_unbiased`` for the Inception Score).
:class:`FeatureExtractor` runs the network once and returns every requested layer, so one pass over the
generated images feeds all the metrics.

* :class:`FeatureExtractor`: wraps torch-fidelity's registered extractor ``name`` (``inception-v3-compat``,
  ``vgg16``, ``clip-*``, ``dinov2-*``) with its reference (TF1-compatible) resize and normalisation, so the
  same weights give the same features as ``torch_fidelity.calculate_metrics``.
* :func:`default_layers` / :func:`metric_layer`: which layers feed which metric, as torch-fidelity decides
  (``resolve_feature_layer_for_metric``).
* :func:`resolve_weights`: the local weights file of an extractor: an explicit path, an environment
  variable, torch hub's cache, or one download.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from lightning_gan.metrics.fid import (
    INCEPTION_NAME,
    INCEPTION_WEIGHTS_URL,
    WEIGHTS_ENV_VAR,
    InceptionWeightsNotFoundError,
    _file_sha256,
    _no_autocast,
    images_to_uint8,
)

__all__ = [
    "METRICS",
    "FeatureExtractor",
    "FeatureWeightsNotFoundError",
    "default_layers",
    "default_weights_path",
    "extractor_names",
    "metric_layer",
    "resolve_weights",
    "weights_env_var",
]

#: The metrics torch-fidelity assigns a default layer to.
METRICS = ("fid", "kid", "isc", "prc")

#: Feature dimensions of the layers of the extractors whose size is known without building them.
_KNOWN_DIMS: dict[str, dict[str, int]] = {
    INCEPTION_NAME: {"64": 64, "192": 192, "768": 768, "2048": 2048, "logits_unbiased": 1008, "logits": 1008},
    "vgg16": {"fc2": 4096, "fc2_relu": 4096},
}

#: torchvision's ImageNet VGG16 weights, which torch-fidelity's ``vgg16`` downloads.
_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


class FeatureWeightsNotFoundError(InceptionWeightsNotFoundError):
    """An extractor's weights are neither on disk nor downloadable; the message says where to put them.

    It derives from :class:`~lightning_gan.metrics.fid.InceptionWeightsNotFoundError` (itself a
    ``FileNotFoundError``), so code written for the Inception extractor (``except
    InceptionWeightsNotFoundError``) also catches a missing VGG16, CLIP or DINOv2 network.
    """


def _registry() -> dict[str, type]:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    return FEATURE_EXTRACTORS_REGISTRY


def extractor_names() -> tuple[str, ...]:
    """The names of torch-fidelity's registered feature extractors.

    Example:
        >>> names = extractor_names()
        >>> "inception-v3-compat" in names and "vgg16" in names and "clip-vit-b-32" in names
        True
    """
    return tuple(_registry())


def _extractor_class(name: str) -> type:
    registry = _registry()
    if name not in registry:
        raise ValueError(f"Unknown feature extractor {name!r}; torch-fidelity provides {sorted(registry)}.")
    return registry[name]


def metric_layer(metric: str, extractor_name: str = INCEPTION_NAME) -> str:
    """The layer of ``extractor_name`` that feeds ``metric``, as ``torch_fidelity.calculate_metrics`` picks it.

    Follows torch-fidelity's ``resolve_feature_layer_for_metric`` (the extractor's
    ``get_default_feature_layer_for_metric``) when no ``feature_layer_<metric>`` is given.

    Args:
        metric: ``"fid"``, ``"kid"``, ``"isc"`` (Inception Score) or ``"prc"`` (precision/recall).
        extractor_name: A registered torch-fidelity extractor (see :func:`extractor_names`).

    Raises:
        ValueError: For an unknown metric or extractor; the message lists the allowed names.

    Example:
        >>> metric_layer("kid"), metric_layer("isc"), metric_layer("prc", "vgg16")
        ('2048', 'logits_unbiased', 'fc2_relu')
    """
    cls = _extractor_class(extractor_name)
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS}.")
    return str(cls.get_default_feature_layer_for_metric(metric))


def default_layers(name: str = INCEPTION_NAME) -> tuple[str, ...]:
    """The layers that feed FID, KID, precision/recall and the Inception Score for extractor ``name``.

    The distinct values of :func:`metric_layer` over :data:`METRICS`, the pool features first.

    Example:
        >>> default_layers()
        ('2048', 'logits_unbiased')
        >>> default_layers("vgg16"), default_layers("clip-vit-b-32")
        (('fc2_relu',), ('clip',))
    """
    return tuple(dict.fromkeys(metric_layer(metric, name) for metric in ("fid", "kid", "prc", "isc")))


# --------------------------------------------------------------------------------------------------- weights


def weights_env_var(name: str) -> str:
    """The environment variable naming a local weights file for extractor ``name``.

    ``LIGHTNING_GAN_INCEPTION_WEIGHTS`` for ``inception-v3-compat`` (the variable the FID extractor
    reads), else ``LIGHTNING_GAN_<NAME>_WEIGHTS`` with ``-`` as ``_``.

    Example:
        >>> weights_env_var("inception-v3-compat"), weights_env_var("vgg16"), weights_env_var("clip-vit-b-32")
        ('LIGHTNING_GAN_INCEPTION_WEIGHTS', 'LIGHTNING_GAN_VGG16_WEIGHTS', 'LIGHTNING_GAN_CLIP_VIT_B_32_WEIGHTS')
    """
    _extractor_class(name)
    if name == INCEPTION_NAME:
        return WEIGHTS_ENV_VAR
    return "LIGHTNING_GAN_" + re.sub(r"[^A-Za-z0-9]+", "_", name).upper() + "_WEIGHTS"


def _weights_source(name: str) -> Optional[tuple[str, str, Optional[str]]]:
    """``(url, cache file name, sha256 prefix to check)`` of the file torch-fidelity downloads, or ``None`` (DINOv2)."""
    _extractor_class(name)
    if name == INCEPTION_NAME:
        return INCEPTION_WEIGHTS_URL, os.path.basename(INCEPTION_WEIGHTS_URL), None
    if name == "vgg16":
        url = _VGG16_URL
        try:  # torchvision's URL, which torch-fidelity's torchvision_load_pretrained_vgg16 downloads
            import torchvision

            url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
        except (ImportError, AttributeError):  # pragma: no cover - torchvision is a torch-fidelity dependency
            pass
        file_name = os.path.basename(url)
        match = torch.hub.HASH_REGEX.search(file_name)  # torchvision loads it with check_hash=True
        return url, file_name, match.group(1) if match else None
    if name.startswith("clip-"):
        from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS

        if name in MODEL_URLS:
            digest = MODEL_METADATA[name]["hash"]
            return MODEL_URLS[name], f"{name}-{digest}.pt", digest  # torch-fidelity's file_name and hash check
    return None  # DINOv2 (torch.hub.load of a GitHub repo) or an extractor registered by the user


def default_weights_path(name: str = INCEPTION_NAME) -> Optional[Path]:
    """Where torch-fidelity's download of extractor ``name`` lands in torch hub's cache, or ``None``.

    ``<torch hub dir>/checkpoints/<file name>``; ``None`` for extractors that take no weights file
    (``dinov2-*``, which torch-fidelity builds with ``torch.hub.load``).

    Example:
        >>> default_weights_path().name, default_weights_path("vgg16").name
        ('weights-inception-2015-12-05-6726825d.pth', 'vgg16-397923af.pth')
    """
    source = _weights_source(name)
    if source is None:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / source[1]


def _how_to_provide(name: str, url: str, default: Path) -> str:
    return (
        f"Download {url} on a machine with network access and either put it at {default} (torch hub's cache, "
        f"which torch-fidelity uses), pass its path as `weights_path=` or set the environment variable "
        f"{weights_env_var(name)} to its path."
    )


def _no_weights_file_message(name: str) -> str:
    return (
        f"The {name!r} extractor takes no local weights file: torch-fidelity builds it with "
        f"torch.hub.load('facebookresearch/dinov2', ...), which fetches the code and the weights into torch hub's "
        f"cache ({torch.hub.get_dir()}). Leave `weights_path` as None; to run offline, construct "
        f"FeatureExtractor({name!r}) once on a machine with network access with the same torch hub directory "
        f"(TORCH_HOME), then copy that directory."
    )


def resolve_weights(name: str = INCEPTION_NAME, weights_path: Union[str, os.PathLike, None] = None) -> Path:
    """The local weights file of torch-fidelity's extractor ``name``, downloading it (once) if needed.

    Looks at ``weights_path``, then the environment variable :func:`weights_env_var` (``name``), then
    torch hub's cache (:func:`default_weights_path`, the very file torch-fidelity would download); only
    when that file is missing is one download attempted (from torch-fidelity's URL, with the hash check
    torch-fidelity or torchvision applies), so by default users get what ``torch_fidelity`` gets.

    Args:
        name: A registered torch-fidelity extractor: ``inception-v3-compat``, ``vgg16`` (a torchvision
            ``state_dict`` file), ``clip-*`` (OpenAI's TorchScript archive).
        weights_path: A local copy of the weights.

    Raises:
        ValueError: For an unknown ``name``, or for ``dinov2-*``, which takes no weights file (torch-fidelity
            loads it with ``torch.hub.load``; the message says how to run it offline).
        FeatureWeightsNotFoundError: If the given file does not exist, or the download fails (offline);
            the message says where to put the file.

    Example:
        >>> resolve_weights("vgg16", "/nonexistent/vgg16.pth")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FeatureWeightsNotFoundError: `weights_path` '/nonexistent/vgg16.pth' does not exist or is not a file. ...
    """
    source = _weights_source(name)
    if source is None:
        raise ValueError(_no_weights_file_message(name))
    url, _, hash_prefix = source
    default = default_weights_path(name)
    assert default is not None
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FeatureWeightsNotFoundError(
                f"`weights_path` {str(weights_path)!r} does not exist or is not a file. "
                f"{_how_to_provide(name, url, default)}"
            )
        return path
    env_var = weights_env_var(name)
    from_env = os.environ.get(env_var)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise FeatureWeightsNotFoundError(
                f"The environment variable {env_var}={from_env!r} names no file. {_how_to_provide(name, url, default)}"
            )
        return path
    if default.is_file():
        return default
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
        # Writes to a temporary file and renames it: concurrent ranks never read a partial file.
        torch.hub.download_url_to_file(url, str(default), hash_prefix=hash_prefix, progress=False)
    except (urllib.error.URLError, OSError, ValueError, RuntimeError) as err:  # RuntimeError: a hash mismatch
        raise FeatureWeightsNotFoundError(
            f"The {name} weights are not at {default} and could not be downloaded ({type(err).__name__}: {err}). "
            f"{_how_to_provide(name, url, default)}"
        ) from None  # one clear error, not a urllib traceback
    return default


# ------------------------------------------------------------------------------------------------ extractor


class FeatureExtractor(nn.Module):
    """torch-fidelity's feature extractor ``name``: images to several layers' features in one forward pass.

    Builds torch-fidelity's own extractor class (``FeatureExtractorInceptionV3``, ``FeatureExtractorVGG16``,
    ``FeatureExtractorCLIP``, ``FeatureExtractorDinoV2``) with all requested ``layers``, so the same weights
    give bit-for-bit the features ``torch_fidelity.calculate_metrics`` computes, including its
    TF1-compatible bilinear resize (to 299 x 299 for InceptionV3, 224 x 224 for VGG16 and DINOv2, the
    model's resolution for CLIP) and normalisation. InceptionV3 stops at the deepest requested layer.

    Float images in ``value_range`` are converted to uint8 pixels with
    :func:`~lightning_gan.metrics.fid.images_to_uint8` (the input torch-fidelity's networks take); uint8
    images pass unchanged; grey images are repeated to 3 channels. The network runs in float32 with
    autocast off and without gradients, and stays in eval mode whatever ``train()`` is called with.

    Weights: see :func:`resolve_weights` (``weights_path``, ``LIGHTNING_GAN_<NAME>_WEIGHTS``, torch hub's
    cache, one download). ``dinov2-*`` takes no weights file: torch-fidelity loads it with
    ``torch.hub.load`` (code and weights from torch hub's cache, or the network); ``weights_path`` must be
    ``None`` and :attr:`weights_path` is then the hub's checkpoint if it is there, else ``None``, and
    :meth:`fingerprint` hashes the state dict instead.

    The extractor's :attr:`name` in cache keys is torch-fidelity's, plus the value range if not
    ``(-1, 1)`` (the layers are not part of it: features are keyed by layer).

    Attributes:
        layers: The layers :meth:`forward` returns, in order.
        num_features: Feature dimension of each layer, e.g. ``{"2048": 2048, "logits_unbiased": 1008}``.
        weights_path: The weights file loaded.

    Args:
        name: A registered torch-fidelity extractor (see :func:`extractor_names`).
        layers: Its layers to return (torch-fidelity's feature names: ``"64"``, ``"192"``, ``"768"``,
            ``"2048"``, ``"logits_unbiased"``, ``"logits"`` for InceptionV3; ``"fc2"``, ``"fc2_relu"`` for
            VGG16; ``"clip"``; ``"dinov2"``); default :func:`default_layers` (``name``).
        weights_path: A local copy of the weights.
        value_range: Range of float images (``(-1, 1)`` for ``tanh`` generators).

    Raises:
        ValueError: For an unknown extractor (the message lists the registered ones), an unknown or
            repeated layer (the message lists the extractor's layers), a bad ``value_range``, or a
            ``weights_path`` for ``dinov2-*``.
        FeatureWeightsNotFoundError: If the weights are missing and cannot be downloaded.

    Example:
        >>> FeatureExtractor("vgg16", layers=["pool5"])  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ValueError: Unknown layer 'pool5' of 'vgg16'; it provides ('fc2', 'fc2_relu').
        >>> FeatureExtractor("vgg16", weights_path="/nonexistent.pth")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FeatureWeightsNotFoundError: `weights_path` '/nonexistent.pth' does not exist or is not a file. ...
    """

    layers: tuple[str, ...]
    num_features: dict[str, int]
    weights_path: Optional[Path]

    def __init__(
        self,
        name: str = INCEPTION_NAME,
        layers: Optional[Sequence[str]] = None,
        weights_path: Union[str, os.PathLike, None] = None,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        cls = _extractor_class(name)
        provided = tuple(cls.get_provided_features_list())
        if isinstance(layers, str):
            layers = (layers,)
        layers = default_layers(name) if layers is None else tuple(str(layer) for layer in layers)
        if not layers:
            raise ValueError(f"`layers` must name at least one of {provided}.")
        for layer in layers:
            if layer not in provided:
                raise ValueError(f"Unknown layer {layer!r} of {name!r}; it provides {provided}.")
        if len(set(layers)) != len(layers):
            raise ValueError(f"`layers` names a layer twice: {layers}.")
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f"`value_range` must be (low, high) with low < high, got {value_range!r}.")
        self.extractor_name = name
        self.layers = layers
        self.value_range = (low, high)
        if _weights_source(name) is None:
            if weights_path is not None:
                raise ValueError(_no_weights_file_message(name))
            self.net = self._build_from_hub(cls, name)
            checkpoint = self._hub_checkpoint(name)
            self.weights_path = checkpoint if checkpoint is not None and checkpoint.is_file() else None
        else:
            self.weights_path = resolve_weights(name, weights_path)
            self.net = cls(name, list(layers), feature_extractor_weights_path=str(self.weights_path), verbose=False)
        self.net.requires_grad_(False)
        self.net.eval()
        known = _KNOWN_DIMS.get(name)
        if known is not None:
            self.num_features = {layer: known[layer] for layer in layers}
        else:  # CLIP / DINOv2: read the sizes off one tiny forward pass
            dummy = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
            self.num_features = {layer: int(out.shape[1]) for layer, out in self(dummy).items()}
        self._sha256: Optional[str] = None

    @staticmethod
    def _hub_checkpoint(name: str) -> Optional[Path]:
        try:
            from torch_fidelity.feature_extractor_dinov2 import MODEL_METADATA
        except ImportError:  # pragma: no cover
            return None
        base = MODEL_METADATA.get(name)
        if base is None:
            return None
        return Path(torch.hub.get_dir()) / "checkpoints" / f"{base}_pretrain.pth"

    def _build_from_hub(self, cls: type, name: str) -> nn.Module:
        try:
            return cls(name, list(self.layers), feature_extractor_weights_path=None, verbose=False)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as err:
            raise FeatureWeightsNotFoundError(
                f"Could not build {name!r} ({type(err).__name__}: {err}). {_no_weights_file_message(name)}"
            ) from None

    @property
    def name(self) -> str:  # type: ignore[override]
        """torch-fidelity's name of the extractor, plus the value range if not ``(-1, 1)``."""
        name = self.extractor_name
        if self.value_range != (-1.0, 1.0):
            name += f"-range{self.value_range[0]:g}_{self.value_range[1]:g}"
        return name

    def fingerprint(self) -> str:
        """sha256 of the weights file (computed once); of the state dict when there is no file (DINOv2)."""
        if self._sha256 is None:
            if self.weights_path is not None:
                self._sha256 = _file_sha256(self.weights_path)
            else:
                hasher = hashlib.sha256()
                for key, tensor in self.net.state_dict().items():
                    tensor = tensor.detach().cpu().contiguous()
                    hasher.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                    hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
                self._sha256 = hasher.hexdigest()
        return self._sha256

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # batch norm must keep its running statistics; no dropout

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``(N, 1 or 3, H, W)`` images (uint8, or floats in ``value_range``) to ``{layer: float32 (N, d)}``."""
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"Expected images of shape (N, 1 or 3, H, W), got {shape}.")
        pixels = images_to_uint8(images, self.value_range)
        if pixels.shape[1] == 1:
            pixels = pixels.repeat(1, 3, 1, 1)
        with torch.no_grad(), _no_autocast(pixels.device.type):  # the reference features are float32
            outputs = self.net(pixels)
        return {layer: out.to(torch.float32) for layer, out in zip(self.layers, outputs)}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layers}, weights_path={str(self.weights_path)!r}"
