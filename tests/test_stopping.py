"""Ctrl-C and SIGTERM, driving the real commands against the real Go sample app: the first signal
starts no new capture and says in one line what it is finishing and the longest that may take;
the second cuts the captures in flight in under a second, leaves nothing half-written and exits
130. `kprof capture` and `kprof local` get their Ctrl-C typed on a terminal (a pty); the sidecar
gets SIGTERM, as the kubelet sends it, and cuts what is in flight when its grace period is over."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.goapp import GoApp
from tests.support.kprofproc import KprofProcesses
from tests.support.terminal import CTRL_C, Terminal
from tests.test_sidecar import podinfo_dir, sidecar_env


@pytest.fixture
def terminals():
    started: list[Terminal] = []

    def start(*args: str, **kwargs) -> Terminal:
        terminal = Terminal(args, **kwargs)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        terminal.close()


@pytest.fixture
def app(sample_app_binary, tmp_path):
    """The sample app under a name of its own, for the sidecar's --app-process."""
    name = f"stopping-{tmp_path.name[-12:]}-{id(tmp_path):x}"
    link = tmp_path / name
    link.symlink_to(sample_app_binary)
    with GoApp(link) as running:
        running.process_name = name
        yield running


@pytest.fixture
def kprof():
    processes = KprofProcesses()
    yield processes
    processes.close()


def stored(folder: Path) -> list[str]:
    """The profile files under `folder`, by name."""
    return sorted(path.name for path in folder.rglob("*.pprof"))


def leftovers(folder: Path) -> list[Path]:
    """Temporary or partial files: what an interrupted write would leave."""
    return [path for path in folder.rglob("*") if path.is_file() and (path.name.startswith(".") or "tmp" in path.suffix)]


def cpu_in_flight(out: Path, timeout: float = 60.0) -> None:
    """Returns once the heap profile (asked for before cpu) is stored, and a moment more: the CPU
    profile has started then."""
    deadline = time.monotonic() + timeout
    while not stored(out):
        assert time.monotonic() < deadline, "no heap profile stored"
        time.sleep(0.02)
    time.sleep(0.5)


# How soon after the second signal the process must be gone. It is under a second on an idle
# machine (the figure each test prints); the bound is looser because a shared 2-core machine
# running two test workers can stall a process for a second or two, and still far below the 20 s
# CPU profile that finishing instead of cutting would take.
ABORT_BOUND = 5.0
FINISHING = re.compile(r"stopping: finishing cpu of local/\S+ \(about (\d+) s, at most (\d+) s\); Ctrl-C again to abort")


def test_capture_first_ctrl_c_finishes_the_profile_in_flight_and_starts_no_other(go_app, terminals, tmp_path):
    out = tmp_path / "profiles"
    seconds = 4
    run = terminals("capture", "--url", go_app.url, "--types", "heap,cpu,goroutine", "--seconds", str(seconds),
                    "--out", str(out))
    cpu_in_flight(out)
    run.type(CTRL_C)
    run.wait_for("stopping: ")
    assert run.wait(seconds + 20) == 130, run.text
    # The terminal echoes the key as ^C before the line.
    [line] = [line[line.index("stopping: ") :] for line in run.text.splitlines() if "stopping: " in line]
    about, at_most = map(int, FINISHING.fullmatch(line).groups())
    assert 1 <= about <= seconds and seconds < at_most <= seconds + 15, line
    assert stored(out) == ["cpu.pprof", "heap.pprof"], run.text
    assert re.search(r"  - goroutine +cancelled +\(not started: stopping\)$", run.text, re.M), run.text
    assert leftovers(out) == []


