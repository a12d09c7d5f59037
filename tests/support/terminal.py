"""`kprof` run on a pseudo-terminal, for the tests where a terminal matters: Ctrl-C typed as a key
(the terminal sends SIGINT to the foreground process group, as in a shell), the output read as a
person sees it. Always stopped by `close()` (SIGKILL if need be)."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CTRL_C = b"\x03"


class Terminal:
    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None):
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = [sys.executable, "-m", "kprof_lib.runtimes.cli", *args]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a session of its own with the pty as its terminal
            try:
                os.chdir(cwd or REPO_ROOT)
                os.execve(sys.executable, command, environment)
            finally:
                os._exit(127)
        self._output = bytearray()
        self._changed = threading.Condition()
        self._exit_code: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            with self._changed:
                if not data:
                    self._changed.notify_all()
                    return
                self._output += data
                self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return self._output.decode("utf-8", "replace").replace("\r\n", "\n")

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in self._output.decode("utf-8", "replace"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"{text!r} not seen within {timeout}s:\n{self._output.decode(errors='replace')}")
                self._changed.wait(min(remaining, 0.2))

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code (as a shell reports it: 130 for a process ended by SIGINT)."""
        deadline = time.monotonic() + timeout
        while self._exit_code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                self._exit_code = 128 - code if code < 0 else code
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout}s:\n{self.text}")
            time.sleep(0.01)
        self._reader.join(5)
        return self._exit_code

    def close(self) -> None:
        if self._exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._exit_code = -1
        self._reader.join(5)
        with contextlib.suppress(OSError):
            os.close(self.fd)
