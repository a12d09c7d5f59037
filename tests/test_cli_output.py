"""What a person sees from `kprof capture`, `kprof local` and `kprof plan`, by running the real
commands against the real Go sample app: on a terminal (a pty) a live line while each profile is
fetched (a countdown and bar for a CPU profile) and never more than ~2 s of silence; plain lines
when the output is a pipe; each profile as it lands; one line per failure; spans after the line
they belong to; defaults in --help; errors that name the flag."""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

KPROF = str(Path(sys.executable).parent / "kprof")
REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, list[tuple[float, str]]]:
    """Runs kprof with its stdout and stderr on a pty; returns its exit code and what it wrote, as
    (seconds since start, text) chunks in the order they arrived."""
    master, slave = pty.openpty()
    started = time.monotonic()
    process = subprocess.Popen([KPROF, *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, close_fds=True)
    os.close(slave)
    chunks: list[tuple[float, str]] = []
    try:
        while time.monotonic() - started < timeout:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic() - started, data.decode(errors="replace")))
    finally:
        os.close(master)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return code, chunks


def lines_of(chunks: list[tuple[float, str]]) -> list[str]:
    """The finished lines as a person would read them (live status lines, which end in \\r, left out)."""
    text = "".join(text for _, text in chunks).replace("\r\n", "\n")
    lines = []
    for raw in text.split("\n"):
        shown = ANSI.sub("", raw.split("\r")[-1])  # what is left once the live line is cleared
        if shown.strip():
            lines.append(shown)
    return lines