def test_capture_second_ctrl_c_cuts_the_capture_at_once(go_app, terminals, tmp_path):
    out = tmp_path / "profiles"
    run = terminals("capture", "--url", go_app.url, "--types", "heap,cpu,goroutine", "--seconds", "20",
                    "--out", str(out))
    cpu_in_flight(out)
    run.type(CTRL_C)
    run.wait_for("Ctrl-C again to abort")
    run.type(CTRL_C)
    pressed = time.monotonic()
    assert run.wait(20) == 130, run.text
    took = time.monotonic() - pressed
    print(f"exited {took:.2f} s after the second Ctrl-C")
    assert took < ABORT_BOUND, f"exited {took:.2f} s after the second Ctrl-C:\n{run.text}"
    assert stored(out) == ["heap.pprof"], run.text
    assert re.search(r"  - cpu +cancelled +\(cut: stopping\)$", run.text, re.M), run.text
    assert leftovers(out) == []
    # The app's CPU profiler was let go: a new CPU profile can start at once.
    assert go_app.pprof("profile", seconds=1)[:2] == b"\x1f\x8b"


def test_local_second_ctrl_c_cuts_the_capture_at_once(go_app, terminals, tmp_path):
    out = tmp_path / "profiles"
    run = terminals("local", "--target", go_app.url, "--on-demand-interval", "30", "--types", "heap,cpu",
                    "--cpu-seconds", "20", "--out", str(out), "--name", "checkout")
    cpu_in_flight(out)
    run.type(CTRL_C)
    run.wait_for("stopping: finishing cpu of local/checkout")
    run.type(CTRL_C)
    pressed = time.monotonic()
    assert run.wait(20) == 130, run.text
    took = time.monotonic() - pressed
    print(f"exited {took:.2f} s after the second Ctrl-C")
    assert took < ABORT_BOUND, f"exited {took:.2f} s after the second Ctrl-C:\n{run.text}"
    assert "aborting: captures in flight cut, nothing more stored" in run.text
    assert stored(out) == ["heap.pprof"] and leftovers(out) == [], run.text


def test_sidecar_cuts_the_capture_in_flight_when_its_grace_period_is_over(app, kprof, tmp_path):
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 30}, "profileTypes": ["heap", "cpu"], "cpuProfileSeconds": 20}
    env = sidecar_env(tmp_path, podinfo_dir(tmp_path, app.port), spec)
    run = kprof("sidecar", "--app-process", app.process_name, "--health-addr", "127.0.0.1:0", "--grace-period", "1",
                env=env)
    cpu_in_flight(tmp_path / "var" / "profiles")
    run.send(signal.SIGTERM)
    sent = time.monotonic()
    assert run.wait(20) == 0, run.output()
    took = time.monotonic() - sent
    assert took < 4.0, f"exited {took:.2f} s after SIGTERM with a grace period of 1 s:\n{run.output()}"
    messages = [record["msg"] for record in run.json_logs()]
    assert "grace period over: cutting the captures in flight" in messages, run.output()
    assert messages[-1] == "stopped"
    local = tmp_path / "var" / "profiles"
    assert stored(local) == ["heap.pprof"] and leftovers(local) == [], run.output()


def test_sidecar_second_sigterm_cuts_at_once_and_exits_130(app, kprof, tmp_path):
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 30}, "profileTypes": ["heap", "cpu"], "cpuProfileSeconds": 20}
    env = sidecar_env(tmp_path, podinfo_dir(tmp_path, app.port), spec)
    run = kprof("sidecar", "--app-process", app.process_name, "--health-addr", "127.0.0.1:0", env=env)
    cpu_in_flight(tmp_path / "var" / "profiles")
    run.send(signal.SIGTERM)
    run.wait_for(lambda line: "SIGTERM received: no new capture" in line, stream="stderr")
    run.send(signal.SIGTERM)
    sent = time.monotonic()
    assert run.wait(20) == 130, run.output()
    took = time.monotonic() - sent
    print(f"exited {took:.2f} s after the second SIGTERM")
    assert took < ABORT_BOUND, f"exited {took:.2f} s after the second SIGTERM:\n{run.output()}"
