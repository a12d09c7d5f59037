"""`kprof` commands run as real processes for the runtime tests (sidecar, local mode): started with
this interpreter, their stdout and stderr read line by line as they come, waited on with bounded
timeouts, sent signals, and always stopped by `KprofProcesses.close()` (SIGKILL if need be)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


class KprofProcess:
    """One running `kprof ARGS`; `stdout`/`stderr` hold the lines read so far."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None):
        self.args = list(args)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kprof_lib.runtimes.cli", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(cwd or REPO_ROOT),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.pid = self.process.pid
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])

    def wait_for(
        self, predicate: Callable[[str], bool], *, stream: str = "stdout", timeout: float = 60.0, after: int = 0
    ) -> tuple[int, str]:
        """The first line (index, text) at or after `after` that satisfies `predicate`; fails the
        test with everything printed so far if none comes within `timeout` or the process ends."""
        lines = self.stdout if stream == "stdout" else self.stderr
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(lines)):
                    if predicate(lines[index]):
                        return index, lines[index]
                after = len(lines)
                if self.process.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise AssertionError(f"kprof exited ({self.process.returncode}) first:\n{self._unlocked_output()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching line within {timeout}s:\n{self._unlocked_output()}")
                self._changed.wait(min(remaining, 0.5))

    def _unlocked_output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])

    def json_logs(self) -> list[dict[str, Any]]:
        """The stderr lines that are JSON log records."""
        with self._changed:
            lines = list(self.stderr)
        records = []
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"kprof still running after {timeout}s:\n{self.output()}") from None
        for reader in self._readers:
            reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class KprofProcesses:
    """Starts `kprof` processes and kills whichever is still running on close()."""

    def __init__(self) -> None:
        self.started: list[KprofProcess] = []

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> KprofProcess:
        process = KprofProcess(args, env=env, cwd=cwd)
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            process.kill()


def is_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
