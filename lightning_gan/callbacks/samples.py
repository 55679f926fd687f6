"""Sample grids and latent interpolations, logged through whatever logger the trainer has."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import make_grid, save_image
from typing_extensions import override

__all__ = ["ImageSampler", "LatentInterpolation", "slerp"]


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    r"""Spherical interpolation between latents ``a`` and ``b`` (each ``(d,)``) at fractions ``t`` (``(k,)``).

    Gaussian latents concentrate near a sphere; a straight line between two of them passes through
    the low-norm interior the generator never saw, so interpolations follow the great circle instead:

    .. math:: \mathrm{slerp}(a, b; t) = \frac{\sin((1-t)\omega)}{\sin\omega} a + \frac{\sin(t\omega)}{\sin\omega} b

    Returns ``(k, d)``; falls back to a straight line when ``a`` and ``b`` are (anti)parallel.

    Example:
        >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
        >>> slerp(a, b, torch.tensor([0.0, 0.5, 1.0])).round(decimals=4)
        tensor([[1.0000, 0.0000],
                [0.7071, 0.7071],
                [0.0000, 1.0000]])
    """
    t = t.to(a.dtype).unsqueeze(1)
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class _GridLogger(pl.Callback, ABC):
    """Shared plumbing: fixed latents, a schedule, and logging an image to every logger."""

    def __init__(self, every_n_epochs: int, seed: int, key: str) -> None:
        super().__init__()
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be an integer >= 1, got {every_n_epochs!r}.")
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.key = key
        self._latent: Optional[Tensor] = None
        self.saved_paths: list[Path] = []

    def _fixed_latent(self, pl_module: pl.LightningModule, n: int) -> Tensor:
        # Drawn through the module's own sample_latent hook (custom latent distributions work) under a
        # forked RNG, so the grid shows the same latents every time without disturbing training's RNG.
        if self._latent is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._latent = pl_module.sample_latent(n).cpu()
        return self._latent

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Training epochs, not validation ones: a grid needs no validation data.
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log_on_rank_zero(trainer, pl_module)

    @rank_zero_only
    def _log_on_rank_zero(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Eval mode: batch norm must not fold these samples into its running statistics.
        was_training = pl_module.training
        pl_module.eval()
        try:
            image = self.make_image(pl_module)
        finally:
            pl_module.train(was_training)
        self._log_image(trainer, image)

    @abstractmethod
    def make_image(self, pl_module: pl.LightningModule) -> Tensor:
        """The ``(C, H, W)`` image in [0, 1] to log."""

    def _log_image(self, trainer: pl.Trainer, image: Tensor) -> None:
        step = trainer.global_step
        loggers = trainer.loggers
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=self.key, images=[image], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(self.key, image, global_step=step)
            else:
                self._save_png(Path(logger.log_dir or logger.save_dir or trainer.default_root_dir), image, step)
        if not loggers:
            self._save_png(Path(trainer.default_root_dir), image, step)

    def _save_png(self, folder: Path, image: Tensor, step: int) -> None:
        path = folder / "samples" / f"{self.key.replace('/', '_')}_step{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(image, path)
        self.saved_paths.append(path)


class ImageSampler(_GridLogger):
    """Logs a grid of samples from fixed latents every ``every_n_epochs`` training epochs.

    Images go to every logger the trainer has: ``WandbLogger`` (``log_image``, a ``wandb.Image``),
    ``TensorBoardLogger`` (``add_image``), and any other logger (CSV, ...) as a PNG under
    ``<log_dir>/samples/``. Only rank zero generates and logs. Samples come from the module's
    ``generate`` (the EMA generator when there is one). For 2-D data (``image_shape == (2,)``) the
    image is a scatter of the samples (red) over the discriminator's ``D(x)`` (grey, white = "real").

    For a class-conditional module (one with ``num_classes`` set, e.g.
    :class:`~lightning_gan.ConditionalGAN`) the grid has **one row per class**, ``nrow`` images each,
    and every row uses the same ``nrow`` latents: down a column the class changes and the latent stays.
    (``num_samples`` then does not apply, except to 2-D data, whose samples cycle through the classes
    over the class-averaged ``D(x, y)``.)

    Args:
        num_samples: Images in the grid (of an unconditional module).
        nrow: Images per grid row.
        every_n_epochs: Log every this many training epochs.
        value_range: The generator's output range, mapped to [0, 1] for display.
        seed: Seed of the fixed latents.
        key: Name the image is logged under.

    Example:
        >>> sampler = ImageSampler(num_samples=16, nrow=4)
        >>> sampler.key
        'samples'
    """

    def __init__(
        self,
        num_samples: int = 64,
        nrow: int = 8,
        every_n_epochs: int = 1,
        value_range: tuple[float, float] = (-1.0, 1.0),
        seed: int = 0,
        key: str = "samples",
    ) -> None:
        super().__init__(every_n_epochs, seed, key)
        for name, value in (("num_samples", num_samples), ("nrow", nrow)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        self.num_samples = num_samples
        self.nrow = nrow
        self.value_range = value_range

    @override
    def make_image(self, pl_module: pl.LightningModule) -> Tensor:
        num_classes = _num_classes(pl_module)
        if num_classes is None:
            z = self._fixed_latent(pl_module, self.num_samples)
            samples = pl_module.generate(len(z), z=z).float().cpu()
        elif _is_point_model(pl_module):
            z = self._fixed_latent(pl_module, self.num_samples)
            labels = torch.arange(len(z)) % num_classes
            samples = pl_module.generate(len(z), z=z, labels=labels).float().cpu()
        else:
            row = self._fixed_latent(pl_module, self.nrow)
            z = row.repeat(num_classes, *([1] * (row.dim() - 1)))
            labels = torch.arange(num_classes).repeat_interleave(len(row))
            samples = pl_module.generate(len(z), z=z, labels=labels).float().cpu()
        if samples.dim() == 2 and samples.shape[1] == 2:
            discriminator = getattr(pl_module, "discriminator", None)
            return _scatter_over_discriminator(samples, discriminator, pl_module.device, num_classes)
        if samples.dim() != 4:
            raise ValueError(
                f"ImageSampler needs images (N, C, H, W) or 2-D points (N, 2); the generator gave {tuple(samples.shape)}."
            )
        return make_grid(samples, nrow=self.nrow, normalize=True, value_range=self.value_range)


class LatentInterpolation(_GridLogger):
    """Logs spherical interpolations between fixed pairs of latents: one row per pair.

    Smooth rows mean the generator maps nearby latents to nearby images; abrupt jumps or repeated
    images along a row are a sign of memorisation or mode collapse. For a class-conditional module,
    row ``i`` is drawn for class ``i % num_classes``.

    Args:
        num_pairs: Rows (latent pairs).
        steps: Images per row, both ends included.
        every_n_epochs: Log every this many training epochs.
        value_range: The generator's output range, mapped to [0, 1] for display.
        seed: Seed of the fixed latents.
        key: Name the image is logged under.

    Example:
        >>> LatentInterpolation(num_pairs=2, steps=5).steps
        5
    """

    def __init__(
        self,
        num_pairs: int = 4,
        steps: int = 8,
        every_n_epochs: int = 1,
        value_range: tuple[float, float] = (-1.0, 1.0),
        seed: int = 0,
        key: str = "interpolation",
    ) -> None:
        super().__init__(every_n_epochs, seed, key)
        if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
            raise ValueError(f"`num_pairs` must be an integer >= 1, got {num_pairs!r}.")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"`steps` must be an integer >= 2, got {steps!r}.")
        self.num_pairs = num_pairs
        self.steps = steps
        self.value_range = value_range

    def latents(self, pl_module: pl.LightningModule) -> Tensor:
        """The ``(num_pairs * steps, latent_dim)`` latents, row by row."""
        ends = self._fixed_latent(pl_module, 2 * self.num_pairs)
        fractions = torch.linspace(0.0, 1.0, self.steps)
        rows = [slerp(ends[2 * i].flatten(), ends[2 * i + 1].flatten(), fractions) for i in range(self.num_pairs)]
        return torch.cat(rows).view(-1, *ends.shape[1:])

    @override
    def make_image(self, pl_module: pl.LightningModule) -> Tensor:
        z = self.latents(pl_module)
        num_classes = _num_classes(pl_module)
        if num_classes is None:
            samples = pl_module.generate(len(z), z=z).float().cpu()
        else:
            labels = (torch.arange(self.num_pairs) % num_classes).repeat_interleave(self.steps)
            samples = pl_module.generate(len(z), z=z, labels=labels).float().cpu()
        if samples.dim() != 4:
            raise ValueError(f"LatentInterpolation needs images (N, C, H, W); the generator gave {tuple(samples.shape)}.")
        return make_grid(samples, nrow=self.steps, normalize=True, value_range=self.value_range)


def _num_classes(pl_module: pl.LightningModule) -> Optional[int]:
    """The module's number of classes when it is class-conditional (lightning_gan.GAN's ``num_classes``)."""
    return getattr(pl_module, "num_classes", None)


def _is_point_model(pl_module: pl.LightningModule) -> bool:
    # 2-D data is known by the discriminator's input shape when it says so; else by one probe sample.
    discriminator = getattr(pl_module, "discriminator", None)
    shape = getattr(discriminator, "input_shape", getattr(discriminator, "image_shape", None))
    if shape is not None:
        return tuple(shape) == (2,)
    probe = pl_module.generate(1)
    return probe.dim() == 2 and probe.shape[1] == 2


@torch.no_grad()
def _scatter_over_discriminator(
    samples: Tensor,
    discriminator: Optional[torch.nn.Module],
    device: Any,
    num_classes: Optional[int] = None,
    size: int = 256,
) -> Tensor:
    # Rasterised by hand rather than with matplotlib, to keep plotting libraries out of the install.
    finite = samples[torch.isfinite(samples).all(dim=1)]
    extent = float(finite.abs().max().clamp(min=1.0) * 1.1) if len(finite) else 1.0
    axis = torch.linspace(-extent, extent, size)
    ys, xs = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    background = torch.full((size, size), 0.5)
    if discriminator is not None:
        points = torch.stack([xs.flatten(), ys.flatten()], dim=1).to(device)
        if num_classes is None:
            probabilities = torch.sigmoid(discriminator(points).float().flatten())
        else:  # averaged over the classes: white where some class's discriminator calls the point real
            probabilities = torch.stack(
                [
                    torch.sigmoid(discriminator(points, torch.full((len(points),), k, device=device)).float().flatten())
                    for k in range(num_classes)
                ]
            ).mean(dim=0)
        background = probabilities.cpu().view(size, size)
    image = background.expand(3, size, size).clone()
    cols = ((finite[:, 0] + extent) / (2 * extent) * (size - 1)).round().long().clamp(0, size - 1)
    rows = ((extent - finite[:, 1]) / (2 * extent) * (size - 1)).round().long().clamp(0, size - 1)
    image[:, rows, cols] = torch.tensor([1.0, 0.0, 0.0]).unsqueeze(1)
    return image

