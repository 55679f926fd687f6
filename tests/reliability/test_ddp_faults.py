"""A fault on one rank of a 2-process ``gan_ddp`` run ends the whole run, non-zero and quickly, instead of hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

SCRIPT = Path(__file__).with_name("ddp_fault_script.py")
TIMEOUT_S = 120
# Start-up (importing torch and Lightning in each process, the process group) is ~10 s on 2 idle cores.
PROMPT_S = 60
SCENARIOS = {"raise": ("raise", 1), "nan": ("nan", 1), "hang": ("hang", 1)}


@dataclass
class Outcome:
    returncode: int
    elapsed: float
    reports: dict[int, str]  # rank -> what ended it, as the script wrote it
    output: str
    folder: Path


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Runs the scenarios side by side (each mostly waits on imports), with output to files, not pipes."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    running = {}
    for name, (mode, rank) in SCENARIOS.items():
        folder = tmp_path_factory.mktemp(name)
        log = open(folder / "output.txt", "w")
        process = subprocess.Popen([sys.executable, str(SCRIPT), mode, str(rank), str(folder)], cwd=folder, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        running[name] = (process, folder, log, time.monotonic())
    finished: dict[str, Outcome] = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(finished) < len(running) and time.monotonic() < deadline:
        for name, (process, folder, log, start) in running.items():
            if name not in finished and process.poll() is not None:
                log.close()
                reports = {r: (folder / f"rank{r}.txt").read_text() for r in (0, 1) if (folder / f"rank{r}.txt").exists()}
                output = (folder / "output.txt").read_text()[-4000:]
                finished[name] = Outcome(process.returncode, time.monotonic() - start, reports, output, folder)
        time.sleep(0.2)
    for name, (process, _, log, _) in running.items():
        if name not in finished:  # a hang: stop both ranks (rank 1 is a child of rank 0, in its session)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.close()
    return finished


def test_an_exception_on_rank_1_ends_every_rank_non_zero_without_a_hang(outcomes):
    assert "raise" in outcomes, f"still running after {TIMEOUT_S} s: a hang"
    outcome = outcomes["raise"]
    assert outcome.returncode != 0, outcome.output
    assert outcome.elapsed < PROMPT_S, f"took {outcome.elapsed:.0f} s\n{outcome.output}"
    assert outcome.reports[1] == "RuntimeError: injected fault on rank 1 at step 3"
    # Rank 0 was waiting in the gradient all-reduce; gloo sees the peer's socket close and raises (its
    # wording varies: "Connection closed by peer", "Read error ... Connection reset by peer").
    assert outcome.reports[0].startswith("RuntimeError:") and "injected" not in outcome.reports[0], outcome.reports


def test_divergence_on_one_rank_stops_every_rank_at_the_same_check(outcomes):
    assert "nan" in outcomes, f"still running after {TIMEOUT_S} s: a hang"
    outcome = outcomes["nan"]
    assert outcome.returncode != 0, outcome.output
    assert outcome.elapsed < PROMPT_S, f"took {outcome.elapsed:.0f} s\n{outcome.output}"
    for rank in (0, 1):
        assert outcome.reports[rank].startswith("DivergenceError: DivergenceGuard stopped training at step 4"), (
            outcome.reports
        )
    assert "the generator loss was first non-finite at step 3" in outcome.reports[1]
    # Rank 0 spent longer over its exception than Lightning's watcher waits before killing it, and reported.
    assert "rank 0 gets 15 s to stop by itself" in (outcome.folder / "output.txt").read_text(), outcome.output


def test_a_hung_rank_is_not_left_running_when_the_others_time_out(outcomes):
    assert "hang" in outcomes, f"still running after {TIMEOUT_S} s: a hang"
    outcome = outcomes["hang"]
    pid_file = outcome.folder / "rank1.pid"
    assert pid_file.exists(), outcome.output
    pid = int(pid_file.read_text())
    orphan = False
    for _ in range(50):  # the kill is sent as rank 0 fails; give the kernel a moment to reap
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        orphan = True
        os.kill(pid, signal.SIGKILL)  # never leave it behind, even when the test fails
    assert not orphan, f"rank 1 (pid {pid}) was still running after rank 0 exited: an orphan\n{outcome.output}"
    assert outcome.returncode != 0, outcome.output
    assert outcome.elapsed < PROMPT_S, f"took {outcome.elapsed:.0f} s\n{outcome.output}"
    full_output = (outcome.folder / "output.txt").read_text()
    assert "GANDDPStrategy: rank 0 failed" in full_output, outcome.output
    assert "stopping the 1 process(es) it launched that are still running" in full_output, outcome.output


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class SigtermOutcome:
    returncode: Optional[int]
    elapsed: float  # seconds from the SIGTERM to the exit of the job's main process
    rank1_alive: bool
    output: str


@pytest.fixture(scope="module")
def sigterm_outcomes(tmp_path_factory) -> dict[str, SigtermOutcome]:
    """Both targets side by side: rank 0 waits in a metric's all_gather for rank 1, asleep, when SIGTERM comes."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    jobs = {}
    for target in ("rank0", "every-rank"):
        folder = tmp_path_factory.mktemp(f"sigterm-{target}")
        with open(folder / "output.txt", "w") as log:
            jobs[target] = (subprocess.Popen([sys.executable, str(SCRIPT), "sigterm", "1", str(folder)], cwd=folder,
                                             env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                            folder)  # fmt: skip
    outcomes: dict[str, SigtermOutcome] = {}
    all_pids: list[int] = []
    try:
        for target, (process, folder) in jobs.items():
            pids: dict[int, int] = {}
            deadline = time.monotonic() + PROMPT_S
            while len(pids) < 2 and time.monotonic() < deadline and process.poll() is None:
                pids = {r: int(p.read_text()) for r in (0, 1) if (p := folder / f"rank{r}.pid").exists() and p.read_text()}
                time.sleep(0.2)
            all_pids += pids.values()
            if len(pids) < 2:
                outcomes[target] = SigtermOutcome(process.poll(), 0.0, False, (folder / "output.txt").read_text()[-4000:])
                continue
            time.sleep(1.0)  # rank 0 is now inside the all_gather
            signalled = time.monotonic()
            if target == "rank0":
                os.kill(pids[0], signal.SIGTERM)  # as `kill PID` on the job's main process
            else:
                os.killpg(process.pid, signal.SIGTERM)  # as a scheduler or a terminal ends the whole job
            try:
                returncode: Optional[int] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                returncode = None
            elapsed = time.monotonic() - signalled
            for _ in range(50):
                if not _pid_alive(pids[1]):
                    break
                time.sleep(0.1)
            outcomes[target] = SigtermOutcome(returncode, elapsed, _pid_alive(pids[1]),
                                              (folder / "output.txt").read_text())  # fmt: skip
    finally:
        for process, _ in jobs.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in all_pids:
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    return outcomes


@pytest.mark.parametrize("target", ["rank0", "every-rank"])
def test_sigterm_ends_every_rank_even_one_blocked_in_a_metric_collective(sigterm_outcomes, target):
    """Rank 0 waits in a metric's all_gather for rank 1, which never comes; SIGTERM must still end the job.

    Without the strategy's watchdog rank 0 never returns to Python to run Lightning's handler, and the
    job hangs for the collective's timeout (600 s here, 30 min by default).
    """
    outcome = sigterm_outcomes[target]
    tail = outcome.output[-4000:]
    assert outcome.returncode is not None, f"still running 30 s after SIGTERM: a hang\n{tail}"
    assert not outcome.rank1_alive, f"rank 1 still running after rank 0 exited\n{tail}"
    assert outcome.returncode != 0, tail
    assert outcome.elapsed < 20, f"took {outcome.elapsed:.0f} s after SIGTERM\n{tail}"
    assert "still running 3 s after SIGTERM" in outcome.output, tail
