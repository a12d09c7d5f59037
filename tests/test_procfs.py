"""Reading a process's usage from /proc: the app process is found as the sidecar would find it in a
shared process namespace (a prepared /proc tree: pause, the sidecar's own processes, kernel
threads, zombies), CPU is a rate over the window between readings, an app restart opens a new
window, and the real Go sample app under /load reads as busy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kprof_lib.adapters import procfs


class FakeProc:
    """A /proc tree with stat, cmdline and status files written as Linux writes them."""

    def __init__(self, root: Path):
        self.root = root

    def add(
        self,
        pid: int,
        ppid: int,
        cmdline: list[str],
        *,
        comm: str | None = None,
        state: str = "S",
        utime: int = 0,
        stime: int = 0,
        cutime: int = 0,
        cstime: int = 0,
        start: int = 100,
        rss_kb: int = 1000,
    ) -> None:
        folder = self.root / str(pid)
        folder.mkdir(parents=True, exist_ok=True)
        name = comm or (Path(cmdline[0]).name[:15] if cmdline else f"kworker/{pid}")
        # Fields 3..22 of proc(5); the ones kprof does not read are zeros.
        fields = [state, ppid, 0, 0, 0, 0, 0, 0, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0, start]
        (folder / "stat").write_text(f"{pid} ({name}) " + " ".join(map(str, fields)) + " 0 0\n")
        (folder / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in cmdline))
        (folder / "status").write_text(
            f"Name:\t{name}\nState:\t{state}\n" + (f"VmRSS:\t{rss_kb:8d} kB\n" if cmdline else "")
        )

    def remove(self, pid: int) -> None:
        for child in (self.root / str(pid)).iterdir():
            child.unlink()
        (self.root / str(pid)).rmdir()


@pytest.fixture
def fake(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    # A pod with shareProcessNamespace: pause is pid 1, then the app, then the sidecar started by
    # a shell, with a helper child of its own; a kernel thread and a zombie for good measure.
    proc.add(1, 0, ["/pause"], start=10)
    proc.add(2, 0, [], comm="kthreadd", start=5)
    proc.add(7, 1, ["/app/server", "--port=6060"], start=20, utime=500, stime=100, rss_kb=50_000)
    proc.add(9, 1, ["/bin/sh", "-c", "kprof sidecar"], start=30)
    proc.add(12, 9, ["/opt/kprof/bin/python", "/opt/kprof/bin/kprof", "sidecar"], start=31)
    proc.add(15, 12, ["/opt/kprof/bin/helper"], start=40)
    proc.add(20, 1, ["/bin/envoy", "-c", "/etc/envoy.yaml"], start=25)
    proc.add(21, 1, ["defunct"], state="Z", start=15)
    return proc


def test_the_first_process_that_is_not_pause_nor_the_sidecar_is_the_app(fake):
    assert procfs.find_app_process(proc=fake.root, self_pid=12) == 7


def test_a_pattern_picks_the_app_among_other_containers(fake):
    assert procfs.find_app_process("envoy", proc=fake.root, self_pid=12) == 20
    assert procfs.find_app_process(r"--port=\d+", proc=fake.root, self_pid=12) == 7
    # The sidecar's own processes never match, even when the pattern names them.
    assert procfs.find_app_process("kprof|helper", proc=fake.root, self_pid=12) is None


def test_no_app_yet(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, 0, ["/pause"])
    proc.add(5, 1, ["kprof", "sidecar"])
    assert procfs.find_app_process(proc=proc.root, self_pid=5) is None


def test_cpu_is_a_rate_over_the_window_and_children_count(fake):
    clock = iter([100.0, 110.0, 110.2, 120.0])
    meter = procfs.UsageMeter(
        lambda: procfs.find_app_process(proc=fake.root, self_pid=12), proc=fake.root, monotonic=lambda: next(clock)
    )
    first = meter.measure()
    assert (first.pid, first.cpu_cores, first.memory_bytes) == (7, None, 50_000 * 1024)

    ticks = procfs.CLOCK_TICKS
    # 10 s later the app has used 5 s of CPU itself, and a child it started 2 s more.
    fake.add(7, 1, ["/app/server", "--port=6060"], start=20, utime=500 + 4 * ticks, stime=100 + ticks, rss_kb=60_000)
    fake.add(30, 7, ["/app/worker"], start=60, utime=2 * ticks, rss_kb=5_000)
    second = meter.measure()
    assert second.cpu_cores == pytest.approx(0.7) and second.window_seconds == pytest.approx(10.0)
    assert second.memory_bytes == 65_000 * 1024
    # A reading 0.2 s later is too close to divide by: the last rate stands.
    assert meter.measure().cpu_cores == pytest.approx(0.7)

    # The child uses 1 s more, exits and is reaped: its time moves into the app's cutime, so the
    # next window (from the reading at 110 s) sees just that second.
    fake.remove(30)
    fake.add(
        7,
        1,
        ["/app/server", "--port=6060"],
        start=20,
        utime=500 + 4 * ticks,
        stime=100 + ticks,
        cutime=2 * ticks + ticks,
        rss_kb=60_000,
    )
    third = meter.measure()
    assert third.cpu_cores == pytest.approx(0.1) and third.memory_bytes == 60_000 * 1024


def test_a_restarted_app_opens_a_new_window(fake):
    clock = iter([0.0, 10.0, 20.0])
    # By pattern: with the default rule, envoy (older than the new app process) would be taken.
    meter = procfs.UsageMeter(
        lambda: procfs.find_app_process("server", proc=fake.root, self_pid=12),
        proc=fake.root,
        monotonic=lambda: next(clock),
    )
    assert meter.measure().cpu_cores is None
    fake.remove(7)
    fake.add(40, 1, ["/app/server", "--port=6060"], start=900, utime=3)
    restarted = meter.measure()
    assert (restarted.pid, restarted.cpu_cores) == (40, None)
    assert meter.measure().cpu_cores == pytest.approx(0.0)


def test_a_vanished_app_reads_as_none(fake):
    meter = procfs.UsageMeter(lambda: None, proc=fake.root)
    assert meter.measure() is None


def test_stat_with_parentheses_and_spaces_in_the_name(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.add(3, 1, ["x"], comm="we (ird) name", utime=7, stime=8, start=99)
    stat = procfs.read_stat(3, proc.root)
    assert (stat.comm, stat.ppid, stat.utime, stat.stime, stat.start_ticks) == ("we (ird) name", 1, 7, 8, 99)
    with pytest.raises(procfs.ProcessGone):
        procfs.read_stat(4, proc.root)


def test_the_real_go_app_under_load_reads_as_busy(go_app):
    meter = procfs.UsageMeter(lambda: go_app.pid, min_window=0.5)
    assert meter.measure().cpu_cores is None
    go_app.load(cpu_seconds=30, workers=2)
    deadline = time.monotonic() + 20
    busy = None
    while time.monotonic() < deadline:
        time.sleep(1)
        usage = meter.measure()
        assert usage.pid == go_app.pid and usage.memory_bytes > 1024 * 1024
        if usage.cpu_cores is not None and usage.cpu_cores > 0.3:
            busy = usage
            break
    assert busy is not None, "the Go app under /load never used a third of a core"
    assert procfs.ancestors(go_app.pid)[0] == os.getpid()
    assert go_app.pid in procfs.descendants(os.getpid())
    assert procfs.read_mem_total() > 0
