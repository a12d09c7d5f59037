"""`make demo` end to end: scripts/demo builds and starts the sample app, runs `kprof local` on it,
drives load, and must show the per-check recap, the captures as they land, the spans, the profiles
on disk with their keys, and a working `go tool pprof` command; then leave no process behind. Its
output folder is the test's (KPROF_DEMO_OUT), so a developer's own demo output is left alone."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

from tests.support.goapp import REPO_ROOT
from tests.support.kprofproc import is_alive

DEMO_TIMEOUT_SECONDS = 240
JAEGER = REPO_ROOT / ".tools" / "bin" / "jaeger"


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_make_demo_runs_end_to_end_and_cleans_up(tmp_path):
    out = tmp_path / "demo"
    process = subprocess.Popen(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO_ROOT,
        env={**os.environ, "KPROF_DEMO_OUT": str(out)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a timeout can take all of it down
    )
    try:
        output, _ = process.communicate(timeout=DEMO_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"the demo did not end within {DEMO_TIMEOUT_SECONDS}s:\n{output}") from None
    assert process.returncode == 0, output

    # The app idle, then over the threshold: a capture, then the cooldown or calm again.
    recaps = re.findall(r"^\[\d\d:\d\d:\d\d\] check \d+ .*$", output, re.MULTILINE)
    assert any("below-threshold" in line for line in recaps), output
    assert sum("capture: 1 (cpu-threshold: 1)" in line for line in recaps) == 1, output
    # Each profile as it landed, and the same files listed with their keys at the end.
    landed = re.findall(r"^  \+ (\S+)\s+([\d,]+) bytes  stored  (\S+)  \(cpu-threshold\)$", output, re.MULTILINE)
    assert sorted(kind for kind, _, _ in landed) == ["cpu", "goroutine", "heap", "mutex"], output
    for _, size, path in landed:
        file = Path(path)
        assert file.is_relative_to(out / "profiles") and file.stat().st_size == int(size.replace(",", ""))
        key = file.relative_to(out / "profiles").as_posix()
        assert re.search(rf"^\s*{file.stat().st_size} bytes  {re.escape(key)}$", output, re.MULTILINE), key
    # The spans, one line each.
    for span in ("kprof.check", "kprof.metrics", "kprof.capture", "kprof.upload"):
        assert f"  span {span}" in output
    # The exact command to open the CPU profile, and what it shows.
    [cpu] = [Path(path) for kind, _, path in landed if kind == "cpu"]
    assert f"go tool pprof -top -cum {cpu}" in output
    assert re.search(r"^\s+flat\s+flat%\s+sum%\s+cum\s+cum%$", output, re.MULTILINE), output
    assert "main.burnCPU" in output

    # With Jaeger built (scripts/build-tools, as make test does), the capture's trace: its id is
    # the one in the CPU profile's metadata, with the API and UI links.
    if JAEGER.exists():
        [(trace, api, ui)] = re.findall(
            r"^trace ([0-9a-f]{32})\n  API: (http://127\.0\.0\.1:\d+/api/traces/\S+)\n  UI:  (\S+)$", output, re.MULTILINE
        )
        assert json.loads(Path(str(cpu) + ".json").read_text())["metadata"]["trace-id"] == trace
        assert api.endswith("/api/traces/" + trace) and ui == api.replace("/api/traces/", "/trace/")
        assert processes_mentioning(str(out / "jaeger.yaml")) == []
    # Nothing left running: the app (by its pid and its binary), kprof (by its output folder).
    [app_pid] = [int(pid) for pid in re.findall(r"^sample app: pid (\d+),", output, re.MULTILINE)]
    assert not is_alive(app_pid)
    assert processes_mentioning(str(REPO_ROOT / ".cache" / "demo" / "sample-app")) == []
    assert processes_mentioning(str(out)) == []
    assert "no demo process left running" in output

    # It ends with next steps, and the commands it gives for the profile work as printed.
    steps = output[output.index("== next steps") :]
    assert "docs/GO_PPROF.md" in steps and "docs/QUICKSTART.md" in steps
    assert f"go tool pprof -http=127.0.0.1:8081 {cpu}" in steps
    [show] = re.findall(r"^  (\.venv/bin/kprof show \S+ --type cpu)", steps, re.MULTILINE)
    shown = subprocess.run(show.split(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"^cpu \(cpu, total .*, cpu\.pprof\)$", shown.stdout, re.MULTILINE), shown.stdout
    assert (REPO_ROOT / "docs" / "GO_PPROF.md").is_file()
