"""A tiny convolutional feature extractor with fixed random weights, for smoke runs without downloads."""

from __future__ import annotations

import importlib
import math
from typing import Union

import torch
from torch import nn

__all__ = ["SMALL_EXTRACTOR", "SmallFeatureExtractor", "build_feature_extractor"]

#: The name that selects :class:`SmallFeatureExtractor` in the CLIs (``--fid.feature_extractor small``).
SMALL_EXTRACTOR = "small"


class SmallFeatureExtractor(nn.Module):
    """Two strided convolutions with fixed random weights, average-pooled to 128 features.

    Only for smoke tests of the FID plumbing where the InceptionV3 weights cannot be had (offline CI): the
    distance it gives moves with sample quality but is not the FID, and no published number compares with it.
    Colour images are averaged to grey first, so any channel count works. The weights are drawn from ``seed``
    alone, so every process and every run build the same network.

    Example:
        >>> SmallFeatureExtractor()(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 128])
    """

    num_features = 128
    name = "small-random-conv"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Conv2d):
                    fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
                    layer.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                    layer.bias.zero_()
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float().mean(dim=1, keepdim=True))




def build_feature_extractor(name: str) -> Union[str, nn.Module]:
    """What ``FIDCallback(feature_extractor=...)`` takes for a command-line extractor name.

    A torch-fidelity extractor name (``"inception-v3-compat"``, ``"vgg16"``, ``"dinov2-vit-l-14"``, ...;
    ``"inception"`` for short) is returned as it is, ``"small"`` builds :class:`SmallFeatureExtractor`,
    and ``package.module.Class`` imports and builds that ``nn.Module``.

    Example:
        >>> build_feature_extractor("inception")
        'inception-v3-compat'
        >>> type(build_feature_extractor("small")).__name__
        'SmallFeatureExtractor'
    """
    from lightning_gan.metrics.features import extractor_names
    from lightning_gan.metrics.fid import INCEPTION_NAME

    if name == "inception":
        return INCEPTION_NAME
    if name in extractor_names():
        return name
    if name == SMALL_EXTRACTOR:
        return SmallFeatureExtractor()
    module_name, _, class_name = name.rpartition(".")
    if not module_name:
        raise ValueError(
            f"The feature extractor must be one of {extractor_names()}, {SMALL_EXTRACTOR!r} or the import path of an "
            f"nn.Module class (package.module.Class), got {name!r}."
        )
    extractor = getattr(importlib.import_module(module_name), class_name)()
    if not isinstance(extractor, nn.Module):
        raise TypeError(f"The feature extractor {name!r} built a {type(extractor).__name__}, not an nn.Module.")
    return extractor
