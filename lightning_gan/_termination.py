"""Ends a process that a SIGTERM (or Ctrl+C) cannot reach because it is blocked in a collective.

Python runs signal handlers in the main thread between bytecodes. A rank blocked in a gloo or NCCL
collective (a metric's ``all_gather`` waiting for a rank that never comes) never returns to the
interpreter, so Lightning's SIGTERM handler (which stops at the next step and forwards the signal to the
processes rank 0 launched) never runs, and the job hangs until the collective times out, 30 minutes by
default. The C-level part of Python's handler still writes the signal's number to the wakeup file
descriptor at once; a watcher thread reads it and, if the process is still alive a grace period later,
kills the processes it launched and exits with ``128 + signal``.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from typing import Callable, Optional

_WATCHED = (signal.SIGTERM, signal.SIGINT)


class TerminationWatchdog:
    """A daemon thread that ends this process ``grace_s`` seconds after a SIGTERM or SIGINT it did not act on.

    ``on_expire`` runs first (e.g. to kill launched processes). Start and stop it from the main thread.
    Nothing is installed when another library already uses the signal wakeup descriptor.
    """

    def __init__(self, grace_s: float, describe: Callable[[], str], on_expire: Callable[[], None]) -> None:
        self.grace_s = grace_s
        self._describe = describe
        self._on_expire = on_expire
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._fds: Optional[tuple[int, int]] = None

    def start(self) -> bool:
        if self._thread is not None or threading.current_thread() is not threading.main_thread():
            return False
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        if previous != -1:  # someone else's (asyncio's, ...): leave it to them
            signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return False
        self._fds = (read_fd, write_fd)
        self._thread = threading.Thread(target=self._watch, name="lightning_gan-termination-watchdog", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        if self._thread is None or self._fds is None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._thread, self._fds = None, None
        self._stop.clear()

    def _watch(self) -> None:
        assert self._fds is not None
        read_fd = self._fds[0]
        while not self._stop.is_set():
            ready, _, _ = select.select([read_fd], [], [], 0.5)
            if not ready:
                continue
            try:
                received = os.read(read_fd, 64)
            except OSError:
                return
            signals = [s for s in received if s in _WATCHED]
            if signals:
                self._expire_after_grace(signals[0])
                return

    def _expire_after_grace(self, signum: int) -> None:
        if self._stop.wait(self.grace_s):
            return  # the process stopped on its own (Lightning's graceful path) and tore the watchdog down
        name = signal.Signals(signum).name
        print(
            f"GANDDPStrategy: {self._describe()} still running {self.grace_s:g} s after {name} (blocked, e.g. in a "
            "collective waiting for another rank); stopping the processes it launched and exiting.",
            file=sys.stderr,
            flush=True,
        )
        try:
            self._on_expire()
        finally:
            os._exit(128 + signum)
