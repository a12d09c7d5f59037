"""Profiles taken from the real Go sample app for the profile tests: one app under load, every
profile type fetched once per test session into a temporary folder, captures stored by `kprof
capture` (the `stored_captures` fixture, registered in conftest), and a reader of
`go tool pprof -top` output to compare against."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.goapp import GoApp, run_go_tool_pprof

KPROF = str(Path(sys.executable).parent / "kprof")
TYPES = ("cpu", "heap", "goroutine", "mutex", "block", "allocs")
_ROW = re.compile(r"^\s*(\S+)\s+\S+%\s+\S+%\s+(\S+)\s+\S+%\s+(.+?)\s*$")
_TOTAL = re.compile(r"of (\S+) total")
_UNIT_SUFFIX = re.compile(r"(ns|B)$")
# -top marks functions whose callers inlined them; the mark is not part of the function's name.
_INLINE_MARK = re.compile(r" \((partial-)?inline\)$")


def capture_all(app: GoApp, folder: Path, cpu_seconds: int = 2) -> dict[str, Path]:
    """Put the app under CPU, memory and lock load, then fetch each profile type into `folder`."""
    app.load(cpu_seconds=cpu_seconds + 2, workers=2, mem_mib=48, hold=cpu_seconds + 4)
    paths = {}
    for kind in TYPES:
        data = app.pprof("profile", seconds=cpu_seconds) if kind == "cpu" else app.pprof(kind)
        paths[kind] = folder / f"{kind}.pprof"
        paths[kind].write_bytes(data)
    return paths


def _number(text: str) -> int:
    return int(float(_UNIT_SUFFIX.sub("", text)))


def pprof_top(path: Path, nodecount: int, sample_index: str | None = None) -> tuple[int, list[tuple[str, int, int]]]:
    """(total, [(name, flat, cum)]) as `go tool pprof -top -nodecount=N` prints them, with values
    in the base unit (-unit=ns for times, -unit=B for sizes) so they read back exactly."""
    args = ["-top", f"-nodecount={nodecount}"]
    if sample_index:
        args.append(f"-sample_index={sample_index}")
    unit = "B" if path.stem in ("heap", "allocs") else "ns"  # -unit touches only values of that kind
    args += [f"-unit={unit}", str(path)]
    # The first call may build the pprof tool into the cache (Go >= 1.24 ships it unbuilt).
    done = run_go_tool_pprof(*args, timeout=300)
    assert done.returncode == 0, done.stderr
    total_match = _TOTAL.search(done.stdout)
    assert total_match, done.stdout
    rows = []
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["flat", "flat%"])
    for line in lines[header + 1 :]:
        match = _ROW.match(line)
        assert match, f"unexpected -top line {line!r}"
        rows.append((_INLINE_MARK.sub("", match.group(3)), _number(match.group(1)), _number(match.group(2))))
    return _number(total_match.group(1)), rows


def kprof(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the installed `kprof` command."""
    return subprocess.run([KPROF, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def capture(app: GoApp, out: Path, *extra: str) -> Path:
    """`kprof capture` of cpu (1 s), heap and goroutine into `out`; the capture's folder."""
    done = kprof(
        "capture", "--url", app.url, "--types", "cpu,heap,goroutine", "--seconds", "1", "--out", str(out), *extra
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = {p.parent for p in out.rglob("*.pprof")}
    return folder


@dataclass(frozen=True)
class StoredCaptures:
    """Captures `kprof capture` stored in a directory (pod layout) from one sample app under CPU
    load: `workload` is the name kprof gives that app (namespace `local`)."""

    root: Path
    workload: str

    def copy(self, to: Path) -> Path:
        """A copy of the directory, for a test that changes it."""
        shutil.copytree(self.root, to)
        return to

    def upload(self, s3, bucket: str, prefix: str) -> list[str]:
        """Every profile and summary under `prefix/` in S3, keyed as in the directory; the keys
        of the CPU profiles."""
        client = s3.client()
        for path in sorted(self.root.rglob("*")):
            if path.name.endswith(".pprof") or path.name == "summary.json":
                key = f"{prefix}/{path.relative_to(self.root).as_posix()}"
                client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        return [f"{prefix}/{p.relative_to(self.root).as_posix()}" for p in sorted(self.root.rglob("cpu.pprof"))]


@pytest.fixture(scope="session")
def stored_captures(sample_app_binary, tmp_path_factory) -> StoredCaptures:
    """Two captures (cpu 1 s and heap) of one sample app under CPU load, made once per session."""
    root = tmp_path_factory.mktemp("stored-captures")
    with GoApp(sample_app_binary) as app:
        for _ in range(2):
            # Long enough to cover the command's start-up and its 1-second CPU profile on a busy machine.
            app.load(cpu_seconds=6, workers=2)
            done = kprof("capture", "--url", app.url, "--types", "cpu,heap", "--seconds", "1", "--out", str(root))
            assert done.returncode == 0, done.stdout + done.stderr
        return StoredCaptures(root, f"127.0.0.1-{app.port}")


def baseline_and_incident(app: GoApp, root: Path) -> tuple[Path, Path]:
    """Two captures of `app` (stopped afterwards): idle, then under CPU, memory and goroutine load."""
    with app:
        base = capture(app, root / "base")
        # Long enough to outlast kprof's start-up and the capture; stopping the app ends it.
        app.load(cpu_seconds=30, workers=6, mem_mib=48, hold=30)
        time.sleep(0.5)
        incident = capture(app, root / "incident")
    return base, incident
