"""GANDDPStrategy: a GAN trains on two CPU processes and the ranks end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl

from lightning_gan import GANDDPStrategy

SCRIPT = Path(__file__).with_name("ddp_dcgan_script.py")


def test_dcgan_trains_under_cpu_ddp_and_ranks_hold_identical_weights(tmp_path):
    # Two runs side by side: gradients averaged after each backward (the default), and overlapped with it.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    runs = {}
    for name, flags in (("after_backward", []), ("overlapped", ["--overlap"])):
        folder = tmp_path / name
        folder.mkdir()
        runs[name] = (folder, subprocess.Popen([sys.executable, str(SCRIPT), str(folder / "ranks.json"), "10", *flags],
                                               cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               text=True))
    reports = {}
    for name, (folder, process) in runs.items():
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-3000:]
        reports[name] = json.loads((folder / "ranks.json").read_text())
    ranks = reports["after_backward"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert all(r["global_step"] == 10 and r["d_steps"] == 10 for r in ranks)
    for name in ("generator", "discriminator", "generator_ema"):
        assert ranks[0]["final"][name] == ranks[1]["final"][name], f"{name} differs across ranks"
        assert ranks[0]["initial"][name] == ranks[1]["initial"][name], f"{name} was not broadcast at start"
        assert ranks[0]["final"][name] != ranks[0]["initial"][name], f"{name} did not train"
    # Overlapping the all-reduce with the backward changes when the averages are computed, not what they are.
    overlapped = reports["overlapped"]
    for rank in (0, 1):
        assert overlapped[rank]["final"] == ranks[rank]["final"], rank
        # Per network: several buckets, and all but the last sent while its backward was still running.
        assert len(overlapped[rank]["overlap"]) == 2 and ranks[rank]["overlap"] == []
        for buckets, sent_early in overlapped[rank]["overlap"]:
            assert buckets >= 2 and sent_early >= 10 * (buckets - 1), overlapped[rank]["overlap"]


def test_strategy_is_registered_and_refuses_ddp_wrapper_options():
    trainer = pl.Trainer(strategy="gan_ddp", accelerator="cpu", devices=1, logger=False)
    assert isinstance(trainer.strategy, GANDDPStrategy)
    with pytest.raises(ValueError, match="find_unused_parameters"):
        GANDDPStrategy(find_unused_parameters=True)


def test_ranks_draw_different_latents_after_seed_everything(tmp_path):
    out = tmp_path / "latents.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out), "2", "--latents"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert ranks[0]["latent"] != ranks[1]["latent"]
