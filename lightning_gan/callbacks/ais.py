r"""The AIS log-likelihood of held-out data during training, with a BDMC check of its schedule."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from typing_extensions import override

from lightning_gan.callbacks._evaluation import _check_int, _first_loader, _real_from_batch
from lightning_gan.data.sharding import FixedOrderShards, shard_bounds
from lightning_gan.metrics.ais import AISLogLikelihood
from lightning_gan.metrics.annealing import SigmasLike, as_sigmas, bdmc, default_ais_sigmas
from lightning_gan.metrics.parzen import ValueRange, _as_value_range

__all__ = ["AISLikelihoodCallback"]


def differentiable_generator(pl_module: pl.LightningModule) -> tuple[Callable[[Tensor], Tensor], int]:
    """The map ``z -> x`` that ``generate`` samples from (the moving average when there is one), with gradients.

    ``generate`` runs without gradients; AIS needs the gradient of the generator with respect to ``z``.

    Raises:
        TypeError: If the module is not an unconditional GAN of this package (a ``generator`` and a
            ``latent_dim`` hyperparameter, ``num_classes`` None).
    """
    latent_dim = getattr(getattr(pl_module, "hparams", {}), "get", lambda *_: None)("latent_dim")
    if not hasattr(pl_module, "generator") or not isinstance(latent_dim, int):
        raise TypeError(
            f"AIS needs a GAN with a `generator` and a `latent_dim` hyperparameter (lightning_gan.GAN or a subclass); "
            f"got {type(pl_module).__name__}."
        )
    if getattr(pl_module, "num_classes", None) is not None:
        raise TypeError(
            f"{type(pl_module).__name__} is class-conditional; AIS here estimates log p(x) of an unconditional "
            "generator (log p(x) = log sum_y p(y) p(x|y) would need one AIS run per class)."
        )
    ema = getattr(pl_module, "generator_ema", None)
    network = ema.module if ema is not None else pl_module.generator
    run = getattr(pl_module, "_run", None)
    return ((lambda z: run(network, z, None)) if callable(run) else network), latent_dim


class AISLikelihoodCallback(pl.Callback):
    r"""Logs the AIS log-likelihood of a fixed subset of validation points, and the BDMC gap of its schedule.

    Every ``every_n_epochs``-th validation run (the sanity check is skipped) it scores the first
    ``num_points`` points of the first validation dataset, in index order, with
    :class:`~lightning_gan.metrics.AISLogLikelihood` for every sigma of the grid, and logs at the best sigma:

    * ``val/ais_log_likelihood``: mean :math:`\widehat{\log p}(x)` in nats, in [0, 1]-pixel units (see
      ``value_range``), the units of the package's Parzen numbers and of Wu et al. (2017)'s table;
    * ``val/ais_stderr``: its standard error over the points; ``val/ais_sigma``: the chosen sigma;
    * ``val/ais_acceptance``: the mean HMC acceptance rate (near 0.65 when the step sizes adapted);
    * ``val/ais_bdmc_gap``: the mean gap between reverse and forward AIS on ``bdmc_points`` points
      simulated from the model at that sigma (:func:`~lightning_gan.metrics.bdmc`): the bound on
      the estimate's error for data like the model's own. When it is above a nat, raise ``num_steps``.

    Choosing sigma on the scored points biases the number up slightly (as the Parzen callback's does);
    :meth:`~pytorch_lightning.Trainer.test` scores the test set's first ``num_points`` at the chosen sigma
    and logs ``test/ais_log_likelihood``, ``test/ais_stderr``, ``test/ais_sigma`` and ``test/ais_bits_per_dim``.

    Under DDP each process scores a contiguous block of the points (no padding), every point's chains are
    seeded by its index, and the states are merged exactly: the numbers equal a single process's.

    Args:
        num_points: Validation (and test) points scored, the first ones in index order.
        sigmas: Observation-noise widths to choose from, in [0, 1]-pixel units
            (default :func:`~lightning_gan.metrics.annealing.default_ais_sigmas`).
        num_steps: Intermediate distributions per AIS run.
        num_chains: Chains per point.
        leapfrog_steps: Leapfrog steps per HMC transition.
        bdmc_points: Simulated points for the BDMC gap (0: no BDMC).
        every_n_epochs: Run on every n-th epoch's validation.
        batch_size: Points per AIS batch (each is ``batch_size * len(sigmas) * num_chains`` generator rows).
        value_range: Range of the data and generator outputs, mapped onto [0, 1] for the reported numbers;
            ``None`` reports in the data's own units.
        seed: Seed of the chains' counter-based random stream.

    Raises:
        ValueError: In ``setup``, on a count below its minimum or a bad sigma or range.
        TypeError: In ``setup``, if the module is not an unconditional GAN of this package.

    Example:
        >>> import lightning_gan
        >>> from lightning_gan.data import TensorDataModule
        >>> gan = lightning_gan.VanillaGAN(image_shape=(4,), latent_dim=2, generator_hidden=(8,),
        ...     discriminator_hidden=(8,), maxout_pieces=1, dropout=0.0)
        >>> dm = TensorDataModule(torch.rand(64, 4) * 2 - 1, val=torch.rand(16, 4) * 2 - 1, batch_size=32)
        >>> callback = AISLikelihoodCallback(num_points=8, sigmas=[0.2, 0.4], num_steps=10, num_chains=2,
        ...     bdmc_points=4)
        >>> trainer = pl.Trainer(max_epochs=1, callbacks=[callback], logger=False, enable_progress_bar=False,
        ...     enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
        >>> trainer.fit(gan, dm)
        >>> sorted(k for k in trainer.callback_metrics if k.startswith("val/ais"))  # doctest: +NORMALIZE_WHITESPACE
        ['val/ais_acceptance', 'val/ais_bdmc_gap', 'val/ais_log_likelihood', 'val/ais_sigma', 'val/ais_stderr']
    """

    def __init__(
        self,
        num_points: int = 100,
        sigmas: Optional[SigmasLike] = None,
        num_steps: int = 500,
        num_chains: int = 16,
        leapfrog_steps: int = 10,
        bdmc_points: int = 16,
        every_n_epochs: int = 1,
        batch_size: int = 100,
        value_range: Optional[ValueRange] = (-1.0, 1.0),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_points, self.sigmas, self.num_steps, self.num_chains = num_points, sigmas, num_steps, num_chains
        self.leapfrog_steps, self.bdmc_points, self.every_n_epochs = leapfrog_steps, bdmc_points, every_n_epochs
        self.batch_size, self.value_range, self.seed = batch_size, value_range, seed
        #: The sigma chosen on the last validation run (``None`` before one); test runs use it.
        self.best_sigma: Optional[float] = None
        #: The last result per stage: the metric's ``compute()`` plus ``bdmc_gap`` on validation.
        self.results: dict[str, dict[str, Tensor]] = {}

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for name, minimum in (("num_points", 1), ("num_steps", 1), ("num_chains", 1), ("leapfrog_steps", 1),
                              ("bdmc_points", 0), ("every_n_epochs", 1), ("batch_size", 1), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        self._grid = as_sigmas(default_ais_sigmas() if self.sigmas is None else self.sigmas)
        self._range = _as_value_range(self.value_range)
        differentiable_generator(pl_module)  # refuses a module it cannot score, before training

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "fit" and (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        result = self._score(trainer, pl_module, trainer.val_dataloaders, self._grid)
        if result is None:
            return
        self.best_sigma = float(result["best_sigma"])
        if self.bdmc_points:
            result["bdmc_gap"] = self._bdmc_gap(trainer, pl_module, self.best_sigma)
        self.results["val"] = result
        self._log(pl_module, "val", result)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_sigma is None:
            warnings.warn(
                f"{type(self).__name__}: no validation run chose sigma, so it is chosen on the test points "
                "themselves, which biases the test log-likelihood upwards. Run validation (fit) first.",
                UserWarning,
                stacklevel=2,
            )
        sigmas = self._grid if self.best_sigma is None else torch.tensor([self.best_sigma], dtype=torch.float64)
        result = self._score(trainer, pl_module, trainer.test_dataloaders, sigmas)
        if result is not None:
            self.results["test"] = result
            self._log(pl_module, "test", result)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"best_sigma": self.best_sigma}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_sigma = state_dict.get("best_sigma")

    # ------------------------------------------------------------------ helpers

    def _metric(self, pl_module: pl.LightningModule, sigmas: Tensor) -> AISLogLikelihood:
        generator, latent_dim = differentiable_generator(pl_module)
        return AISLogLikelihood(
            latent_dim=latent_dim, sigmas=sigmas, num_steps=self.num_steps, num_chains=self.num_chains,
            leapfrog_steps=self.leapfrog_steps, seed=self.seed, value_range=self._range, generator=generator,
        ).to(pl_module.device)

    def _score(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loaders: Any,
               sigmas: Tensor) -> Optional[dict[str, Tensor]]:
        loader = _first_loader(loaders)
        if loader is None or not hasattr(loader, "dataset"):
            return None
        count = min(self.num_points, len(loader.dataset))
        subset = DataLoader(Subset(loader.dataset, range(count)), batch_size=self.batch_size,
                            collate_fn=loader.collate_fn if loader.batch_size is not None else None)
        shards = FixedOrderShards(subset, batch_size=self.batch_size)
        start, _ = shard_bounds(count, trainer.global_rank, trainer.world_size)
        metric = self._metric(pl_module, sigmas)
        for batch in shards.batches(trainer.global_rank, trainer.world_size):
            x = _real_from_batch(pl_module, trainer.strategy.batch_to_device(batch))
            metric.update(x, point_ids=torch.arange(start, start + len(x), device=x.device))
            start += len(x)
        return metric.compute()  # merged over processes

    def _bdmc_gap(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sigma: float) -> Tensor:
        """Mean reverse-minus-forward gap over ``bdmc_points`` simulated points, split across processes."""
        generator, latent_dim = differentiable_generator(pl_module)
        start, stop = shard_bounds(self.bdmc_points, trainer.global_rank, trainer.world_size)
        totals = torch.zeros(2, dtype=torch.float64, device=pl_module.device)
        if stop > start:
            scale = 1.0 if self._range is None else self._range[1] - self._range[0]
            result = bdmc(generator, latent_dim, stop - start, sigma * scale, num_steps=self.num_steps,
                          num_chains=self.num_chains, leapfrog_steps=self.leapfrog_steps, seed=self.seed,
                          point_ids=torch.arange(start, stop, device=pl_module.device), device=pl_module.device)
            totals += torch.stack([(result.upper - result.lower).sum(), torch.tensor(float(stop - start))]).to(totals)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)
        return totals[0] / totals[1]

    def _log(self, pl_module: pl.LightningModule, stage: str, result: dict[str, Tensor]) -> None:
        values = {
            f"{stage}/ais_log_likelihood": result["best_log_likelihood"],
            f"{stage}/ais_stderr": result["best_stderr"],
            f"{stage}/ais_sigma": result["best_sigma"],
        }
        best = int(torch.argmax(result["log_likelihood"]))
        if stage == "val":
            values["val/ais_acceptance"] = result["acceptance_rate"][best]
            if "bdmc_gap" in result:
                values["val/ais_bdmc_gap"] = result["bdmc_gap"]
        else:
            values["test/ais_bits_per_dim"] = result["bits_per_dim"]
        for name, value in values.items():
            # Every process holds the same merged value: no further reduction.
            pl_module.log(name, float(value), rank_zero_only=False, sync_dist=False)
        if not math.isfinite(float(result["best_log_likelihood"])):
            warnings.warn(f"{type(self).__name__}: the {stage} AIS log-likelihood is not finite.", UserWarning,
                          stacklevel=2)
