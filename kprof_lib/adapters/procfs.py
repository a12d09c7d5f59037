"""A process's CPU and memory usage read from /proc, for the runtimes that have no metrics-server:
the sidecar (the app's process, seen through the pod's shared process namespace) and local mode
(a process on this machine, given by its pid).

CPU is a rate, as metrics-server reports it: `UsageMeter.measure()` reads the CPU time the process
has used (utime + stime of /proc/PID/stat, which covers all its threads) and divides the growth
since the previous reading by the time between the two, so each check measures the window since
the check before it. The first reading only opens the window (CPU unknown), and readings closer
than `min_window` apart keep the previous rate rather than divide by almost nothing.

Memory is the resident set size (VmRSS of /proc/PID/status). metrics-server reports a container's
cgroup working set instead, but the app container's cgroup is not visible from the sidecar's
container (each container has its own cgroup namespace), and a local process usually shares its
cgroup with the rest of the user's session; RSS is what both can read, and for a Go service it is
close to the working set (it leaves out the page cache).

The process's live descendants count too (their CPU time
and RSS), as do children it has already reaped (cutime + cstime): an app started through a shell
wrapper is measured whole.

Every reader takes `proc` (default /proc), so tests can point it at a prepared tree.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAUSE_NAMES = frozenset({"pause"})


class ProcessGone(LookupError):
    """The process exited (or its /proc entry cannot be read) while it was being measured."""


@dataclass(frozen=True)
class ProcessStat:
    """The fields of /proc/PID/stat kprof uses; times in clock ticks."""

    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    start_ticks: int  # since boot: with the pid, identifies the process across pid reuse


@dataclass(frozen=True)
class Usage:
    """One measurement of a process (and, when asked, its descendants)."""

    pid: int
    cpu_cores: float | None  # cores used on average over the window; None until a window exists
    memory_bytes: int
    window_seconds: float | None


def read_stat(pid: int, proc: Path = PROC) -> ProcessStat:
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError) as error:
        raise ProcessGone(f"process {pid}: {error}") from None
    # comm is in parentheses and may itself contain spaces and parentheses: split at the last ")".
    head, _, rest = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    try:
        # Fields counted from 3 (state), as numbered in proc(5).
        return ProcessStat(
            pid=pid,
            comm=comm,
            state=fields[0],
            ppid=int(fields[1]),
            utime=int(fields[11]),
            stime=int(fields[12]),
            cutime=int(fields[13]),
            cstime=int(fields[14]),
            start_ticks=int(fields[19]),
        )
    except (IndexError, ValueError):
        raise ProcessGone(f"process {pid}: unreadable stat {text[:80]!r}") from None


def read_cmdline(pid: int, proc: Path = PROC) -> list[str]:
    """The process's arguments; empty for kernel threads and zombies."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_rss_bytes(pid: int, proc: Path = PROC) -> int:
    """VmRSS in bytes; 0 for a process without memory of its own (a zombie)."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError) as error:
        raise ProcessGone(f"process {pid}: {error}") from None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            value, _, unit = line.split(":", 1)[1].strip().partition(" ")
            return int(value) * (1024 if unit.strip().lower() == "kb" else 1)
    return 0


def read_mem_total(proc: Path = PROC) -> int:
    """The machine's memory in bytes (MemTotal of /proc/meminfo)."""
    for line in (proc / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no MemTotal in {proc / 'meminfo'}")


def _stats(proc: Path) -> Iterator[ProcessStat]:
    for pid in sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit()):
        try:
            yield read_stat(pid, proc)
        except ProcessGone:
            continue


def descendants(pid: int, proc: Path = PROC) -> list[int]:
    """Every live process below `pid` in the process tree."""
    children: dict[int, list[int]] = {}
    for stat in _stats(proc):
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        if child in found or child == pid:
            continue
        found.append(child)
        pending.extend(children.get(child, []))
    return sorted(found)


