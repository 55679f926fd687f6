"""A randomly initialised state dict for torchvision's VGG16 (torch-fidelity's ``vgg16``), for offline tests.

Like random_inception.py: the ImageNet weights cannot be downloaded in tests, so He scaling (conv std
``sqrt(2 / fan_in)``, linear std ``sqrt(2 / in_features)``, zero biases) stands in; activations stay O(1)
through the 13 convolutions and 2 ReLU fully connected layers, so the ``fc2`` / ``fc2_relu`` features are
O(1) and spread out, not collapsed to 0 as with PyTorch's default init.

The file is large (about 528 MiB in float32: the first fully connected layer alone is 25088 x 4096);
write it once per test module.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torchvision
from torch import nn


def random_vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-initialised weights for ``torchvision.models.vgg16()`` (the module torch-fidelity loads a path into)."""
    module = torchvision.models.vgg16(weights=None, init_weights=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Conv2d):
                fan_in = sub.in_channels * sub.kernel_size[0] * sub.kernel_size[1]
                sub.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                sub.bias.zero_()
            elif isinstance(sub, nn.Linear):
                sub.weight.normal_(0.0, math.sqrt(2.0 / sub.in_features), generator=generator)
                sub.bias.zero_()
    return module.state_dict()


def save_random_vgg16_weights(path: Path, seed: int = 0) -> Path:
    torch.save(random_vgg16_state_dict(seed), path)
    return path
