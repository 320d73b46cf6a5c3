"""Run a command as a person or a scheduler would: in a pseudo-terminal, or piped; always with a deadline."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Finished:
    code: int | None  # None: still running at the deadline (then killed)
    output: str

    @property
    def timed_out(self) -> bool:
        return self.code is None


def cli(*args: str) -> list[str]:
    """argv of the installed console script of this interpreter's environment."""
    return [str(VENV_BIN / "alignloop"), *args]


def run_in_terminal(argv: list[str], *, timeout: float, cwd: Path | None = None,
                    env: dict[str, str] | None = None) -> Finished:
    """Run argv with stdin, stdout and stderr on a pseudo-terminal (so isatty() is true), reading everything
    it writes; kill its process group at the deadline."""
    master, slave = os.openpty()
    os.set_inheritable(slave, True)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None and not _more(master):
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                break
            if not data:
                break
            chunks.append(data)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Finished(None, b"".join(chunks).decode(errors="replace"))
        return Finished(proc.wait(timeout=max(1.0, deadline - time.monotonic())), b"".join(chunks).decode(errors="replace"))
    finally:
        os.close(master)


def _more(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def run_piped(argv: list[str], *, timeout: float, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv with its output piped (as under cron or a scheduler), stdout and stderr apart."""
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
