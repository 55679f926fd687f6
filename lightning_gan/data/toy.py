"""Two-dimensional Gaussian mixtures with a closed-form density, for mode-collapse and likelihood studies.

A generator trained on :func:`ring8` or :func:`grid25` shows mode collapse at a glance (count the modes it
covers), and because the data density is known exactly, :meth:`ToyDataModule.log_prob` scores generated
samples (or a density model) without any estimator in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_gan.data.tensors import BatchedTensorDataset, TensorDataModule, _check_batch_size, collate_batch

__all__ = ["GaussianMixture2D", "TOY_DISTRIBUTIONS", "ToyDataModule", "grid25", "ring8", "spiral"]

ArrayLike = Union[Tensor, Sequence[Any]]


class GaussianMixture2D:
    """A mixture of isotropic Gaussians in the plane: ``p(x) = sum_k w_k N(x; mu_k, s_k^2 I)``.

    Parameters are kept in float64 so :meth:`log_prob` is exact to double precision; samples come out
    in float32, the dtype networks train in.

    Args:
        means: Component means, shape ``(K, 2)``.
        stds: Per-component standard deviations ``(K,)``, or one positive number shared by all.
        weights: Mixing weights ``(K,)``, non-negative and summing to 1; equal weights if omitted.

    Raises:
        ValueError: If a shape is wrong, a std is not positive, or the weights are negative or do not sum to 1.

    Example:
        >>> mixture = GaussianMixture2D([[-1.0, 0.0], [1.0, 0.0]], stds=0.5)
        >>> points, labels = mixture.sample(4, generator=torch.Generator().manual_seed(0))
        >>> points.shape, points.dtype, labels.dtype
        (torch.Size([4, 2]), torch.float32, torch.int64)
        >>> mixture.log_prob(torch.tensor([[1.0, 0.0]])).dtype
        torch.float64
    """

    def __init__(
        self,
        means: ArrayLike,
        stds: Union[float, ArrayLike] = 1.0,
        weights: Optional[ArrayLike] = None,
    ) -> None:
        means_t = torch.as_tensor(means, dtype=torch.float64)
        if means_t.dim() != 2 or means_t.shape[1] != 2 or means_t.shape[0] < 1:
            raise ValueError(f"`means` must have shape (K, 2) with K >= 1, got shape {tuple(means_t.shape)}.")
        if not torch.isfinite(means_t).all():
            raise ValueError("`means` must be finite.")
        k = means_t.shape[0]

        stds_t = torch.as_tensor(stds, dtype=torch.float64)
        if stds_t.dim() == 0:
            stds_t = stds_t.expand(k).clone()
        if stds_t.shape != (k,):
            raise ValueError(f"`stds` must be one number or have shape ({k},), got shape {tuple(stds_t.shape)}.")
        if not (torch.isfinite(stds_t).all() and (stds_t > 0).all()):
            raise ValueError(f"`stds` must be finite and > 0, got {stds_t.tolist()}.")

        if weights is None:
            weights_t = torch.full((k,), 1.0 / k, dtype=torch.float64)
        else:
            weights_t = torch.as_tensor(weights, dtype=torch.float64)
            if weights_t.shape != (k,):
                raise ValueError(f"`weights` must have shape ({k},), got shape {tuple(weights_t.shape)}.")
            if not (torch.isfinite(weights_t).all() and (weights_t >= 0).all()):
                raise ValueError(f"`weights` must be finite and >= 0, got {weights_t.tolist()}.")
            if abs(float(weights_t.sum()) - 1.0) > 1e-6:
                raise ValueError(f"`weights` must sum to 1, got a sum of {float(weights_t.sum())!r}.")
            # Remove the rounding left by the tolerance so the density integrates to 1 to double precision.
            weights_t = weights_t / weights_t.sum()

        self.means = means_t
        self.stds = stds_t
        self.weights = weights_t

    @property
    def num_components(self) -> int:
        """The number of Gaussians ``K``."""
        return self.means.shape[0]

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """Draws ``n`` points and the component each came from.

        Args:
            n: Number of points, >= 0.
            generator: Source of randomness (a CPU generator); the global one if omitted.

        Returns:
            ``(points, labels)``: float32 ``(n, 2)`` and int64 ``(n,)`` in ``[0, K)``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"`n` must be an integer >= 0, got {n!r}.")
        if n == 0:
            return torch.empty(0, 2), torch.empty(0, dtype=torch.long)
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, 2, dtype=torch.float64, generator=generator)
        points = self.means[labels] + self.stds[labels, None] * noise
        return points.float(), labels

    def log_prob(self, x: Tensor) -> Tensor:
        """The exact log-density at ``x``, computed in float64.

        Args:
            x: Points of shape ``(n, 2)`` (any leading shape ``(..., 2)`` works), any float dtype and device.

        Returns:
            float64 log-densities of shape ``x.shape[:-1]``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"`x` must be a tensor, got {type(x).__name__}.")
        if x.dim() < 1 or x.shape[-1] != 2:
            raise ValueError(f"`x` must have shape (n, 2), got shape {tuple(x.shape)}.")
        x = x.to(torch.float64)
        means, stds, weights = (t.to(x.device) for t in (self.means, self.stds, self.weights))
        squared = (x.unsqueeze(-2) - means).pow(2).sum(-1)  # (..., K)
        # log N(x; mu, s^2 I) in 2-D: -log(2 pi) - 2 log s - |x - mu|^2 / (2 s^2)
        log_normal = -math.log(2 * math.pi) - 2 * stds.log() - squared / (2 * stds.pow(2))
        return torch.logsumexp(weights.log() + log_normal, dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_components={self.num_components})"


def ring8(radius: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    """Eight equally weighted Gaussians on a circle, at angles ``2 pi k / 8``.

    Example:
        >>> ring8().means[0].tolist()
        [2.0, 0.0]
    """
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture2D(means, std)


def grid25(spacing: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    """25 equally weighted Gaussians on a 5 x 5 grid centred at 0, ``spacing`` apart (-4..4 for 2).

    Example:
        >>> grid25().means[[0, -1]].tolist()
        [[-4.0, -4.0], [4.0, 4.0]]
    """
    axis = torch.arange(-2, 3, dtype=torch.float64) * spacing
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return GaussianMixture2D(torch.stack([xs.flatten(), ys.flatten()], dim=1), std)


def spiral(n_components: int = 100, turns: float = 1.5, radius: float = 4.0, std: float = 0.1) -> GaussianMixture2D:
    """Equally weighted Gaussians along an Archimedean spiral ``r = radius * theta / theta_max``.

    A mixture rather than a noisy curve, so the density is still closed-form. The components are spaced
    about evenly by arc length (the arc length of ``r ~ theta`` grows like ``theta^2``), so with the
    defaults neighbours are about 1.8 stds apart and the density is a smooth ridge, not a string of beads.

    Args:
        n_components: Number of Gaussians.
        turns: Number of turns of the spiral.
        radius: Distance of the outer end from the origin.
        std: Standard deviation of every component.

    Example:
        >>> spiral().num_components
        100
    """
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"`n_components` must be an integer >= 1, got {n_components!r}.")
    if not turns > 0:
        raise ValueError(f"`turns` must be > 0, got {turns!r}.")
    # Start a little way out: the innermost stretch is too tightly wound to resolve at this std.
    t = torch.linspace(0.05, 1.0, n_components, dtype=torch.float64).sqrt()
    theta = 2 * math.pi * turns * t
    means = radius * t.unsqueeze(1) * torch.stack([theta.cos(), theta.sin()], dim=1)
    return GaussianMixture2D(means, std)


TOY_DISTRIBUTIONS: dict[str, Callable[[], GaussianMixture2D]] = {"ring8": ring8, "grid25": grid25, "spiral": spiral}


class ToyDataModule(TensorDataModule):
    """Samples of a 2-D mixture from :data:`TOY_DISTRIBUTIONS`, served as tensor slices.

    The train, validation and test samples are drawn once, at construction, from a generator seeded
    with ``seed``: the same seed gives the same tensors everywhere, so runs are comparable. Batches are
    ``(points, component_labels)``; the components double as classes for a conditional GAN.

    Args:
        name: A key of :data:`TOY_DISTRIBUTIONS`: ``"ring8"``, ``"grid25"`` or ``"spiral"``.
        n_samples: Training points.
        n_val: Validation points (0 for none: the validation loader is then empty).
        n_test: Test points (0 for none).
        batch_size: Points per batch.
        seed: Seed of the draw.

    Attributes:
        distribution: The :class:`GaussianMixture2D` sampled.
        image_shape: ``(2,)``.
        num_classes: The number of mixture components.

    Raises:
        ValueError: If ``name`` is unknown, ``batch_size < 1``, or a sample count is not a valid integer.

    Example:
        >>> dm = ToyDataModule("ring8", n_samples=512, n_val=64, n_test=0, batch_size=128)
        >>> dm.image_shape, dm.num_classes
        ((2,), 8)
        >>> points, labels = next(iter(dm.train_dataloader()))
        >>> tuple(points.shape), tuple(labels.shape)
        ((128, 2), (128,))
        >>> dm.log_prob(points).shape
        torch.Size([128])
    """

    def __init__(
        self,
        name: str = "ring8",
        n_samples: int = 50_000,
        n_val: int = 5_000,
        n_test: int = 5_000,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        if not isinstance(name, str) or name not in TOY_DISTRIBUTIONS:
            raise ValueError(f"Unknown toy distribution `name`={name!r}; known names: {sorted(TOY_DISTRIBUTIONS)}.")
        _check_batch_size(batch_size)
        _check_count("n_samples", n_samples, minimum=1)
        _check_count("n_val", n_val, minimum=0)
        _check_count("n_test", n_test, minimum=0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"`seed` must be an integer, got {seed!r}.")

        distribution = TOY_DISTRIBUTIONS[name]()
        generator = torch.Generator().manual_seed(seed)
        # Drawn in a fixed order from one generator, so each split depends only on the seed and the sizes before it.
        train = distribution.sample(n_samples, generator=generator)
        val = distribution.sample(n_val, generator=generator)
        test = distribution.sample(n_test, generator=generator)
        super().__init__(
            train=train,
            val=val if n_val else None,
            test=test if n_test else None,
            batch_size=batch_size,
        )
        self.name = name
        self.seed = seed
        self.distribution = distribution
        # The base class infers classes from the labels drawn; a component that drew no point still counts.
        self.num_classes = distribution.num_components

    def log_prob(self, x: Tensor) -> Tensor:
        """The exact log-density of the data distribution at ``x`` (``(n, 2)``), in float64."""
        return self.distribution.log_prob(x)

    def val_dataloader(self) -> DataLoader:
        # The GAN module defines `validation_step`, so Lightning asks for this loader even when `n_val=0`;
        # an empty loader makes it skip validation instead of failing.
        if "val" not in self._splits:
            return _empty_loader(self.batch_size)
        return super().val_dataloader()

    def test_dataloader(self) -> DataLoader:
        if "test" not in self._splits:
            return _empty_loader(self.batch_size)
        return super().test_dataloader()


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


def _empty_loader(batch_size: int) -> DataLoader:
    dataset = BatchedTensorDataset(torch.empty(0, 2), torch.empty(0, dtype=torch.long))
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_batch)
