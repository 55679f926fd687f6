r"""Likelihood callbacks: the Parzen-window estimate on validation/test data, and for toy data with a known
density, sample quality next to coverage.

Both reach the model only through ``pl_module.generate(n)`` (the moving-average generator when there is
one) and are DDP-correct: each process draws its share of the samples, the shares are gathered so every
process holds the same Parzen centres, each process scores its own shard of the data, and the metric
states are summed, so every generated sample and every data point counts exactly once.

Parzen numbers are reported in the units of pixels in [0, 1] (``value_range``), as in Goodfellow et al.
(2014)'s table, whatever range the model works in.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import pytorch_lightning as pl
import torch
from torch import Tensor
from typing_extensions import override

from lightning_gan.callbacks._evaluation import _first_loader, _real_from_batch
from lightning_gan.data.sharding import FixedOrderShards
from lightning_gan.metrics.parzen import (
    ParzenLogLikelihood,
    SigmasLike,
    ValueRange,
    _as_sigmas,
    _as_value_range,
    default_sigmas,
)
from lightning_gan.metrics.toy import LogProbOfSamples, ModeCoverage

__all__ = ["ParzenLikelihoodCallback", "ToyLikelihoodCallback"]


# Added to a process's sampling seed per extra stream of samples (an odd 64-bit constant, the golden ratio's
# bits), so a second draw in the same hook does not repeat the first and no two processes' streams meet.
_STREAM_STRIDE = 0x9E3779B97F4A7C15


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


def _share(total: int, world: int, rank: int) -> int:
    """This process's share of ``total`` items: ``total // world``, plus one for the first ``total % world``."""
    base, extra = divmod(total, world)
    return base + (1 if rank < extra else 0)


