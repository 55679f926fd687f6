"""The GAN LightningModule: a discriminator step (or ``n_critic`` of them) and a generator step per batch."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Optional, Union

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torch.optim import Optimizer
from typing_extensions import override

from lightning_gan import losses
from lightning_gan.data.batches import samples_of
from lightning_gan.ema import ExponentialMovingAverage
from lightning_gan.modules._checkpoint_files import check_checkpoint_files
from lightning_gan.modules._checkpoint_hooks import _CheckpointHooks
from lightning_gan.modules._hooks import StepHooks
from lightning_gan.modules._hyperparameters import (
    _discriminator_outputs,
    _outermost_init_keys,
)
from lightning_gan.modules._random import StepRandomness, restore_for_rank, run_seed
from lightning_gan.modules._schedule import _check_lr_decay, _decay_learning_rates_linearly, _validate_schedule_options
from lightning_gan.modules._speed import _check_step_counts, _compile_options_from, _epoch_summary
from lightning_gan.modules._support import (
    _BatchChecks,
    _is_number,
    _validate_arguments,
)
from lightning_gan.strategies import GANDDPStrategy

__all__ = ["GAN", "CRITIC_DATA"]

#: What each of a generator step's ``n_critic`` discriminator steps trains on: ``"fresh"``, its own real
#: micro-batch (Algorithm 1 of WGAN-GP, SNGAN's ``n_dis``); ``"reused"``, the same real micro-batch each time.
CRITIC_DATA = ("fresh", "reused")



class GAN(_CheckpointHooks, _BatchChecks, pl.LightningModule):
    r"""A generative adversarial network trained with manual optimization.

    Per training batch: ``n_critic`` discriminator steps on the batch's real samples and fresh latents,
    then one generator step, then the generator's moving average (when ``ema_decay`` is set). Each step
    toggles its own optimizer so the other network's weights get no gradients.

    **Steps.** ``trainer.global_step`` (and so ``Trainer(max_steps=...)``, ``val_check_interval`` in
    steps, ``ModelCheckpoint(every_n_train_steps=...)``) counts **generator steps**: one per batch,
    whatever ``n_critic`` is. Lightning would otherwise count every optimizer step (pytorch-lightning
    issue 17958), so ``max_steps`` would mean ``max_steps / (n_critic + 1)`` batches.

    **Several steps per batch.** Lightning spends about a millisecond of Python around every batch (hooks,
    progress tracking, logging bookkeeping), which is a fifth of a small GAN's step on a CPU. With
    ``steps_per_batch=k`` the loader's batch holds ``k`` micro-batches (the package's data modules serve
    ``k`` times their ``batch_size``, see :attr:`micro_batches_per_batch`), and the module trains on them one after the other: ``n_critic`` discriminator steps and one generator
    step (and the moving average, and step-interval LR schedulers) per micro-batch, so every real sample
    is used in exactly one step, as with ``k = 1`` and a loader ``k`` times smaller. Counts stay in
    generator steps: ``trainer.global_step`` advances by ``k`` per batch, and the step on the loggers'
    x-axis is the generator step. So that checkpoints, logs and the end fall on batch boundaries, ``max_steps``,
    ``log_every_n_steps`` and every ``ModelCheckpoint(every_n_train_steps=...)`` must be multiples of ``k``
    (refused at the start of ``fit`` otherwise); ``val_check_interval`` and ``limit_train_batches`` keep
    counting loader batches, as in Lightning.

    **Fresh real data per critic step.** With ``critic_data="fresh"`` (the presets' default) each of the
    ``n_critic`` discriminator steps of a generator step trains on its own real micro-batch, as in
    Algorithm 1 of WGAN-GP (Gulrajani et al. 2017) and SNGAN's ``n_dis`` loop: the loader's batch then
    holds ``steps_per_batch x n_critic`` micro-batches, and one epoch is ``n_critic`` times fewer
    generator steps than with ``"reused"``, where every critic step of a generator step sees the same
    real micro-batch (the base class's default, for compatibility). With ``n_critic=1`` both are the same.

    **Compiled step.** With ``compile`` set, the discriminator step's generator and discriminator passes
    and :meth:`discriminator_loss`, and the generator step's passes and :meth:`generator_loss`, run as
    two ``torch.compile``-d functions (AOTAutograd compiles their backward too). Latents and labels are
    drawn outside them, from the step's stream, so a compiled run draws what an eager one draws. Gradient
    penalties (``gp_weight``, ``r1_gamma``, ``dragan_weight``, an overridden :meth:`discriminator_penalty`) need a double
    backward, which ``torch.compile`` does not support: the discriminator step then runs eagerly, with
    one warning, and the generator step is still compiled. The first step runs eagerly (it checks shapes).

    **Hooks to override** (each documented below): :meth:`sample_latent`, :meth:`forward`,
    :meth:`generate`, :meth:`discriminator_loss`, :meth:`generator_loss`,
    :meth:`discriminator_penalty`, :meth:`discriminator_auxiliary_losses`,
    :meth:`generator_auxiliary_losses`, :meth:`real_from_batch`, :meth:`configure_optimizers`, and, for a
    different schedule, :meth:`discriminator_step` and :meth:`generator_step`.

    **Auxiliary heads.** A discriminator may return ``(logits, heads)``, ``heads`` a dict of tensors from
    the same body (:class:`~lightning_gan.nets.AuxiliaryHeads` adds a classifier, a Q head or the
    features to the package's discriminators); the adversarial loss and penalties read the logits, and
    :meth:`discriminator_auxiliary_losses` / :meth:`generator_auxiliary_losses` turn the heads into loss
    terms (:class:`~lightning_gan.ACGAN`, :class:`~lightning_gan.InfoGAN` and
    :class:`~lightning_gan.FeatureMatchingGAN` are such overrides).

    **Class-conditional models.** With ``num_classes`` set, both networks are called with labels,
    ``generator(z, labels)`` and ``discriminator(x, labels)`` (the nets in :mod:`lightning_gan.nets` take
    ``num_classes`` for this), batches must carry labels (``(samples, labels)`` tuples or a dict with a
    ``"label"`` entry, as every data module of the package yields), and :meth:`generate` draws labels
    uniformly unless given some. Each step generates its fakes **for the batch's labels**, so the
    discriminator compares real and generated samples class by class and the gradient penalty
    interpolates within a class.

    **Multi-process training.** Use ``Trainer(strategy="gan_ddp")`` (:class:`~lightning_gan.GANDDPStrategy`);
    Lightning's plain ``"ddp"`` cannot train a GAN and is refused with a message that says so.

    Args:
        generator: Maps latents of shape ``(N, latent_dim)`` to samples shaped like the data.
        discriminator: Maps samples to one logit (or critic score) per sample, shape ``(N,)`` or ``(N, 1)``.
        latent_dim: Size of the latent vector drawn by :meth:`sample_latent`.
        loss: Name of an adversarial loss in :data:`lightning_gan.losses.LOSSES`: ``"minimax"``,
            ``"non_saturating"``, ``"wasserstein"``, ``"hinge"`` or ``"least_squares"``.
        lr_g: Adam learning rate of the generator.
        lr_d: Adam learning rate of the discriminator.
        betas: Adam's ``(beta1, beta2)`` for both networks.
        n_critic: Discriminator steps per generator step.
        gp_weight: Weight of the WGAN-GP gradient penalty (0 disables it).
        r1_gamma: :math:`\gamma` of the R1 penalty :math:`\frac{\gamma}{2} E\|\nabla D(x)\|^2` (0 disables it).
        ema_decay: Decay of the generator's exponential moving average, in (0, 1); ``None`` keeps none.
        gradient_clip_val: Clip each network's gradients at this value before its step (Lightning's
            ``Trainer(gradient_clip_val=...)`` is not available with manual optimization).
        gradient_clip_algorithm: ``"norm"`` or ``"value"``.
        num_classes: Number of classes of a class-conditional GAN; ``None`` (the default) for an
            unconditional one.
        discriminator_outputs: What the discriminator returns, which decides how ``train/d_real`` and
            ``train/d_fake`` summarise it: ``"logits"`` (logged as the mean probability, through a
            sigmoid), ``"probabilities"`` or ``"scores"`` (a critic's; both logged as their mean). ``None``
            (the default): ``"probabilities"`` for a discriminator ending in ``nn.Sigmoid``, else
            ``"logits"`` for the minimax and non-saturating losses and ``"scores"`` for the others.
        steps_per_batch: Generator steps per batch of the loader, each on its own slice of the batch (see
            *Several steps per batch* above). The package's data modules serve batches of
            :attr:`micro_batches_per_batch` times their ``batch_size``; a plain loader's batch size must
            be a multiple of it.
        critic_data: ``"fresh"`` (each discriminator step of a generator step on its own real micro-batch;
            the loader's batch holds ``steps_per_batch * n_critic`` micro-batches) or ``"reused"``
            (all ``n_critic`` of them on the same one); see *Fresh real data per critic step* above.
        compile: ``True`` or a dict of ``torch.compile`` arguments (``{"mode": "reduce-overhead"}`` for CUDA
            graphs) to compile each step's forward passes and loss, and so their backward (see *Compiled
            step* above); ``False`` (the default) runs eagerly.
        n_gen: Generator steps after each round of ``n_critic`` discriminator steps, each on fresh latents
            (and with the moving average and step-interval schedulers after each). They count in
            ``trainer.global_step`` like any generator step, so it advances by ``n_gen`` per batch (times
            ``steps_per_batch``), and ``max_steps`` and the logging and checkpoint intervals in steps must be
            multiples of that.
        dragan_weight: Weight :math:`\lambda` of DRAGAN's gradient penalty around the real data
            (:func:`~lightning_gan.losses.dragan_penalty`, Kodali et al. 2017, who use 10); 0 disables it.
        weight_clip: Clamps every discriminator parameter to ``[-weight_clip, weight_clip]`` after each
            discriminator step (:func:`~lightning_gan.losses.clip_weights_`, the original WGAN's constraint,
            0.01 in Arjovsky et al. 2017); ``None`` (the default) does not clip.
        lr_decay: ``"none"`` or ``"linear"``: both learning rates fall linearly from their initial value to 0
            at ``Trainer(max_steps)`` (the SNGAN and BigGAN recipes; mimicry's ``lr_decay="linear"``). Set
            after each generator step, ``lr = lr_0 (1 - global_step / max_steps)``, on whatever optimizers
            :meth:`configure_optimizers` returns; it needs ``max_steps`` and no LR scheduler of its own.

    Raises:
        ValueError: For an unknown loss, ``n_critic < 1``, ``latent_dim < 1``, a non-positive learning
            rate, betas outside [0, 1), negative penalty weights, ``ema_decay`` outside (0, 1),
            ``num_classes < 2``, or a net whose own ``num_classes`` disagrees.
        TypeError: If ``generator`` or ``discriminator`` is not an ``nn.Module``.

    Example:
        >>> from torch import nn
        >>> gan = GAN(nn.Linear(4, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)), latent_dim=4)
        >>> gan.generate(3).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: int,
        loss: str = "non_saturating",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        gp_weight: float = 0.0,
        r1_gamma: float = 0.0,
        ema_decay: Optional[float] = None,
        gradient_clip_val: Optional[float] = None,
        gradient_clip_algorithm: str = "norm",
        num_classes: Optional[int] = None,
        discriminator_outputs: Optional[str] = None,
        steps_per_batch: int = 1,
        compile: Union[bool, dict[str, Any]] = False,
        critic_data: str = "reused",
        n_gen: int = 1,
        dragan_weight: float = 0.0,
        weight_clip: Optional[float] = None,
        lr_decay: str = "none",
    ) -> None:
        super().__init__()
        _validate_arguments(
            generator=generator,
            discriminator=discriminator,
            latent_dim=latent_dim,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            n_critic=n_critic,
            gp_weight=gp_weight,
            r1_gamma=r1_gamma,
            ema_decay=ema_decay,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
            num_classes=num_classes,
        )
        _validate_schedule_options(n_gen=n_gen, dragan_weight=dragan_weight, weight_clip=weight_clip, lr_decay=lr_decay)
        if isinstance(steps_per_batch, bool) or not isinstance(steps_per_batch, int) or steps_per_batch < 1:
            raise ValueError(f"`steps_per_batch` must be an integer >= 1, got {steps_per_batch!r}.")
        if critic_data not in CRITIC_DATA:
            raise ValueError(f"`critic_data` must be one of {', '.join(map(repr, CRITIC_DATA))}, got {critic_data!r}.")
        self._compile_options = _compile_options_from(compile)
        self.adversarial_loss = losses.get_loss(loss)
        self._outputs_through_sigmoid = _discriminator_outputs(discriminator, discriminator_outputs, self.adversarial_loss) == "logits"
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self._reconstruction_keys = _outermost_init_keys(inspect.currentframe(), GAN)
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = ExponentialMovingAverage(generator, ema_decay) if ema_decay is not None else None
        self._output_shape_checked = False
        self._labels_checked = False
        # Later batches are checked on the device: the index of the first batch with an out-of-range label
        # (on accelerators) and of the first with a non-finite sample (-1: none), read where the step syncs
        # anyway (a logging step, the epoch's end), see _checked_labels and _check_finite.
        self._bad_batches: Optional[Tensor] = None
        self._data_range_checked = False
        self._num_classes: Optional[int] = num_classes  # read several times a step; hparams lookups cost more
        self._steps_per_batch = steps_per_batch
        self._n_gen = n_gen
        self._weight_clip = weight_clip  # read every discriminator step; hparams lookups cost more
        self._linear_lr_decay = lr_decay == "linear"
        self._generator_steps_per_batch = steps_per_batch * n_gen
        self._real_for_generator: Optional[Tensor] = None  # the step's real micro-batch, for generator_auxiliary_losses
        # Real micro-batches per generator step: one per critic step when fresh, one shared otherwise.
        self._real_parts_per_step = n_critic if critic_data == "fresh" else 1
        self._compiled: dict[str, Any] = {}  # torch.compile-d step functions, made at their first use
        self._log_this_step = True
        self._rng_states_to_restore: Optional[dict[str, Any]] = None
        # Latents, labels and every other draw of the training step come from this stream (see StepRandomness).
        self._step_stream = StepRandomness()
        self._step_stream_to_restore: Optional[dict[str, Any]] = None
        #: The last training step's losses and summaries (detached tensors, no host sync), for callbacks.
        self.last_step_metrics: dict[str, Tensor] = {}
        self._step_hooks: Optional[StepHooks] = None

    @override
    def __getstate__(self) -> dict[str, Any]:
        # Compiled functions are bound to this module and do not pickle; a copy compiles its own.
        return {**super().__getstate__(), "_compiled": {}, "_step_hooks": None}

    def sample_latent(self, n: int) -> Tensor:
        """Draws ``n`` latent vectors, by default standard normal of shape ``(n, latent_dim)``."""
        return torch.randn(n, self.hparams.latent_dim, device=self.device)

    def sample_labels(self, n: int) -> Tensor:
        """Draws ``n`` class labels uniformly from ``[0, num_classes)`` (conditional GANs only)."""
        if self.num_classes is None:
            raise ValueError(f"{type(self).__name__} is unconditional (num_classes=None): it has no labels to draw.")
        return torch.randint(self.num_classes, (n,), device=self.device)

    @property
    def micro_batches_per_batch(self) -> int:
        """Micro-batches in one loader batch: ``steps_per_batch``, times ``n_critic`` with fresh critic data.

        The package's data modules read it and serve loader batches of this many times their ``batch_size``,
        so their ``batch_size`` is the number of real samples one network update sees; a plain
        ``DataLoader`` must be given that multiple itself.
        """
        return self._steps_per_batch * self._real_parts_per_step

    @property
    def num_classes(self) -> Optional[int]:
        """The number of classes of a class-conditional GAN, ``None`` for an unconditional one."""
        return self._num_classes

    @override
    def forward(self, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Maps latents (and labels, when conditional) to samples with the trained generator (not its average)."""
        return self._run(self.generator, z, labels)

    @torch.no_grad()
    def generate(self, n: int, z: Optional[Tensor] = None, labels: Optional[Tensor] = None) -> Tensor:
        """Draws ``n`` samples without gradients, from the moving-average generator when there is one.

        Callbacks (FID, likelihood, sample grids) call this, so they all evaluate the same network. The
        generator runs in eval mode for the call, whatever mode the module is in (after ``fit`` it is in
        train mode): batch norm uses its running statistics and dropout is off, and **nothing of the
        model changes** (no running statistic is updated); each submodule's mode is restored afterwards.
        To sample with batch statistics instead, call ``self.generator(z)`` in train mode yourself.

        Args:
            n: Number of samples.
            z: Latents to use instead of fresh ones from :meth:`sample_latent` (e.g. a fixed grid);
                must hold ``n`` of them.
            labels: The classes to draw (``(n,)`` integers) from a conditional GAN; drawn uniformly by
                :meth:`sample_labels` when not given. An unconditional GAN refuses them.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"`n` must be a positive number of samples, got {n!r}.")
        if z is None:
            z = self.sample_latent(n)
        elif len(z) != n:
            raise ValueError(f"`z` holds {len(z)} latents but `n` is {n}.")
        if self.num_classes is None and labels is not None:
            raise ValueError(f"{type(self).__name__} is unconditional (num_classes=None); `labels` cannot be given.")
        if self.num_classes is not None:
            if labels is None:
                labels = self.sample_labels(n)
            else:
                labels = torch.as_tensor(labels, device=self.device)
                self._check_label_values(labels, "`labels`", expected_len=n)
        generator = self.generator_ema.module if self.generator_ema is not None else self.generator
        modes = [(module, module.training) for module in generator.modules()]
        generator.eval()
        try:
            return self._run(generator, z.to(self.device), labels)
        finally:
            for module, training in modes:
                module.training = training

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The discriminator's loss (to minimise) from its outputs on real and generated samples."""
        return self.adversarial_loss.discriminator(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        """The generator's loss (to minimise) from the discriminator's outputs on generated samples."""
        return self.adversarial_loss.generator(fake_logits)

    def discriminator_penalty(
        self, real: Tensor, fake: Tensor, real_logits: Tensor, labels: Optional[Tensor] = None
    ) -> dict[str, Tensor]:
        """Regularisers added to the discriminator loss, unweighted, by log name.

        The default returns the WGAN-GP gradient penalty as ``"gp"`` when ``gp_weight > 0``, R1 as
        ``"r1"`` when ``r1_gamma > 0`` and DRAGAN's as ``"dragan"`` when ``dragan_weight > 0``;
        :meth:`penalty_weight` gives each one's weight. ``real`` requires
        grad when R1 is on, and ``real_logits`` were computed from it. ``labels`` are the classes of
        both ``real`` and ``fake`` in a conditional GAN (``None`` otherwise).
        """
        penalties: dict[str, Tensor] = {}

        def critic(x: Tensor) -> Tensor:
            return self._discriminate(x, labels)[0]

        if self.hparams.gp_weight > 0:
            penalties["gp"] = losses.gradient_penalty(critic, real, fake)
        if self.hparams.r1_gamma > 0:
            penalties["r1"] = losses.r1_penalty(real_logits, real)
        if self.hparams.dragan_weight > 0:
            penalties["dragan"] = losses.dragan_penalty(critic, real)
        return penalties

    def penalty_weight(self, name: str) -> float:
        """The weight of the penalty logged as ``name``: ``gp_weight`` for ``"gp"``, ``r1_gamma / 2`` for ``"r1"``,
        ``dragan_weight`` for ``"dragan"``."""
        if name == "gp":
            return float(self.hparams.gp_weight)
        if name == "dragan":
            return float(self.hparams.dragan_weight)
        if name == "r1":
            return float(self.hparams.r1_gamma) / 2.0
        raise ValueError(f"No weight is known for penalty {name!r}; override `penalty_weight` to give one.")

    def discriminator_auxiliary_losses(
        self,
        real_heads: Optional[dict[str, Tensor]],
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """Weighted loss terms added to the discriminator's loss, by log name; the default adds none.

        The hook for models whose discriminator does more than tell real from fake: a discriminator may
        return ``(logits, heads)``, ``heads`` a dict of tensors computed alongside the logit (an auxiliary
        classifier, InfoGAN's Q head, its features; :class:`~lightning_gan.nets.AuxiliaryHeads` adds them
        to the package's nets), and this hook turns them into losses. Each term is logged as
        ``train/<name>`` and added to the adversarial loss (and penalties) before the backward pass.

        Args:
            real_heads: The heads on the real micro-batch (``None`` when the discriminator returns logits only).
            fake_heads: The heads on the generated samples.
            z: The latents the generated samples were made from (:meth:`sample_latent`'s output).
            labels: The classes of both the real and the generated samples in a conditional GAN, else ``None``.
        """
        return {}

    def generator_auxiliary_losses(
        self,
        fake_heads: Optional[dict[str, Tensor]],
        z: Tensor,
        labels: Optional[Tensor] = None,
        real: Optional[Tensor] = None,
    ) -> dict[str, Tensor]:
        """Weighted loss terms added to the generator's loss, by log name; the default adds none.

        See :meth:`discriminator_auxiliary_losses`. ``real`` is the real micro-batch of the step's last
        discriminator step (feature matching compares the generated samples' features with its features);
        ``None`` when a subclass calls :meth:`generator_step` itself.
        """
        return {}

    def real_from_batch(self, batch: Any) -> Tensor:
        """The real samples of a batch: the batch itself, its first element, or its ``"image"`` entry."""
        samples = samples_of(batch)
        if samples is not None:
            return samples
        raise TypeError(
            f"Cannot find the real samples in a batch of type {type(batch).__name__}: expected a tensor, a "
            "(samples, labels) tuple or a dict with an 'image' tensor; override `real_from_batch`."
        )

    def labels_from_batch(self, batch: Any) -> Optional[Tensor]:
        """The class labels of a batch for a conditional GAN: its second element or its ``"label"`` entry.

        Returns ``None`` for an unconditional GAN (labels in the batch are then ignored).
        """
        if self.num_classes is None:
            return None
        if isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], Tensor):
            return batch[1]
        if isinstance(batch, dict) and isinstance(batch.get("label"), Tensor):
            return batch["label"]
        raise TypeError(
            f"{type(self).__name__} is class-conditional ({self.num_classes} classes) but found no labels in a batch "
            f"of type {type(batch).__name__}: expected (samples, labels) or a dict with a 'label' tensor; override "
            "`labels_from_batch`."
        )

    @override
    def configure_optimizers(self) -> list[Optimizer]:
        """Adam for the generator and for the discriminator, **in that order** (every module of the package).

        Override to return other optimizers, or ``([opt_g, opt_d], [sched_g, sched_d])`` / Lightning's
        dict form to add LR schedulers: with ``interval="step"`` a scheduler steps once per generator
        step, with ``"epoch"`` once per epoch.
        """
        betas = tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr_g, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr_d, betas=betas)
        return [opt_g, opt_d]

    # ------------------------------------------------------------------ the step

    @override
    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Trains on one batch, drawing latents (and labels) from the step's own random stream.

        The stream is seeded from the run's seed and the process's rank and saved in checkpoints, so a
        resumed run draws what the straight run drew. A subclass that overrides this method should call
        ``super().training_step(batch, batch_idx)`` or override :meth:`discriminator_step` /
        :meth:`generator_step` instead.
        """
        if not self._step_stream.ready:
            self._start_step_stream()
        with self._step_stream:
            self._train_on_batch(batch, batch_idx)

    def _start_step_stream(self) -> None:
        trainer = self.trainer
        saved, self._step_stream_to_restore = self._step_stream_to_restore, None
        if saved is not None:
            restore_for_rank(self._step_stream, saved, trainer.global_rank, trainer.world_size, self.device)
        else:
            self._step_stream.seed(run_seed(trainer.global_rank), self.device)

    def _train_on_batch(self, batch: Any, batch_idx: int) -> None:
        real = self.real_from_batch(batch)
        labels = self._checked_labels(batch, real.shape[0], batch_idx)
        steps, per_step = self._steps_per_batch, self._real_parts_per_step
        parts = steps * per_step
        if real.shape[0] % parts:
            raise ValueError(
                f"Batch {batch_idx} holds {real.shape[0]} samples, which cannot be split into {parts} equal micro-batches "
                f"(steps_per_batch={steps} x {per_step} real micro-batch(es) per generator step, "
                f"critic_data={self.hparams.critic_data!r}, n_critic={self.hparams.n_critic}); give the loader a batch size "
                f"that is a multiple of {parts} (and drop_last=True). The package's data modules do so by themselves: "
                "their batch_size is the micro-batch's."
            )
        opt_g, opt_d = self.optimizers()
        if self._generator_steps_per_batch > 1:
            # Lightning counts logging steps in batches (`_batches_that_stepped`, the loggers' x-axis and the
            # `log_every_n_steps` clock); count the batch's other generator steps there too, before the
            # clock is read, so both keep meaning generator steps. Checkpointed with the loop's state.
            self.trainer.fit_loop.epoch_loop._batches_that_stepped += self._generator_steps_per_batch - 1
        log_this_batch = self._logs_written_this_step()
        self._check_real(real, batch_idx)
        if log_this_batch:
            self._raise_on_bad_batches()
        micro = real.shape[0] // parts
        metrics: dict[str, Tensor] = {}
        for index in range(steps):
            for critic_step in range(self.hparams.n_critic):
                first = (index * per_step + min(critic_step, per_step - 1)) * micro
                part = slice(first, first + micro)
                # Labels are passed only to conditional GANs, so overrides written with the unconditional
                # signatures, `discriminator_step(real, optimizer)` and `generator_step(batch_size, optimizer)`, work.
                label_args = () if labels is None else (labels[part],)
                self._log_this_step = log_this_batch and index == steps - 1  # Lightning writes the batch's last values
                metrics = self.discriminator_step(real[part] if parts > 1 else real, opt_d, *label_args)
            # Each generator step draws its own latents; a conditional one generates for the classes of the
            # step's last real micro-batch, so its labels follow the data's class frequencies.
            self._real_for_generator = real[part] if parts > 1 else real
            for generator_step in range(self._n_gen):
                self._log_this_step = log_this_batch and index == steps - 1 and generator_step == self._n_gen - 1
                metrics.update(self.generator_step(micro, opt_g, *label_args))
                if self.generator_ema is not None:
                    self.generator_ema.update(self.generator)
                self._step_schedulers("step")
            self._real_for_generator = None
        self.last_step_metrics = metrics
        # Lightning writes step-level values only every `log_every_n_steps`; handing them over on the other
        # steps too costs a third of a small GAN's step time, so they are handed over only when written.
        if log_this_batch:
            self.log_dict({f"train/{k}": v for k, v in metrics.items()}, on_step=True, on_epoch=False, batch_size=micro)

    def _discriminator_outputs(
        self, real: Tensor, z: Tensor, labels: Optional[Tensor]
    ) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor, Tensor]:
        # The part of a discriminator step that `compile` compiles:
        # (adversarial loss, auxiliary terms, real_logits, fake_logits, fake).
        with torch.no_grad():
            fake = self._run(self.generator, z, labels)
        return (*self._discriminator_losses(real, fake, z, labels), fake)

    def _discriminator_losses(
        self, real: Tensor, fake: Tensor, z: Tensor, labels: Optional[Tensor]
    ) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
        # (adversarial loss, auxiliary terms, real_logits, fake_logits) of a discriminator step.
        real_logits, real_heads = self._discriminate(real, labels)
        fake_logits, fake_heads = self._discriminate(fake, labels)
        terms = self.discriminator_auxiliary_losses(real_heads, fake_heads, z, labels)
        return self.discriminator_loss(real_logits, fake_logits), terms, real_logits, fake_logits

    def _generator_outputs(self, z: Tensor, labels: Optional[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        # The part of a generator step that `compile` compiles: (adversarial loss, auxiliary terms).
        fake_logits, fake_heads = self._discriminate(self._run(self.generator, z, labels), labels)
        terms = self.generator_auxiliary_losses(fake_heads, z, labels, self._real_for_generator)
        return self.generator_loss(fake_logits), terms

    def _discriminate(self, x: Tensor, labels: Optional[Tensor]) -> tuple[Tensor, Optional[dict[str, Tensor]]]:
        # A discriminator returns logits, or (logits, heads) when it has auxiliary heads.
        out = self._run(self.discriminator, x, labels)
        if isinstance(out, tuple):
            return out[0], out[1]
        return out, None

    def _step_function(self, name: str) -> Any:
        # Eager until the first step has checked the shapes; compiled once, lazily, per function.
        eager = getattr(self, name)
        if self._compile_options is None or not self._output_shape_checked:
            return eager
        if name == "_discriminator_outputs" and self._discriminator_step_needs_double_backward():
            return eager
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = torch.compile(eager, **self._compile_options)
        return compiled

    def _discriminator_step_needs_double_backward(self) -> bool:
        return (
            self.hparams.gp_weight > 0
            or self.hparams.r1_gamma > 0
            or self.hparams.dragan_weight > 0
            or type(self).discriminator_penalty is not GAN.discriminator_penalty
        )

    def discriminator_step(
        self, real: Tensor, optimizer: LightningOptimizer, labels: Optional[Tensor] = None
    ) -> dict[str, Tensor]:
        """One discriminator update on ``real`` and as many fresh generated samples; returns what to log.

        In a conditional GAN, ``labels`` are the classes of ``real``, and the fakes are generated for
        the same classes. The step is taken without ``optimizer.step()``'s step count, so that it does
        not advance ``trainer.global_step``, which counts generator steps (see the class docstring); the
        hooks around it (``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``)
        are called as Lightning calls them.
        """
        self.toggle_optimizer(optimizer)
        z = self.sample_latent(real.shape[0])
        if self.hparams.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        if self._output_shape_checked:
            loss, terms, real_logits, fake_logits, fake = self._step_function("_discriminator_outputs")(real, z, labels)
        else:  # the first step: the generator's output is checked before the discriminator sees a wrong shape
            with torch.no_grad():
                fake = self._run(self.generator, z, labels)
            self._check_output_shape(real, fake)
            loss, terms, real_logits, fake_logits = self._discriminator_losses(real, fake, z, labels)
        penalties = self.discriminator_penalty(real, fake, real_logits, *(() if labels is None else (labels,)))
        total = loss
        for name, value in penalties.items():
            total = total + self.penalty_weight(name) * value
        for value in terms.values():
            total = total + value
        optimizer.zero_grad(set_to_none=True)
        hooks = self._hooks()
        with self._overlapped_backward(optimizer):
            hooks.backward(self, total)
        self._prepare_gradients(optimizer)
        hooks.step(self, optimizer, counts=False)
        if self._weight_clip is not None:
            losses.clip_weights_(self.discriminator, self._weight_clip)
        self.untoggle_optimizer(optimizer)
        metrics = {"loss_d": loss.detach(), **{k: v.detach() for k, v in {**penalties, **terms}.items()}}
        if self._log_this_step:  # the summaries cost kernels; skip them on steps nobody reads
            metrics["d_real"] = self._summarise_outputs(real_logits)
            metrics["d_fake"] = self._summarise_outputs(fake_logits)
        return metrics

    def generator_step(
        self, batch_size: int, optimizer: LightningOptimizer, labels: Optional[Tensor] = None
    ) -> dict[str, Tensor]:
        """One generator update against the current discriminator; returns what to log.

        In a conditional GAN it generates ``batch_size`` samples for ``labels`` (the batch's classes).
        """
        self.toggle_optimizer(optimizer)
        loss, terms = self._step_function("_generator_outputs")(self.sample_latent(batch_size), labels)
        total = loss
        for value in terms.values():
            total = total + value
        optimizer.zero_grad(set_to_none=True)
        hooks = self._hooks()
        with self._overlapped_backward(optimizer):
            hooks.backward(self, total)
        self._prepare_gradients(optimizer)
        hooks.step(self, optimizer, counts=True)
        self.untoggle_optimizer(optimizer)
        return {"loss_g": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Logs ``val/d_real``: the discriminator's mean output on held-out real data.

        Compared with ``train/d_real`` it shows the discriminator memorising its training set.
        """
        self._log_held_out_d_real("val", batch, batch_idx)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Logs ``test/d_real`` (see :meth:`validation_step`); metric callbacks add their test values."""
        self._log_held_out_d_real("test", batch, batch_idx)

    def _log_held_out_d_real(self, stage: str, batch: Any, batch_idx: int = -1) -> None:
        real = self.real_from_batch(batch)
        labels = self._checked_labels(batch, real.shape[0], batch_idx)
        if not self._output_shape_checked:
            # The sanity check runs this before any training step: compare the generator's output with the
            # data here too, so a wrong image shape gets the package's message, not a matmul error in D.
            self._check_generator_matches(real, labels)
        summary = self._summarise_outputs(self._discriminate(real, labels)[0])
        self.log(f"{stage}/d_real", summary, batch_size=real.shape[0], sync_dist=True)

    @override
    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        check_checkpoint_files(strategy)  # setup runs before Lightning reads `ckpt_path`
        if isinstance(strategy, DDPStrategy) and not isinstance(strategy, GANDDPStrategy):
            raise ValueError(
                f"{type(self).__name__} cannot train under {type(strategy).__name__}: it wraps the whole module in "
                "one DistributedDataParallel, which fails on a GAN step. Use `Trainer(strategy=\"gan_ddp\")` "
                "(lightning_gan.GANDDPStrategy), which averages each network's gradients separately."
            )

    @override
    def on_fit_start(self) -> None:
        clip = self.trainer.gradient_clip_val
        # Lightning refuses a positive Trainer clip value under manual optimization and ignores the rest.
        if clip is not None and not (_is_number(clip) and clip == 0):
            raise ValueError(
                f"`Trainer(gradient_clip_val={clip!r})` has no effect on a GAN (manual optimization); clip with the "
                f"module's own argument, e.g. {type(self).__name__}(gradient_clip_val=1.0), which clips each "
                "network's gradients after averaging them across processes and after unscaling them under 16-mixed."
            )
        _check_step_counts(self.trainer, self._steps_per_batch, self._n_gen)
        _check_lr_decay(self.trainer, self.hparams.lr_decay)
        if self._compile_options is not None and self._discriminator_step_needs_double_backward():
            rank_zero_warn(
                f"{type(self).__name__}(compile=...): the discriminator step runs eagerly, since its gradient penalty "
                "needs a double backward, which torch.compile does not support; the generator step is compiled."
            )
        if len(self.trainer.optimizers) != 2:
            raise ValueError(
                f"`configure_optimizers` must return two optimizers, the generator's then the discriminator's; "
                f"got {len(self.trainer.optimizers)}."
            )
        for config in self.trainer.lr_scheduler_configs:
            # Under manual optimization Lightning drops the `monitor` key, so the metric to pass is unknown.
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                raise ValueError(
                    "ReduceLROnPlateau cannot be stepped by the GAN module (Lightning drops `monitor` under manual "
                    "optimization); return no scheduler for it and call `scheduler.step(metric)` in "
                    "`on_validation_epoch_end` of a subclass."
                )

    @override
    def on_train_epoch_end(self) -> None:
        self._raise_on_bad_batches()  # the epoch's end syncs anyway: no bad batch outlives its epoch unreported
        self._step_schedulers("epoch")

    @override
    def on_fit_end(self) -> None:
        trainer = self.trainer
        # Lightning skips the whole training loop, with one info line, when the loader gives no batch.
        if trainer.num_training_batches == 0 and trainer.global_step == 0 and trainer.limit_train_batches != 0:
            loader = trainer.train_dataloader
            size = len(loader.dataset) if hasattr(getattr(loader, "dataset", None), "__len__") else "?"
            raise ValueError(
                f"The training data gave no batch, so nothing was trained: {size} sample(s) per process with "
                f"batch_size {getattr(loader, 'batch_size', '?')} and drop_last={getattr(loader, 'drop_last', '?')}; "
                "use more data, a smaller batch size, or drop_last=False."
            )

    @override
    def on_train_start(self) -> None:
        summary = _epoch_summary(
            self.trainer, self._steps_per_batch, self.hparams.n_critic, self.hparams.critic_data, self._n_gen
        )
        if summary:
            rank_zero_info(summary)
        self._restore_global_rng()

    # ------------------------------------------------------------------ helpers

    def _check_generator_matches(self, real: Tensor, labels: Optional[Tensor]) -> None:
        n = min(2, real.shape[0])
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):  # draws nothing from the run's streams
            fake = self._run(self.generator, self.sample_latent(n), None if labels is None else labels[:n])
        self._check_output_shape(real, fake)

    def _run(self, net: nn.Module, x: Tensor, labels: Optional[Tensor]) -> Tensor:
        # The one place that knows how conditional nets are called.
        return net(x) if self.num_classes is None else net(x, labels)

    def _hooks(self) -> StepHooks:
        # Lightning's backward and step hooks, called directly where that is equivalent (see _hooks.py).
        hooks = self._step_hooks
        if hooks is None or hooks.trainer is not self.trainer:
            hooks = self._step_hooks = StepHooks(self.trainer, self)
        return hooks

    def _overlapped_backward(self, optimizer: LightningOptimizer) -> Any:
        # Under gan_ddp(overlap_communication=True) the averaging starts during the backward.
        strategy = self.trainer.strategy
        return strategy.overlapped_backward(optimizer) if isinstance(strategy, GANDDPStrategy) else contextlib.nullcontext()

    def _prepare_gradients(self, optimizer: LightningOptimizer) -> None:
        # Average across processes before the step (and so before clipping, in on_before_optimizer_step), so
        # every rank clips the same gradient; under 16-mixed also before unscaling, so every rank's
        # GradScaler sees the same infs and keeps the same scale.
        strategy = self.trainer.strategy
        if isinstance(strategy, GANDDPStrategy):
            strategy.all_reduce_gradients(optimizer)

    @override
    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Clips the gradients of the network about to step (``gradient_clip_val``).

        Lightning's precision plugin calls this hook after it has unscaled the gradients under
        ``16-mixed`` (and before the step), so the threshold applies to the true gradients, not to
        gradients multiplied by the loss scale (65,536 at the start). A subclass overriding this hook
        must call ``super().on_before_optimizer_step(optimizer)``.
        """
        if self.hparams.gradient_clip_val is not None:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.hparams.gradient_clip_val,
                gradient_clip_algorithm=self.hparams.gradient_clip_algorithm,
            )

    def _logs_written_this_step(self) -> bool:
        # Lightning's own rule for writing step-level logs, plus the last step (it writes when stopping).
        # Evaluated before this batch's generator step, so "last" means the step about to be taken.
        trainer = self.trainer
        last_step = 0 < trainer.max_steps <= trainer.global_step + self._generator_steps_per_batch
        return last_step or trainer.should_stop or trainer._logger_connector.should_update_logs

    def _summarise_outputs(self, logits: Tensor) -> Tensor:
        logits = logits.detach().float()
        return torch.sigmoid(logits).mean() if self._outputs_through_sigmoid else logits.mean()

    def _step_schedulers(self, interval: str) -> None:
        configs = self.trainer.lr_scheduler_configs
        if self._linear_lr_decay and interval == "step":
            _decay_learning_rates_linearly(self.trainer)
        if not configs:
            return
        count = self.trainer.global_step if interval == "step" else self.trainer.current_epoch + 1
        for config in configs:
            if config.interval == interval and count % config.frequency == 0:
                config.scheduler.step()