def kprof(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KPROF, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_capture_on_a_terminal_counts_the_cpu_profile_down_and_shows_each_profile_as_it_lands(go_app, tmp_path):
    code, chunks = run_on_a_terminal(
        ["capture", "--url", go_app.url, "--types", "heap,cpu", "--seconds", "5", "--out", str(tmp_path)], tmp_path
    )
    text = "".join(t for _, t in chunks)
    assert code == 0, text
    # A bar that fills while the 5 s CPU profile runs, its seconds counting up and down.
    bars = re.findall(r"… cpu +\[([#.]+)\] (\d)s of 5s, (\d)s left", ANSI.sub("", text))
    assert len(bars) >= 5, text
    assert [int(done) for _, done, _ in bars] == sorted(int(done) for _, done, _ in bars)
    assert int(bars[-1][1]) >= 4 and int(bars[0][2]) >= 4 and bars[-1][0].count("#") > bars[0][0].count("#")
    # Nothing silent for more than ~2 s, from the first output to the last.
    times = [at for at, _ in chunks]
    assert max(b - a for a, b in itertools.pairwise(times)) < 2.0, times
    # The heap profile landed before the CPU profile started, the CPU profile after its bar.
    lines = lines_of(chunks)
    landed = [line for line in lines if line.startswith("  + ")]
    assert [line.split()[1] for line in landed] == ["heap", "cpu"], lines
    first_bar = next(i for i, (_, t) in enumerate(chunks) if "… cpu" in t)
    heap_at = next(i for i, (_, t) in enumerate(chunks) if "+ heap" in t)
    cpu_at = next(i for i, (_, t) in enumerate(chunks) if "+ cpu" in t)
    assert heap_at <= first_bar < cpu_at
    for line in landed:
        path = Path(line.split("  stored  ")[1].split("  (")[0])
        assert path.is_file() and path.is_relative_to(tmp_path)
    assert lines[-1] == "captured: 1  profiles: 2 stored"


def test_capture_into_a_pipe_prints_plain_lines(go_app, tmp_path):
    result = kprof("capture", "--url", go_app.url, "--types", "cpu,goroutine", "--seconds", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    assert result.stdout.splitlines()[0] == "  … cpu          capturing for 3s"
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("  + ")] == ["cpu", "goroutine"]
    assert result.stderr == ""


def test_local_on_a_terminal_counts_the_cpu_profile_down(go_app, tmp_path):
    code, chunks = run_on_a_terminal(
        [
            "local",
            "--target",
            go_app.url,
            "--on-demand-interval",
            "30",
            "--types",
            "cpu",
            "--cpu-seconds",
            "4",
            "--check-interval",
            "1",
            "--duration",
            "3",
            "--out",
            str(tmp_path),
        ],
        tmp_path,
    )
    text = ANSI.sub("", "".join(t for _, t in chunks))
    assert code == 0, text
    assert len(re.findall(r"… cpu +\[[#.]+\] \ds of 4s", text)) >= 4, text
    times = [at for at, _ in chunks]
    assert max(b - a for a, b in itertools.pairwise(times)) < 2.0, times
    assert any(line.startswith("  + cpu ") for line in lines_of(chunks))


def test_each_failure_is_one_line_on_stdout_and_nothing_on_stderr(go_app, tmp_path):
    # The target answers (the start-up check passes), but every profile is over a 64-byte cap.
    result = kprof(
        "local",
        "--target",
        go_app.url,
        "--on-demand-interval",
        "30",
        "--check-interval",
        "1",
        "--types",
        "heap,goroutine",
        "--max-profile-bytes",
        "64",
        "--duration",
        "2.5",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 1
    checks = re.findall(r"^\[\d\d:\d\d:\d\d\] check \d+ ", result.stdout, re.MULTILINE)
    failures = [line for line in result.stdout.splitlines() if "FAILED" in line]
    # One line per failed profile, at the attempt only: the later checks hold back (backoff).
    assert len(checks) >= 2 and [line.split()[1] for line in failures] == ["heap", "goroutine"], result.stdout
    assert all("FAILED  profile exceeded 64 bytes cap: " in line for line in failures)
    assert result.stderr == ""

    result = kprof(
        "capture", "--url", go_app.url, "--types", "heap,goroutine", "--max-bytes", "64", "--out", str(tmp_path)
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines[:2]] == [["!", "heap", "FAILED"], ["!", "goroutine", "FAILED"]]
    assert lines[2:] == ["failed: 1  profiles: 2 failed"]
    assert result.stderr == ""


def test_capture_is_traced_into_otlp_and_the_console_with_the_trace_id_in_the_metadata(go_app, tmp_path, otlp_receiver):
    result = kprof(
        "capture",
        "--url",
        go_app.url,
        "--types",
        "heap,goroutine",
        "--out",
        str(tmp_path),
        "--console-spans",
        env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_receiver.traces_url, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    assert result.returncode == 0, result.stderr
    [root] = otlp_receiver.wait_for(lambda span: span.name == "kprof.oneshot")
    spans = otlp_receiver.wait_for(lambda span: span.trace_id == root.trace_id, count=6)
    assert sorted(span.name for span in spans) == [
        "kprof.capture",
        "kprof.capture",
        "kprof.oneshot",
        "kprof.summary",
        "kprof.upload",
        "kprof.upload",
    ]
    for meta in tmp_path.rglob("*.pprof.json"):
        assert json.loads(meta.read_text())["metadata"]["trace-id"] == root.trace_id
    # On the console: each profile's spans right after the line that says it landed; the summary's
    # and the root span after the recap.
    lines = result.stdout.splitlines()
    for kind in ("heap", "goroutine"):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  + {kind} "))
        assert lines[at + 1].startswith("  span kprof.capture") and f"profile.type={kind}" in lines[at + 1]
        assert lines[at + 2].startswith("  span kprof.upload") and f"profile.type={kind}" in lines[at + 2]
    assert lines[-3] == "captured: 1  profiles: 2 stored"
    assert lines[-2].startswith("  span kprof.summary") and f"trace={root.trace_id}" in lines[-2]
    assert lines[-1].startswith("  span kprof.oneshot") and f"trace={root.trace_id}" in lines[-1]


def test_local_console_spans_follow_the_lines_they_belong_to(go_app, tmp_path):
    result = kprof(
        "local",
        "--target",
        go_app.url,
        "--on-demand-interval",
        "30",
        "--types",
        "heap",
        "--check-interval",
        "1",
        "--duration",
        "1.5",
        "--out",
        str(tmp_path),
        "--console-spans",
    )
    lines = result.stdout.splitlines()
    landed = next(i for i, line in enumerate(lines) if line.startswith("  + heap "))
    assert lines[landed + 1].startswith("  span kprof.capture") and lines[landed + 2].startswith("  span kprof.upload")
    check = next(i for i, line in enumerate(lines) if re.match(r"\[\d\d:\d\d:\d\d\] check 1 ", line))
    assert lines[landed + 3].startswith("  = summary and page stored"), lines
    assert check == landed + 4, lines
    assert [line.split()[1] for line in lines[check + 1 : check + 4]] == ["kprof.metrics", "kprof.summary", "kprof.check"]


def test_plan_names_its_config_and_now_and_fits_100_columns():
    result = kprof(
        "plan",
        "--config",
        "examples/profilingconfigs/threshold.yaml",
        "--state",
        "examples/cluster-state.json",
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "plan for shop-threshold (examples/profilingconfigs/threshold.yaml)"
    assert lines[1] == "now 2026-11-25T10:00:00Z (the state's, examples/cluster-state.json)"
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    # The details that do not fit beside their row are on the line below it, whole.
    at = next(i for i, line in enumerate(lines) if line.startswith("shop/checkout-5d8f7c9b4-kx2lp "))
    assert lines[at + 1] == "    cpu,heap,goroutine from http://10.244.1.21:6060/debug/pprof"
    assert "not-running: 1)" in result.stdout


def test_plan_gives_the_numbers_behind_each_trigger():
    result = kprof(
        "plan",
        "--config",
        "examples/profilingconfigs/triggers.yaml",
        "--state",
        "examples/cluster-state-triggers.json",
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    at = next(i for i, line in enumerate(lines) if line.startswith("shop/ledger-59b8c7d6f-w9p4j "))
    assert lines[at].split() == ["shop/ledger-59b8c7d6f-w9p4j", "capture", "oom-risk", "42.0", "142.0"]
    assert lines[at + 1] == (
        "    memory 71% of limit, rising 4.2%/min, limit reached in ~7 min; heap,cpu,goroutine from"
    )
    assert lines[at + 2] == "    http://10.244.3.10:6060/debug/pprof"


def test_help_shows_the_defaults():
    capture = kprof("capture", "--help", env={"COLUMNS": "200"}).stdout
    assert re.search(r"--types TYPES\s+[^\n]*\(default: heap,cpu,goroutine\)", capture)
    assert re.search(r"--seconds SECONDS\s+[^\n]*\(default: 30\)", capture)
    local = kprof("local", "--help", env={"COLUMNS": "200"}).stdout
    assert re.search(r"--types TYPES\s+[^\n]*else heap,cpu,goroutine,mutex\)", local)
    assert re.search(r"--cpu-seconds SECONDS\s+[^\n]*else 30\)", local)
    assert re.search(r"--cpu-threshold PERCENT\s+[^\n]*default with thresholds on: 80\)", local)


def test_capture_flag_errors_talk_about_the_flags(tmp_path):
    result = kprof("capture", "--url", "http://127.0.0.1:1", "--seconds", "0", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == "kprof capture: --seconds: 0 is less than the minimum of 1\n"
    result = kprof("capture", "--url", "ftp://host/", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("kprof capture: --url: 'ftp://host/' is not an http(s) URL")
    assert "ProfilingConfig" not in result.stderr


def test_a_cpu_threshold_alone_says_it_also_captures_at_the_default_memory_threshold(go_app, tmp_path):
    result = kprof(
        "local",
        "--target",
        go_app.url,
        "--pid",
        str(go_app.pid),
        "--cpu-threshold",
        "25",
        "--check-interval",
        "1",
        "--duration",
        "1",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "cpu >= 25% or memory >= 90%" in result.stdout
    assert (
        "  note: memory threshold 90% is the default (not given by --memory-threshold or the config); "
        "set --memory-threshold to change it"
    ) in result.stdout.splitlines()
    both = kprof(
        "local",
        "--target",
        go_app.url,
        "--pid",
        str(go_app.pid),
        "--cpu-threshold",
        "25",
        "--memory-threshold",
        "95",
        "--check-interval",
        "1",
        "--duration",
        "1",
        "--out",
        str(tmp_path),
    )
    assert "note:" not in both.stdout


def test_console_spans_from_the_environment_are_json_or_one_line_each(go_app, tmp_path):
    args = (
        "local",
        "--target",
        go_app.url,
        "--on-demand-interval",
        "30",
        "--types",
        "heap",
        "--check-interval",
        "1",
        "--duration",
        "1",
        "--out",
        str(tmp_path),
    )
    as_json = kprof(*args, env={"OTEL_TRACES_EXPORTER": "console"})
    assert as_json.returncode == 0 and '"name": "kprof.check"' in as_json.stderr, as_json.stderr
    compact = kprof(*args, env={"OTEL_TRACES_EXPORTER": "console", "KPROF_CONSOLE_SPANS": "compact"})
    assert compact.returncode == 0
    span_lines = [line for line in compact.stderr.splitlines() if line.strip()]
    assert span_lines and all(line.startswith("  span kprof.") for line in span_lines), compact.stderr
    assert {line.split()[1] for line in span_lines} == {
        "kprof.check",
        "kprof.metrics",
        "kprof.capture",
        "kprof.upload",
        "kprof.summary",
    }
