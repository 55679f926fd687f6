"""A DDP strategy for modules that step several networks by hand, such as GANs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any, Callable, Optional, Union

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from pytorch_lightning.overrides.distributed import _sync_module_states
from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from pytorch_lightning.trainer.connectors.signal_connector import _get_sigkill_signal
from torch.optim import Optimizer

from lightning_gan._overlap import OverlappedGradientAverage
from lightning_gan._termination import TerminationWatchdog
from typing_extensions import override

__all__ = ["GANDDPStrategy"]

# How long rank 0, failing, waits for the ranks it launched to end on their own before killing them.
_CHILD_GRACE_S = 5.0
# How long rank 0 may go on after a rank it launched failed, to end (and report) by itself, before it is killed.
_MAIN_GRACE_S = 15.0


class GANDDPStrategy(DDPStrategy):
    """Data-parallel training where each optimizer averages its own gradients across processes.

    Lightning's ``"ddp"`` wraps the whole ``LightningModule`` in one ``DistributedDataParallel``.
    A GAN step backpropagates the discriminator loss through the discriminator only, and the generator
    loss with the discriminator frozen, so that single wrapper sees parameters that "were not used in
    producing the loss" and fails (pytorch-lightning issues 20328, 20866); ``find_unused_parameters``
    only hides it at a cost. Projects that work keep one data-parallel unit per network (mmgeneration,
    StudioGAN, Lightning Fabric's DCGAN example). This strategy goes one step further and leaves the
    module unwrapped: before an optimizer steps, the gradients of exactly the parameters it owns are
    averaged over all processes in one bucketed all-reduce. Any pattern of forwards, penalties
    (``autograd.grad`` with ``create_graph``) and backwards is then correct, with no hooks to confuse.

    Each rank draws its own random numbers: Lightning's ``seed_everything`` gives every rank the same
    seed, which would make every rank generate the same latents. :class:`~lightning_gan.GAN` draws its
    latents from a stream seeded by the run's seed and the rank; for everything else the strategy
    offsets the global seed of rank ``r > 0`` by ``r`` (deterministically). Initial weights still come
    from rank 0.

    What it keeps from DDP: the same launchers, process groups and ``DistributedSampler``; parameters and
    buffers broadcast from rank 0 at the start of fitting; buffers (batch-norm statistics) broadcast from
    rank 0 before each training batch, as DDP's ``broadcast_buffers`` does, and before each validation,
    test or predict run, so every rank evaluates the same network. Gradients are averaged
    before clipping when the module calls :meth:`all_reduce_gradients` itself (``GAN`` does), otherwise
    just before the optimizer steps.

    **Stopping.** When one rank fails, rank 0 stops the ranks it launched that still run. A SIGTERM or
    Ctrl+C stops training at the next step, as in Lightning; a rank that cannot get there because it is
    blocked in a collective (say, a metric's ``all_gather`` waiting for a rank that never comes) is ended
    ``termination_grace`` seconds after the signal, with a message, together with the ranks it launched.

    Args:
        termination_grace: Seconds (or a ``timedelta``) a rank may take to stop after a SIGTERM or SIGINT
            before it is ended.
        overlap_communication: Average a network's gradients bucket by bucket while its backward still runs,
            as DDP does, instead of in one all-reduce after it (a module opts in by running its backward in
            :meth:`overlapped_backward`; ``GAN`` does). The averages are the same either way (tested bitwise on
            CPU processes); off by default until measured on GPUs.
        bucket_cap_mb: Bucket size for ``overlap_communication`` (the first bucket holds at most 1 MB, so
            communication starts early). Other arguments are those of Lightning's ``DDPStrategy``
            (``timeout``, ``process_group_backend``, ...).

    Registered as ``"gan_ddp"`` (subprocess launcher, for scripts and clusters), ``"gan_ddp_spawn"`` and
    ``"gan_ddp_notebook"`` (fork), so ``Trainer(strategy="gan_ddp")`` works once ``lightning_gan`` is
    imported.

    Example:
        >>> import pytorch_lightning as pl
        >>> trainer = pl.Trainer(accelerator="cpu", devices=1, strategy=GANDDPStrategy(),
        ...                      logger=False, enable_progress_bar=False, enable_model_summary=False)
        >>> type(trainer.strategy).__name__
        'GANDDPStrategy'
    """

    strategy_name = "gan_ddp"

    def __init__(
        self,
        *args: Any,
        termination_grace: Union[float, timedelta] = 30.0,
        overlap_communication: bool = False,
        bucket_cap_mb: float = 25.0,
        **kwargs: Any,
    ) -> None:
        grace = termination_grace.total_seconds() if isinstance(termination_grace, timedelta) else termination_grace
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 < grace < float("inf"):
            raise ValueError(f"`termination_grace` must be a positive number of seconds or a timedelta, got {termination_grace!r}.")
        if not isinstance(overlap_communication, bool):
            raise ValueError(f"`overlap_communication` must be True or False, got {overlap_communication!r}.")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not 0 < bucket_cap_mb < float("inf"):
            raise ValueError(f"`bucket_cap_mb` must be a positive number of megabytes, got {bucket_cap_mb!r}.")
        for unsupported in ("find_unused_parameters", "static_graph", "ddp_comm_hook", "model_averaging_period"):
            if unsupported in kwargs:
                raise ValueError(
                    f"GANDDPStrategy does not wrap the module in DistributedDataParallel, so "
                    f"`{unsupported}={kwargs[unsupported]!r}` has no effect; remove it."
                )
        super().__init__(*args, **kwargs)
        # Optimizers whose gradients were already averaged since their last step (ids, not objects,
        # so that nothing here keeps an optimizer alive).
        self._reduced_optimizers: set[int] = set()
        self._overlap = overlap_communication
        self._bucket_bytes = int(bucket_cap_mb * 2**20)
        self._averagers: dict[int, OverlappedGradientAverage] = {}
        self._watchdog = TerminationWatchdog(float(grace), lambda: f"rank {self.global_rank}", self._kill_launched)

    @override
    def setup_distributed(self) -> None:
        super().setup_distributed()
        # `seed_everything` seeds every rank alike, so each would draw the same latents (and dropout masks):
        # the fake half of the global batch would be one batch repeated. Offset each rank's seed by its rank.
        if self.global_rank > 0:
            torch.manual_seed((torch.initial_seed() + self.global_rank * 1_000_003) % 2**63)
        if self.world_size > 1:
            self._watchdog.start()

    @override
    def teardown(self) -> None:
        self._watchdog.stop()
        for averager in self._averagers.values():
            averager.remove()
        self._averagers.clear()
        super().teardown()

    def _kill_launched(self) -> None:
        launcher = self.launcher
        if isinstance(launcher, _SubprocessScriptLauncher) and getattr(launcher, "procs", None):
            launcher.kill(_get_sigkill_signal())

    @override
    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _PatientSubprocessLauncher(self.cluster_environment, self.num_processes, self.num_nodes)

    @override
    def configure_ddp(self) -> None:
        assert self.model is not None
        _sync_module_states(self.model)

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        if self._is_distributed():
            assert self.model is not None
            _coalesced_in_place(list(self.model.buffers()), lambda flat: dist.broadcast(flat, src=0))

    @override
    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._broadcast_buffers()

    @override
    def on_test_start(self) -> None:
        super().on_test_start()
        self._broadcast_buffers()

    @override
    def on_predict_start(self) -> None:
        super().on_predict_start()
        self._broadcast_buffers()

    @override
    def on_exception(self, exception: BaseException) -> None:
        super().on_exception(exception)
        # Lightning kills the processes rank 0 launched only on Ctrl+C. After any other failure of rank 0 (a
        # collective timing out on a hung rank, an error), a rank blocked outside a collective would run on
        # as an orphan; end it now, so every rank stops within about the collective timeout.
        launcher = self.launcher
        children = getattr(launcher, "procs", None)
        if not (isinstance(launcher, _SubprocessScriptLauncher) and children):
            return
        # A grace period first: a rank that failed too (the usual case) is tearing down and reporting.
        deadline = time.monotonic() + _CHILD_GRACE_S
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(deadline - time.monotonic(), 0.0))
        running = [child for child in children if child.poll() is None]
        if running:
            message = str(exception).strip().splitlines()[0][:300] if str(exception).strip() else ""
            print(
                f"GANDDPStrategy: rank {self.global_rank} failed ({type(exception).__name__}: {message}); "
                f"stopping the {len(running)} process(es) it launched that are still running.",
                file=sys.stderr,
                flush=True,
            )
            launcher.kill(_get_sigkill_signal())

    def _broadcast_buffers(self) -> None:
        # The last training batch updated each rank's batch-norm statistics from its own shard, after the
        # broadcast before that batch: without this, rank r would generate (for FID, KID, Parzen) with
        # a network slightly different from rank 0's, and the metrics would mix several models.
        if self._is_distributed():
            assert self.model is not None
            _coalesced_in_place(list(self.model.buffers()), lambda flat: dist.broadcast(flat, src=0))

    @contextlib.contextmanager
    def overlapped_backward(self, optimizer: Union[Optimizer, pl.core.optimizer.LightningOptimizer]) -> Any:
        """Around a backward: with ``overlap_communication=True``, averages ``optimizer``'s gradients bucket by
        bucket while the backward runs; :meth:`all_reduce_gradients` then waits for them. Otherwise does nothing.
        """
        raw = getattr(optimizer, "optimizer", optimizer)
        if not (self._overlap and self._is_distributed()):
            yield
            return
        averager = self._averagers.get(id(raw))
        if averager is None:
            params = [p for group in raw.param_groups for p in group["params"]]
            averager = self._averagers[id(raw)] = OverlappedGradientAverage(
                params, bucket_bytes=self._bucket_bytes, first_bucket_bytes=min(self._bucket_bytes, 2**20)
            )
        averager.begin()
        try:
            yield
        finally:
            averager.end()

    def all_reduce_gradients(self, optimizer: Union[Optimizer, pl.core.optimizer.LightningOptimizer]) -> None:
        """Averages the gradients of ``optimizer``'s parameters over all processes.

        A parameter without a gradient on this rank contributes zeros, so every rank takes part in the
        same collective and none waits forever. Calling it twice before a step is harmless (averaging
        identical values), and :meth:`optimizer_step` skips the second reduce.
        """
        optimizer = getattr(optimizer, "optimizer", optimizer)
        if not self._is_distributed():
            return
        averager = self._averagers.get(id(optimizer))
        if averager is not None and averager.in_round:
            averager.finish()
            self._reduced_optimizers.add(id(optimizer))
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        if not params:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        world_size = dist.get_world_size()

        def average(flat: torch.Tensor) -> None:
            dist.all_reduce(flat)
            flat.div_(world_size)

        _coalesced_in_place([p.grad for p in params], average)
        self._reduced_optimizers.add(id(optimizer))

    @override
    def optimizer_step(
        self,
        optimizer: Optimizer,
        closure: Callable[[], Any],
        model: Optional[Union[pl.LightningModule, torch.nn.Module]] = None,
        **kwargs: Any,
    ) -> Any:
        raw = getattr(optimizer, "optimizer", optimizer)

        def reduce_after_closure() -> Any:
            # The precision plugin runs the closure (backward) first; reduce after it, before the step.
            result = closure()
            if id(raw) not in self._reduced_optimizers:
                self.all_reduce_gradients(raw)
            return result

        try:
            return super().optimizer_step(optimizer, reduce_after_closure, model, **kwargs)
        finally:
            self._reduced_optimizers.discard(id(raw))

    def _is_distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    @classmethod
    @override
    def register_strategies(cls, strategy_registry: Any) -> None:
        for name, start_method in (("gan_ddp", "popen"), ("gan_ddp_spawn", "spawn"), ("gan_ddp_notebook", "fork")):
            if name in strategy_registry:
                continue
            strategy_registry.register(
                name,
                cls,
                description=f"GAN-aware DDP (one gradient all-reduce per optimizer), start method {start_method!r}",
                start_method=start_method,
            )


GANDDPStrategy.register_strategies(StrategyRegistry)


def _coalesced_in_place(tensors: list[torch.Tensor], collective: Callable[[torch.Tensor], None]) -> None:
    """Runs ``collective`` on one flat copy of ``tensors`` per dtype and writes the results back.

    One collective per dtype instead of one per tensor: a DCGAN has dozens of small parameters and
    buffers, and per-tensor launches dominate the communication time.
    """
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for group in by_dtype.values():
        flat = torch._utils._flatten_dense_tensors(group)
        collective(flat)
        for tensor, synced in zip(group, torch._utils._unflatten_dense_tensors(flat, group)):
            tensor.copy_(synced)


class _PatientSubprocessLauncher(_SubprocessScriptLauncher):
    """Lightning's script launcher, with a rank-0 watcher that lets rank 0 finish failing by itself.

    Lightning's watcher thread polls the launched ranks every 5 s and SIGKILLs rank 0 as soon as one of them
    exited non-zero. When every rank fails together (a :class:`~lightning_gan.callbacks.DivergenceGuard`
    stops all ranks at the same check, an error in the data all ranks share), rank 0 is then killed in the
    middle of its own exception handling: its message, its loggers' last flush and its exit code are lost
    whenever it takes more than a moment (seen in CI on a loaded 2-core machine). A rank 0 blocked in a collective is
    still ended, ``_MAIN_GRACE_S`` later.
    """

    @override
    def launch(self, function: Callable, *args: Any, trainer: Optional[pl.Trainer] = None, **kwargs: Any) -> Any:
        # The body of Lightning's `launch`, with the watcher swapped (it is started inside `launch`, so it
        # cannot be replaced from outside).
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            _PatientObserver(main_pid=os.getpid(), child_processes=self.procs).start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)


class _PatientObserver(_ChildProcessObserver):
    @override
    def _terminate_all(self) -> None:
        failed = [(rank, proc) for rank, proc in enumerate(self._child_processes, start=1) if proc.returncode]
        described = ", ".join(f"rank {rank} (pid {proc.pid}) exited with code {proc.returncode}" for rank, proc in failed)
        print(
            f"GANDDPStrategy: {described}; rank 0 gets {_MAIN_GRACE_S:.0f} s to stop by itself before every "
            f"process of this run is killed.",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(_MAIN_GRACE_S)  # a daemon thread: if rank 0 ends meanwhile, this ends with it
        super()._terminate_all()
