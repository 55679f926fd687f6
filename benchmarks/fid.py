"""FID end to end: FIDCallback (generate + embed + update + compute) vs torch_fidelity.calculate_metrics.

Same generator (a DCGAN for 3x32x32 images), same real images, same InceptionV3 weights file on both
sides; each side embeds ``--num_samples`` generated and as many real images. A third, cached call shows
that the real set is skipped entirely once its statistics are on disk. Goals: the first call at least
1.0x torch-fidelity's samples/s; the cached call embeds no real image.

Without ``--weights_path`` a random He-initialised InceptionV3 state dict is used (weights cannot be
downloaded offline; timings do not depend on the weight values).

    python benchmarks/fid.py [--device cuda] [--num_samples 256] [--weights_path pt_inception-2015-12-05.pth]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import Dataset

from lightning_gan import DCGAN, FIDCallback
from lightning_gan.data import TensorDataModule, uint8_to_signed_unit
from lightning_gan.metrics.fid import images_to_uint8

GOAL = 1.0


class _UInt8Images(Dataset):
    """torch-fidelity reads a Dataset of uint8 CHW tensors."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class _ToUInt8(nn.Module):
    """The generator as torch-fidelity wants it: latents in, uint8 images out."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return images_to_uint8(self.generator(z))


class _CountingFID(FIDCallback):
    """Counts the real batches embedded, to show that a cache hit embeds none."""

    real_batches = 0

    def _real_batches(self, trainer, pl_module):
        for batch in super()._real_batches(trainer, pl_module):
            self.real_batches += 1
            yield batch


def random_weights(path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "metrics"))
    from random_inception import random_inception_state_dict

    torch.save(random_inception_state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--weights_path", type=Path, default=None)
    args = parser.parse_args()
    import torch_fidelity

    pl.seed_everything(0, verbose=False)
    with tempfile.TemporaryDirectory() as scratch:
        weights = args.weights_path or random_weights(Path(scratch) / "inception.pth")
        gan = DCGAN(image_shape=(3, 32, 32), latent_dim=100, features=32).eval()
        real = torch.randint(0, 256, (args.num_samples, 3, 32, 32), dtype=torch.uint8)

        start = time.perf_counter()
        reference = torch_fidelity.calculate_metrics(
            input1=torch_fidelity.GenerativeModelModuleWrapper(_ToUInt8(gan.generator), 100, "normal", 0),
            input1_model_num_samples=args.num_samples, input2=_UInt8Images(real), fid=True,
            feature_extractor_weights_path=str(weights), batch_size=args.batch_size,
            cuda=args.device == "cuda", cache=False, verbose=False,
        )["frechet_inception_distance"]
        fidelity_time = time.perf_counter() - start

        data = TensorDataModule(real, val=real, batch_size=args.batch_size, drop_last=False,
                                transform=uint8_to_signed_unit)
        times, values, real_batches = [], [], []
        for _ in range(2):  # first call embeds the real set; the second finds it in the cache
            fid = _CountingFID(num_samples=args.num_samples, batch_size=args.batch_size, weights_path=weights,
                              cache_dir=Path(scratch) / "cache", dataset_name="benchmark-random")
            trainer = pl.Trainer(accelerator=args.device, devices=1, logger=False, enable_progress_bar=False,
                                 enable_model_summary=False, callbacks=[fid])
            start = time.perf_counter()
            trainer.validate(gan, datamodule=data, verbose=False)
            times.append(time.perf_counter() - start)
            values.append(fid.last_value)
            real_batches.append(fid.real_batches)
    samples = 2 * args.num_samples  # generated + real embedded per first call, as torch-fidelity does
    ratio = fidelity_time / times[0]
    print(f"torch-fidelity: {samples / fidelity_time:8.1f} samples/s  FID {reference:.4f}")
    print(f"FIDCallback:    {samples / times[0]:8.1f} samples/s  FID {values[0]:.4f}  -> {ratio:.2f}x (goal >= {GOAL}x)")
    print(f"cached call:    {times[1]:.2f} s vs {times[0]:.2f} s for the first; real batches embedded: "
          f"{real_batches[1]} (first call: {real_batches[0]})  {'MET' if real_batches[1] == 0 else 'NOT MET'}")
    print(json.dumps({"benchmark": "fid", "device": args.device, "num_samples": args.num_samples,
                      "torch_fidelity_s": fidelity_time, "callback_first_s": times[0], "callback_cached_s": times[1],
                      "ratio": ratio, "goal": GOAL, "real_batches_first": real_batches[0], "real_batches_cached": real_batches[1], "fid_reference": reference, "fid_callback": values[0]}))


if __name__ == "__main__":
    main()
