"""A randomly initialised state dict for torch-fidelity's InceptionV3, for offline tests.

The real weights cannot be downloaded in tests. Random weights with He scaling (conv std
``sqrt(2 / fan_in)``, batch norm as the identity) keep activations O(1) through the ReLU stack, so
features, covariances and FIDs are O(1) too; PyTorch's default init shrinks activations layer after
layer and gives features near 0 and an FID near 0, which would hide bugs.
"""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    # The constructor always loads weights (from a path or the URL); skip that to get the bare module.
    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None), mock.patch(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {}
    ):
        module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=None)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Conv2d):
                fan_in = sub.in_channels * sub.kernel_size[0] * sub.kernel_size[1]
                sub.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            elif isinstance(sub, nn.BatchNorm2d):
                sub.weight.fill_(1.0)
                sub.bias.zero_()
                sub.running_mean.zero_()
                sub.running_var.fill_(1.0)
            elif isinstance(sub, nn.Linear):
                sub.weight.normal_(0.0, math.sqrt(1.0 / sub.in_features), generator=generator)
                sub.bias.zero_()
    return {k: v.clone() for k, v in module.state_dict().items()}


def save_random_inception_weights(path: Path, seed: int = 0) -> Path:
    torch.save(random_inception_state_dict(seed), path)
    return path
