"""Exact resume: a checkpoint holds everything, and a new process resumed from it repeats the straight run bit for bit.

The runs happen in two subprocesses (tests/reliability/resume_script.py): one trains 16 generator steps
straight (2 epochs of 8 batches, validation after each; DCGAN with batch norm, EMA and a StepLR per
optimizer, ``deterministic=True``) and, separately, a run that stops at step 8 and saves; the other,
a new interpreter, resumes each checkpoint up to step 16.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("resume_script.py")
STEPS = 16

# What gan.py does today, and the fix; see docs/reliability.md ("Resuming").


def _run(*args: str, cwd: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume")
    _run("first", str(out), str(STEPS), cwd=out)
    _run("resume", str(out), str(STEPS), "epoch0", "half", "step12", cwd=out)
    return out


def _flatten(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}/{i}")
    else:
        yield prefix, value


def _differences(expected: dict, actual: dict) -> list[str]:
    """Keys whose values are not bitwise equal (torch.equal for tensors, == for the rest)."""
    a, b = dict(_flatten(expected)), dict(_flatten(actual))
    if a.keys() != b.keys():
        return sorted(a.keys() ^ b.keys())
    return [
        key
        for key in a
        if not (torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key])
    ]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_checkpoint_holds_both_networks_optimizers_schedulers_ema_step_and_rng_states(runs):
    checkpoint = _load(runs / "epoch0.ckpt")  # weights_only=True: only tensors and plain values inside
    keys = checkpoint["state_dict"].keys()
    for prefix in ("generator.", "discriminator.", "generator_ema.module."):
        assert any(k.startswith(prefix) for k in keys), f"no {prefix}* in the state dict"
    assert any("running_mean" in k for k in keys)  # batch-norm buffers
    assert checkpoint["global_step"] == STEPS // 2 and checkpoint["epoch"] == 0
    optimizers = checkpoint["optimizer_states"]
    assert len(optimizers) == 2
    # One discriminator step per generator step, and Adam's moments for every parameter of each network.
    assert all(int(state["step"]) == STEPS // 2 for o in optimizers for state in o["state"].values())
    assert [len(o["state"]) for o in optimizers] == [
        sum(1 for k in keys if k.startswith(net) and not any(b in k for b in ("running_", "num_batches")))
        for net in ("generator.", "discriminator.")
    ]
    assert [s["last_epoch"] for s in checkpoint["lr_schedulers"]] == [STEPS // 2, STEPS // 2]
    assert set(checkpoint["rng_states"]) >= {"torch", "numpy", "python"}


def test_resuming_an_end_of_epoch_checkpoint_in_a_new_process_is_bitwise_equal(runs):
    straight, resumed = _load(runs / "straight.pt"), _load(runs / "resumed-epoch0.pt")
    assert resumed["global_step"] == STEPS
    assert _differences(straight, resumed) == []


def test_resuming_a_run_stopped_at_half_the_steps_is_bitwise_equal(runs):
    straight, resumed = _load(runs / "straight.pt"), _load(runs / "resumed-half.pt")
    assert resumed["global_step"] == STEPS
    assert _differences(straight, resumed) == []


def test_resuming_mid_epoch_continues_from_the_saved_step(runs):
    """Not bitwise: the rest of the interrupted epoch is drawn from a new shuffle (docs/reliability.md)."""
    assert _load(runs / "step12.ckpt")["global_step"] == STEPS * 3 // 4
    resumed = _load(runs / "resumed-step12.pt")
    assert resumed["global_step"] == STEPS
    # Exactly STEPS - 12 more steps of each network and of each scheduler, not a restarted count.
    assert all(int(s["step"]) == STEPS for o in resumed["optimizers"] for s in o["state"].values())
    assert [s["last_epoch"] for s in resumed["schedulers"]] == [STEPS, STEPS]
    assert all(torch.isfinite(v).all() for v in resumed["module"].values() if v.is_floating_point())