class ParzenLikelihoodCallback(pl.Callback):
    r"""Logs the Parzen-window log-likelihood of validation (and test) data under generated samples.

    .. math:: \mathrm{LL} = \frac{1}{N}\sum_n \log \frac{1}{M}\sum_i \mathcal{N}(x_n; \mu_i, \sigma^2 I),
              \qquad \mu_i = G(z_i)

    At the start of every ``every_n_epochs``-th validation run it draws ``num_samples`` samples (each
    process its share; the first ``num_samples % world_size`` processes one more), gathers them on every
    process, scores every validation batch against them for a grid of sigmas, and at the end logs, for
    the sigma that maximises the validation log-likelihood:

    * ``val/parzen_log_likelihood``: the mean log-density of the validation points in nats, **in units of
      pixels in [0, 1]**: data and samples are mapped from ``value_range`` (default [-1, 1], a ``tanh``
      generator's range) onto [0, 1] first, so the number compares directly with Goodfellow et al. (2014)'s
      Table 1 (MNIST 225 ± 2), with no :math:`d \ln 2` to add;
    * ``val/parzen_stderr``: its standard error (population std over the points / sqrt N);
    * ``val/parzen_sigma``: the chosen window width, in the same [0, 1] units (the default grid
      ``logspace(-1, 0, 10)`` is Goodfellow et al.'s, meaning what it meant there). A warning names the grid
      when the chosen sigma is its smallest or largest value.

    :meth:`~pytorch_lightning.Trainer.test` (the module needs a ``test_step``) reuses that sigma
    (choosing it on test data instead, with a warning, if validation never ran) and logs
    ``test/parzen_log_likelihood``, ``test/parzen_stderr``, ``test/parzen_sigma`` and
    ``test/parzen_bits_per_dim``, :math:`-\mathrm{LL} / (d \ln 2)` for a density over [0, 1] per pixel (add 8
    for bits per 8-bit pixel, a density over [0, 256]; it can be negative). With ``value_range=None`` all of
    these are in the data's own units instead. The sanity-check validation run is skipped. The data scored
    are the whole dataset behind the first validation/test dataloader, read by the callback itself in
    index order (:class:`~lightning_gan.data.FixedOrderShards`): ``limit_val_batches`` does not shorten
    it, and under DDP each process scores a contiguous block, without the duplicates Lightning's
    ``DistributedSampler`` adds to even out its shards, so every data point counts exactly once.

    Samples are drawn under a forked RNG, reseeded per process: adding the callback does not change
    training's random stream, and processes seeded alike still draw different samples.

    The estimate rewards coverage, not sample quality, and is unreliable in high dimension: read it
    with a sample-quality measure next to it (Theis et al., 2016).

    Args:
        num_samples: Generated samples used as Parzen centres (over all processes).
        sigmas: Window widths to choose from, in [0, 1]-pixel units (the data's own units if
            ``value_range=None``); default ``logspace(-1, 0, 10)`` as in Goodfellow et al.
        every_n_epochs: Run on every n-th epoch's validation.
        batch_size: Samples per ``generate`` call.
        chunk_size: Block size of the distance computation (memory ~ ``chunk_size**2``).
        value_range: ``(low, high)``, the range of the data and samples as the model sees them; both are
            mapped affinely onto [0, 1] before scoring. ``(-1.0, 1.0)`` (the default) for images scaled to
            [-1, 1] (this package's image data modules), ``(0.0, 1.0)`` for images in [0, 1], ``None`` for
            no rescaling (data that are not pixels). A warning says so when the data leave the range.

    Raises:
        ValueError: In ``setup``, if a count or size is not an integer >= 1, a sigma is not > 0, or
            ``value_range`` is not finite with ``low < high``.
        TypeError: In ``setup``, if ``value_range`` is not ``None`` or a pair of numbers.

    Example:
        >>> import lightning_gan
        >>> from lightning_gan.data import TensorDataModule
        >>> gan = lightning_gan.VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(8,),
        ...     discriminator_hidden=(8,), maxout_pieces=1, dropout=0.0, output_activation="identity")
        >>> dm = TensorDataModule(torch.rand(64, 2) * 2 - 1, val=torch.rand(32, 2) * 2 - 1, batch_size=32)  # in [-1, 1]
        >>> callback = ParzenLikelihoodCallback(num_samples=64)
        >>> trainer = pl.Trainer(max_epochs=1, callbacks=[callback], logger=False, enable_progress_bar=False,
        ...     enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
        >>> trainer.fit(gan, dm)
        >>> sorted(k for k in trainer.callback_metrics if k.startswith("val/parzen"))
        ['val/parzen_log_likelihood', 'val/parzen_sigma', 'val/parzen_stderr']
    """

    def __init__(
        self,
        num_samples: int = 10000,
        sigmas: Optional[SigmasLike] = None,
        every_n_epochs: int = 1,
        batch_size: int = 1000,
        chunk_size: int = 1024,
        value_range: Optional[ValueRange] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.sigmas = sigmas
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.value_range = value_range
        #: The sigma chosen on the last validation run (``None`` before one); test runs use it.
        self.best_sigma: Optional[float] = None
        #: The last ``ParzenLogLikelihood.compute()`` result per stage (``"val"``, ``"test"``).
        self.results: dict[str, dict[str, Tensor]] = {}
        self._metric: Optional[ParzenLogLikelihood] = None

    # ------------------------------------------------------------------ Lightning hooks

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for name in ("num_samples", "every_n_epochs", "batch_size", "chunk_size"):
            _check_positive_int(name, getattr(self, name))
        self._sigma_grid = _as_sigmas(self._default_sigmas() if self.sigmas is None else self.sigmas)
        self._value_range = _as_value_range(self.value_range)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._metric = None
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "fit" and (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        self._start(trainer, pl_module, "val", self._sigma_grid)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._score_data(trainer, pl_module, trainer.val_dataloaders)
        result = self._finish(trainer, pl_module, "val")
        if result is not None:
            self.best_sigma = float(result["best_sigma"])
            self._log(pl_module, "val", result, bits_per_dim=False)

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_sigma is not None:
            sigmas = torch.tensor([self.best_sigma], dtype=torch.float64)
        else:
            warnings.warn(
                f"{type(self).__name__}: no validation run chose a Parzen sigma, so it is chosen on the test "
                "set itself, which biases the test log-likelihood upwards. Run validation (fit) first.",
                UserWarning,
                stacklevel=2,
            )
            sigmas = self._sigma_grid
        self._start(trainer, pl_module, "test", sigmas)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._score_data(trainer, pl_module, trainer.test_dataloaders)
        result = self._finish(trainer, pl_module, "test")
        if result is not None:
            self._log(pl_module, "test", result, bits_per_dim=True)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"best_sigma": self.best_sigma}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_sigma = state_dict.get("best_sigma")

    # ------------------------------------------------------------------ overridable pieces

    def _default_sigmas(self) -> Tensor:
        return default_sigmas()

    def _on_samples(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, local: Tensor) -> None:
        """Called with this process's own generated samples at the start of a run (subclasses score them)."""

    def _extra_logs(self, stage: str) -> dict[str, float]:
        """More values to log at the end of a run (subclasses)."""
        return {}

    # ------------------------------------------------------------------ helpers

    def _score_data(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loaders: Any) -> None:
        """Scores this process's contiguous, unpadded block of the first loader's dataset."""
        loader = _first_loader(loaders)
        if self._metric is None or loader is None:
            return
        shards = FixedOrderShards(loader, batch_size=loader.batch_size or self.batch_size)
        for batch in shards.batches(trainer.global_rank, trainer.world_size):
            self._metric.update(_real_from_batch(pl_module, trainer.strategy.batch_to_device(batch)))

    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, sigmas: Tensor) -> None:
        local, centres = self._draw_centres(trainer, pl_module)
        self._on_samples(trainer, pl_module, stage, local)
        metric = ParzenLogLikelihood(sigmas=sigmas, chunk_size=self.chunk_size, value_range=self._value_range)
        metric = metric.to(pl_module.device)
        metric.set_centres(centres)
        self._metric = metric

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> Optional[dict[str, Tensor]]:
        metric, self._metric = self._metric, None
        if metric is None:
            return None
        try:
            result = metric.compute()
        except RuntimeError as error:
            if "saw no samples" not in str(error):
                raise
            # Raised after the count is summed over processes, so every process takes this branch together.
            warnings.warn(f"{type(self).__name__}: no {stage} batch was seen; nothing is logged.", UserWarning, stacklevel=2)
            return None
        self.results[stage] = {k: v.detach().cpu() for k, v in result.items()}
        return result

    def _log(self, pl_module: pl.LightningModule, stage: str, result: dict[str, Tensor], bits_per_dim: bool) -> None:
        values = {
            f"{stage}/parzen_log_likelihood": float(result["best_log_likelihood"]),
            f"{stage}/parzen_stderr": float(result["best_stderr"]),
            f"{stage}/parzen_sigma": float(result["best_sigma"]),
        }
        if bits_per_dim:
            values[f"{stage}/parzen_bits_per_dim"] = float(result["bits_per_dim"])
        values.update(self._extra_logs(stage))
        # Every process holds the same synced values; sync_dist averages identical numbers (exactly) and
        # keeps Lightning from warning about unsynced epoch-level logs under DDP.
        for name, value in values.items():
            pl_module.log(name, value, sync_dist=True)

    def _draw_centres(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        """(this process's samples, all processes' samples in rank order)."""
        if not callable(getattr(pl_module, "generate", None)):
            raise TypeError(
                f"{type(self).__name__} needs a module with a `generate(n)` method (lightning_gan.GAN has one); "
                f"got {type(pl_module).__name__}."
            )
        world, rank = max(trainer.world_size, 1), trainer.global_rank
        shares = [_share(self.num_samples, world, r) for r in range(world)]
        local = self._generate(pl_module, shares[rank])
        if world == 1:
            return local, local
        # all_gather needs equal shapes: pad every share to the largest, then drop the padding. The
        # shares follow from (num_samples, world_size) alone, so no sizes need to be exchanged.
        padded = local.new_zeros((max(shares), *local.shape[1:]))
        padded[: local.shape[0]] = local
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # torch.distributed directly: Lightning's all_gather goes through a deprecated autograd op.
            gathered = [torch.empty_like(padded) for _ in range(world)]
            torch.distributed.all_gather(gathered, padded.contiguous())
        else:
            gathered = list(pl_module.all_gather(padded))  # (world, max_share, ...)
        centres = torch.cat([gathered[r][: shares[r]] for r in range(world)])
        return local, centres

    def _generate(self, pl_module: pl.LightningModule, n: int, stream: int = 0) -> Tensor:
        """``n`` samples under a forked RNG; another ``stream`` gives other samples in the same hook."""
        device = pl_module.device
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            # Reseed per process inside the fork: processes seeded alike (seed_everything) would otherwise
            # draw identical samples, counting each one world_size times; training's stream is untouched.
            seed = int(torch.randint(0, 2**62, (1,))) + pl_module.global_rank
            # The fork restores the state afterwards, so a second call in the same hook would draw the same
            # seed: `stream` moves it.
            seed = (seed + stream * _STREAM_STRIDE) % 2**63
            torch.default_generator.manual_seed(seed)
            if device.type == "cuda":
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            # At least one sample, even for an empty share, to learn the sample shape for the gather.
            chunks = [pl_module.generate(min(self.batch_size, max(n, 1) - i)) for i in range(0, max(n, 1), self.batch_size)]
        samples = torch.cat(chunks)[:n].detach()
        # Half-precision outputs (bf16 training) are widened: distances need at least float32.
        if samples.dtype != torch.float64:
            samples = samples.float()
        return samples


class ToyLikelihoodCallback(ParzenLikelihoodCallback):
    r"""Sample quality and coverage of a generator on toy data whose density is known exactly.

    .. math:: \underbrace{E_{y \sim G}[\log p_\text{data}(y)]}_{\texttt{val/log\_prob\_of\_samples}}
              \qquad
              \underbrace{E_{x \sim \text{val}}[\log \hat p_{G,\sigma}(x)]}_{\texttt{val/parzen\_log\_likelihood}}

    The first number is **sample quality**: the true log-density at the generated samples, high when
    they sit on the data's modes. The second is **coverage**: the Parzen log-likelihood of validation
    data under the generated samples, poor when some data mode has no samples near it. **Mode collapse**
    shows as a high first number and a poor second; a generator that smears its mass over the plane
    shows the opposite. Also logs everything :class:`ParzenLikelihoodCallback` logs (sigma, stderr; and
    ``test/...`` under :meth:`~pytorch_lightning.Trainer.test`, plus ``test/log_prob_of_samples``), in the
    data's own units (2-D points are not pixels: no ``value_range`` rescaling).

    **Mode coverage** (:class:`~lightning_gan.metrics.toy.ModeCoverage`, the protocol of VEEGAN and
    PacGAN): from ``mode_coverage_samples`` (2,500) generated samples over all processes it logs
    ``val/modes_covered`` (modes with at least one sample within 3 stds of their centre),
    ``val/high_quality_share`` (the share of samples within 3 stds of their nearest mode) and
    ``val/mode_kl`` (the reverse KL from the high-quality samples' mode histogram to the uniform one; NaN if
    no sample is high quality), and the ``test/`` equivalents. The samples are the first of the Parzen draw
    when ``num_samples`` is at least as large (each process takes its share of both), else a draw of their
    own. The modes' means and stds come from ``mode_means``/``mode_stds``, else from the object behind an
    explicit ``log_prob`` (a bound :meth:`GaussianMixture2D.log_prob <lightning_gan.data.toy.GaussianMixture2D.log_prob>`),
    else from the datamodule's ``distribution`` (:class:`~lightning_gan.data.toy.ToyDataModule`).

    Args:
        log_prob: The data's exact log-density (``(n, 2) -> (n,)``); default ``trainer.datamodule.log_prob``
            (e.g. :class:`~lightning_gan.data.toy.ToyDataModule`).
        num_samples: Generated samples per run (over all processes), for both numbers.
        every_n_epochs: Run on every n-th epoch's validation.
        sigmas: Parzen widths to choose from; default ``logspace(-2, 0, 10)``, suited to 2-D mixtures
            with component stds around 0.05 to 0.1.
        batch_size: Samples per ``generate`` call.
        chunk_size: Block size of the distance computation.
        mode_coverage_samples: Generated samples (over all processes) for the mode-coverage numbers; 0
            turns them off.
        mode_means: The modes' centres ``(K, 2)``; default: found as described above.
        mode_stds: The modes' stds ``(K,)`` or one number; given together with ``mode_means``.

    Raises:
        ValueError: In ``setup``, if no ``log_prob`` is given and the datamodule has none, if mode coverage
            is on and no means and stds are given or found, if only one of ``mode_means``/``mode_stds`` is
            given, if ``mode_coverage_samples`` is not an integer >= 0, or as :class:`ParzenLikelihoodCallback`.

    Example:
        >>> import lightning_gan
        >>> from lightning_gan.data.toy import ToyDataModule
        >>> gan = lightning_gan.VanillaGAN(image_shape=(2,), latent_dim=2, generator_hidden=(8,),
        ...     discriminator_hidden=(8,), maxout_pieces=1, dropout=0.0, output_activation="identity")
        >>> dm = ToyDataModule("ring8", n_samples=64, n_val=32, n_test=0, batch_size=32)
        >>> callback = ToyLikelihoodCallback(num_samples=64, mode_coverage_samples=64)
        >>> trainer = pl.Trainer(max_epochs=1, callbacks=[callback], logger=False,
        ...     enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        ...     num_sanity_val_steps=0)
        >>> trainer.fit(gan, dm)
        >>> sorted(k for k in trainer.callback_metrics if k.startswith("val/") and "d_real" not in k)  # doctest: +NORMALIZE_WHITESPACE
        ['val/high_quality_share', 'val/log_prob_of_samples', 'val/mode_kl', 'val/modes_covered',
         'val/parzen_log_likelihood', 'val/parzen_sigma', 'val/parzen_stderr']
    """

    def __init__(
        self,
        log_prob: Optional[Callable[[Tensor], Tensor]] = None,
        num_samples: int = 5000,
        every_n_epochs: int = 1,
        sigmas: Optional[SigmasLike] = None,
        batch_size: int = 1000,
        chunk_size: int = 1024,
        mode_coverage_samples: int = 2500,
        mode_means: Optional[Union[Tensor, Sequence[Sequence[float]]]] = None,
        mode_stds: Optional[Union[float, Tensor, Sequence[float]]] = None,
    ) -> None:
        super().__init__(
            num_samples=num_samples,
            sigmas=sigmas,
            every_n_epochs=every_n_epochs,
            batch_size=batch_size,
            chunk_size=chunk_size,
            value_range=None,
        )
        self.log_prob = log_prob
        self.mode_coverage_samples = mode_coverage_samples
        self.mode_means = mode_means
        self.mode_stds = mode_stds
        self._sample_quality: dict[str, float] = {}
        self._mode_coverage: dict[str, dict[str, float]] = {}

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        _check_positive_int("mode_coverage_samples", self.mode_coverage_samples, minimum=0)
        log_prob = self.log_prob
        if log_prob is None:
            log_prob = getattr(trainer.datamodule, "log_prob", None)
        if not callable(log_prob):
            raise ValueError(
                f"{type(self).__name__} needs the data's log-density: pass `log_prob=` or train with a datamodule "
                f"that has a `log_prob` method (lightning_gan.data.toy.ToyDataModule); the datamodule is "
                f"{type(trainer.datamodule).__name__ if trainer.datamodule is not None else None}."
            )
        self._log_prob = log_prob
        self._modes = self._find_modes(trainer) if self.mode_coverage_samples else None
        if self._modes is not None:
            ModeCoverage(*self._modes)  # validates them now, in setup, not at the first evaluation

    def _find_modes(self, trainer: pl.Trainer) -> tuple[Any, Any]:
        """(means, stds) of the modes: given, or from the log-density's mixture, or from the datamodule's."""
        if (self.mode_means is None) != (self.mode_stds is None):
            raise ValueError(
                f"Give both `mode_means` and `mode_stds` or neither; got mode_means={self.mode_means!r}, "
                f"mode_stds={self.mode_stds!r}."
            )
        if self.mode_means is not None:
            return self.mode_means, self.mode_stds
        # An explicit log_prob comes first: it is the density the user chose to judge samples by.
        candidates = [getattr(self.log_prob, "__self__", None), getattr(trainer.datamodule, "distribution", None)]
        for mixture in candidates:
            if isinstance(getattr(mixture, "means", None), Tensor) and getattr(mixture, "stds", None) is not None:
                return mixture.means, mixture.stds
        raise ValueError(
            f"{type(self).__name__} computes mode coverage (mode_coverage_samples={self.mode_coverage_samples}) "
            "but found no mixture to take the modes from: pass `mode_means=` and `mode_stds=`, train with a "
            "datamodule that has a `distribution` (lightning_gan.data.toy.ToyDataModule), or set "
            "`mode_coverage_samples=0`."
        )

    @override
    def _default_sigmas(self) -> Tensor:
        return torch.logspace(-2, 0, 10, dtype=torch.float64)

    @override
    def _on_samples(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, local: Tensor) -> None:
        # Each process scores only its own samples; the summed states count every sample once.
        metric = LogProbOfSamples(self._log_prob).to(local.device)
        metric.update(local)
        try:
            self._sample_quality[stage] = float(metric.compute())
        except RuntimeError as error:  # no process drew a sample; cannot happen with num_samples >= 1
            if "saw no samples" not in str(error):
                raise
            self._sample_quality[stage] = math.nan
        if self._modes is not None:
            self._mode_coverage[stage] = self._score_modes(trainer, pl_module, local)

    def _score_modes(self, trainer: pl.Trainer, pl_module: pl.LightningModule, local: Tensor) -> dict[str, float]:
        share = _share(self.mode_coverage_samples, max(trainer.world_size, 1), trainer.global_rank)
        # Shares grow with the total, so num_samples >= mode_coverage_samples leaves every process enough.
        samples = local[:share] if len(local) >= share else self._generate(pl_module, share, stream=1)
        metric = ModeCoverage(*self._modes).to(local.device)
        metric.update(samples.reshape(len(samples), -1))
        return {name: float(value) for name, value in metric.compute().items()}

    @override
    def _extra_logs(self, stage: str) -> dict[str, float]:
        logs = {}
        value = self._sample_quality.pop(stage, None)
        if value is not None:
            logs[f"{stage}/log_prob_of_samples"] = value
        for name, number in self._mode_coverage.pop(stage, {}).items():
            logs[f"{stage}/{name}"] = number
        return logs
