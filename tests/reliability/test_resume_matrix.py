"""Exact resume in every loop configuration, in new processes (tests/reliability/resume_matrix_script.py).

{``max_epochs``, ``max_steps``} x {validation loader, none} x {DCGAN with EMA and schedulers, WGANGP with
``n_critic=5``, ConditionalGAN} x {end-of-epoch checkpoint, a run stopped after one epoch and saved, a
mid-epoch checkpoint}: every weight, buffer, EMA weight, optimizer and scheduler state of the resumed run
equals the straight run's bit for bit. The resumed runs seed with another value than the straight one,
so only what the checkpoint restored (the step's random stream, the data module's shuffling seed, the
loader's place in its epoch) can make them equal.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_resume import _differences

SCRIPT = Path(__file__).with_name("resume_matrix_script.py")
STOPS, VALIDATION, MODELS = ("epochs", "steps"), ("1", "0"), ("dcgan", "wgangp", "conditional")
CHECKPOINTS = ("epoch0", "stopped", "mid")


def _run_all(mode: str, out: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    # One process per stopping rule, side by side (two cores in CI).
    procs = []
    for stop in STOPS:
        configs = [part for val, model in itertools.product(VALIDATION, MODELS) for part in (stop, val, model)]
        procs.append(subprocess.Popen([sys.executable, str(SCRIPT), mode, str(out), *configs], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-4000:]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume-matrix")
    _run_all("first", out)
    _run_all("resume", out)  # new interpreters: nothing carried over in memory
    return out


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("validation", VALIDATION, ids=["val", "no-val"])
@pytest.mark.parametrize("stop", STOPS, ids=["max_epochs", "max_steps"])
def test_resumed_run_is_bitwise_equal_to_the_straight_run(matrix, stop, validation, model, checkpoint):
    directory = matrix / f"{stop}-{validation}-{model}"
    straight = torch.load(directory / "straight.pt", weights_only=True)
    resumed = torch.load(directory / f"resumed-{checkpoint}.pt", weights_only=True)
    assert resumed["global_step"] == straight["global_step"] > 0
    assert _differences(straight, resumed) == []


DDP_SCRIPT = Path(__file__).with_name("ddp_resume_script.py")


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp-resume")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    for mode in ("first", "resume"):
        result = subprocess.run([sys.executable, str(DDP_SCRIPT), mode, str(out)], cwd=out, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.mark.parametrize("checkpoint", ["epoch0", "mid"])
@pytest.mark.parametrize("rank", [0, 1])
def test_two_process_gan_ddp_resume_is_bitwise_equal_on_each_rank(ddp_runs, rank, checkpoint):
    straight = torch.load(ddp_runs / f"straight-rank{rank}.pt", weights_only=True)
    resumed = torch.load(ddp_runs / f"resumed-{checkpoint}-rank{rank}.pt", weights_only=True)
    assert resumed["global_step"] == straight["global_step"] == 8
    assert _differences(straight, resumed) == []


def test_each_rank_draws_its_own_latent_stream(ddp_runs):
    rank0, rank1 = (torch.load(ddp_runs / f"straight-rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(rank0["step_stream"], rank1["step_stream"])
    assert _differences(rank0["module"], rank1["module"]) == []  # one model, averaged gradients