def ancestors(pid: int, proc: Path = PROC) -> list[int]:
    """`pid`'s parent, its parent's parent, ... up to the namespace's root."""
    chain: list[int] = []
    current = pid
    while True:
        try:
            parent = read_stat(current, proc).ppid
        except ProcessGone:
            return chain
        if parent <= 0 or parent in chain or parent == pid:
            return chain
        chain.append(parent)
        current = parent


def find_app_process(
    pattern: re.Pattern[str] | str | None = None, *, proc: Path = PROC, self_pid: int | None = None
) -> int | None:
    """The app's pid: the earliest-started process whose command line (arguments joined by spaces)
    matches `pattern`, or with no pattern the earliest-started one that is not the pause process.
    Never this process, its ancestors or its descendants (the sidecar's own container), nor a
    kernel thread or zombie. None when there is none (yet)."""
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    me = os.getpid() if self_pid is None else self_pid
    excluded = {me, *ancestors(me, proc), *descendants(me, proc)}
    candidates: list[tuple[int, int]] = []
    for stat in _stats(proc):
        if stat.pid in excluded or stat.state in ("Z", "X"):
            continue
        cmdline = read_cmdline(stat.pid, proc)
        if not cmdline or os.path.basename(cmdline[0]) in PAUSE_NAMES:  # the pod's infrastructure process
            continue
        if regex is not None and not regex.search(" ".join(cmdline)):
            continue
        candidates.append((stat.start_ticks, stat.pid))
    return min(candidates)[1] if candidates else None


@dataclass(frozen=True)
class _Reading:
    pid: int
    start_ticks: int
    at: float  # monotonic seconds
    cpu_ticks: int


@dataclass(eq=False)
class UsageMeter:
    """Measures one process over successive calls. `locate()` names the process to measure (None:
    none yet); it is asked again whenever the process measured before is gone, so an app that
    restarts is found again, and its CPU window starts afresh."""

    locate: Callable[[], int | None]
    _: KW_ONLY
    min_window: float = 1.0
    proc: Path = PROC
    monotonic: Callable[[], float] = time.monotonic
    _base: _Reading | None = field(default=None, init=False)
    _last_rate: float | None = field(default=None, init=False)

    def measure(self) -> Usage | None:
        """The usage since the previous call; None when there is no process to measure."""
        for _ in range(2):  # a process found a moment ago may exit before it is read
            pid = self._current_pid()
            if pid is None:
                return None
            try:
                return self._measure(pid)
            except ProcessGone:
                self._forget()
        return None

    def _current_pid(self) -> int | None:
        if self._base is not None:
            try:
                if read_stat(self._base.pid, self.proc).start_ticks == self._base.start_ticks:
                    return self._base.pid
            except ProcessGone:
                pass
            self._forget()
        return self.locate()

    def _forget(self) -> None:
        self._base = None
        self._last_rate = None

    def _measure(self, pid: int) -> Usage:
        stat = read_stat(pid, self.proc)
        ticks = stat.utime + stat.stime + stat.cutime + stat.cstime
        memory = read_rss_bytes(pid, self.proc)
        for child in descendants(pid, self.proc):
            try:
                child_stat = read_stat(child, self.proc)
                child_memory = read_rss_bytes(child, self.proc)
            except ProcessGone:
                continue  # exited in between: its time shows in cutime once reaped
            ticks += child_stat.utime + child_stat.stime
            memory += child_memory
        reading = _Reading(pid, stat.start_ticks, self.monotonic(), ticks)
        base = self._base
        if base is None or base.pid != pid or base.start_ticks != stat.start_ticks or ticks < base.cpu_ticks:
            self._base, self._last_rate = reading, None
            return Usage(pid, None, memory, None)
        window = reading.at - base.at
        if window < self.min_window:
            return Usage(pid, self._last_rate, memory, window)
        rate = (ticks - base.cpu_ticks) / CLOCK_TICKS / window
        self._base, self._last_rate = reading, rate
        return Usage(pid, rate, memory, window)
