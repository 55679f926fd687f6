"""The training step's own random stream, apart from torch's global one and saved in checkpoints."""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor


def run_seed(rank: int) -> int:
    """A seed for one process's step stream: the run's seed (``seed_everything``'s, else torch's) and the rank.

    Every rank gets its own stream, deterministically, so two processes never draw the same latents.
    """
    base = os.environ.get("PL_GLOBAL_SEED")
    base_seed = abs(int(base)) if base is not None else torch.initial_seed()
    return int(np.random.SeedSequence([base_seed, int(rank), 0x6A4E]).generate_state(1, np.uint64)[0] >> 1)


class StepRandomness:
    """The random states (CPU, and the training device's) that the training step runs under.

    Why a stream of its own: Lightning's loop draws from torch's global generator at moments that depend on
    its configuration (creating the data iterator, the sanity check, ``max_epochs`` or ``max_steps``), so
    latents drawn from the global generator could not repeat after a resume. Whole global states are swapped
    in for the step (instead of passing a ``torch.Generator`` to :meth:`~lightning_gan.GAN.sample_latent`)
    so that every draw inside the step stays on the stream: an overridden ``sample_latent`` calling plain
    ``torch.randn``, dropout in a network, labels, augmentations. Outside the step (callbacks, validation,
    ``generate``) the global generator is untouched by training. Swapping costs two copies of a 5 KB
    state per step and no device synchronisation.
    """

    def __init__(self) -> None:
        self.cpu: Optional[Tensor] = None
        self.accelerator: Optional[Tensor] = None
        self._device: Optional[torch.device] = None
        self._outside: Optional[tuple[Tensor, Optional[Tensor]]] = None

    @property
    def ready(self) -> bool:
        return self.cpu is not None

    def seed(self, seed: int, device: torch.device) -> None:
        self._device = device
        self.cpu = torch.Generator().manual_seed(seed).get_state()
        self.accelerator = torch.Generator(device=device).manual_seed(seed).get_state() if device.type == "cuda" else None

    def restore(self, cpu: Tensor, accelerator: Optional[Tensor], device: torch.device) -> None:
        self._device = device
        self.cpu = cpu.clone()
        if device.type == "cuda":
            # A state saved on another kind of device cannot be used; a CPU-saved run gets a fresh device stream.
            seed = int(torch.Generator().set_state(self.cpu).initial_seed())
            self.accelerator = (
                accelerator.clone()
                if accelerator is not None
                else torch.Generator(device=device).manual_seed(seed).get_state()
            )
        else:
            self.accelerator = None

    def __enter__(self) -> StepRandomness:
        assert self.cpu is not None, "seed or restore the step stream first"
        cuda = self.accelerator is not None
        self._outside = (torch.get_rng_state(), torch.cuda.get_rng_state(self._device) if cuda else None)
        torch.set_rng_state(self.cpu)
        if cuda:
            torch.cuda.set_rng_state(self.accelerator, self._device)
        return self

    def __exit__(self, *exc: Any) -> None:
        cpu, accelerator = self._outside
        self._outside = None
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(cpu)
        if accelerator is not None:
            self.accelerator = torch.cuda.get_rng_state(self._device)
            torch.cuda.set_rng_state(accelerator, self._device)


def gathered_states(stream: StepRandomness, strategy: Any, world_size: int) -> dict[str, Any]:
    """Every rank's step stream, rank by rank (a collective: called on every rank when a checkpoint is saved)."""
    assert stream.cpu is not None
    states: dict[str, Any] = {}
    for name, state in (("cpu", stream.cpu), ("accelerator", stream.accelerator)):
        if state is None:
            continue
        if world_size > 1:
            state = strategy.all_gather(state.to(strategy.root_device)).cpu()
        states[name] = state.reshape(world_size, -1)
    return states


def restore_for_rank(stream: StepRandomness, saved: dict[str, Any], rank: int, world_size: int, device: torch.device) -> None:
    """Takes this rank's stream from a checkpoint; with another number of processes, seeds fresh streams."""
    cpu = saved.get("cpu")
    if not isinstance(cpu, Tensor) or cpu.ndim != 2 or cpu.shape[0] != world_size:
        saved_ranks = cpu.shape[0] if isinstance(cpu, Tensor) and cpu.ndim == 2 else "?"
        if rank == 0:
            warnings.warn(
                f"The checkpoint holds the latent streams of {saved_ranks} process(es) but this run has {world_size}: "
                "the resumed run draws fresh latents (seeded from the run's seed and rank), so it cannot repeat the "
                "original run exactly.",
                UserWarning,
                stacklevel=3,
            )
        stream.seed(run_seed(rank), device)
        return
    accelerator = saved.get("accelerator")
    stream.restore(cpu[rank], accelerator[rank] if isinstance(accelerator, Tensor) else None, device)
