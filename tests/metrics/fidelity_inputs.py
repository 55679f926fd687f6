"""Image sets for comparisons with torch-fidelity: structured uint8 images, and the Dataset it reads them from."""

from __future__ import annotations

import math

import torch


def structured_images(n: int, kind: str, seed: int) -> torch.Tensor:
    """uint8 (n, 3, 32, 32): random-colour ramps or random checkerboards, so the two sets differ clearly.

    (Uniform noise would give features and logits that barely differ between images.)
    """
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    out = []
    for _ in range(n):
        colour = torch.rand(3, 1, 1, generator=generator)
        if kind == "ramp":
            angle = float(torch.rand(1, generator=generator)) * 2 * math.pi
            pattern = (math.cos(angle) * xx + math.sin(angle) * yy) / 45 + 0.5
        else:
            size = int(torch.randint(2, 8, (1,), generator=generator))
            pattern = ((xx // size) + (yy // size)) % 2
        out.append((colour * pattern * 255).clamp(0, 255))
    return torch.stack(out).to(torch.uint8)


class UInt8Images(torch.utils.data.Dataset):
    """What torch-fidelity's ``input1``/``input2`` accept: a Dataset of uint8 CHW tensors."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]
