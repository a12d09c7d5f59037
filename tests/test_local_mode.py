"""`kprof local` against the real Go sample app, measured from /proc by its pid while its CPU is
driven up through /load: the threshold capture happens, on-demand happens, cooldown holds, Ctrl-C
finishes the capture in progress and exits 0, and bad flags are refused with the flag's name.
Short check intervals come from the documented local-mode flag --check-interval."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
from pathlib import Path

import pytest

from kprof_lib.runtimes import cli
from tests.support.kprofproc import KprofProcesses

RECAP = re.compile(r"^\[\d\d:\d\d:\d\d\] check (\d+) ")
LANDED = re.compile(r"^  \+ (\S+)\s+([\d,]+) bytes  stored  (\S+)  \((\S+)\)$")


@pytest.fixture
def kprof():
    processes = KprofProcesses()
    yield processes
    processes.close()


def recaps(lines: list[str]) -> list[str]:
    return [line for line in lines if RECAP.match(line)]


def landed(lines: list[str]) -> list[tuple[str, int, Path, str]]:
    found = []
    for line in lines:
        match = LANDED.match(line)
        if match:
            found.append((match[1], int(match[2].replace(",", "")), Path(match[3]), match[4]))
    return found


def test_threshold_capture_on_demand_and_cooldown(go_app, kprof, tmp_path):
    out = tmp_path / "profiles"
    run = kprof(
        "local",
        "--target",
        go_app.url,
        "--pid",
        str(go_app.pid),
        "--cpu-threshold",
        "50",
        "--cpu-request",
        "100m",
        "--cooldown",
        "60",
        "--on-demand-interval",
        "30",
        "--check-interval",
        "1",
        "--types",
        "cpu,heap",
        "--cpu-seconds",
        "1",
        "--out",
        str(out),
    )
    # First check: on-demand is due at once (no history); the CPU window has only just opened.
    run.wait_for(lambda line: RECAP.match(line) and "capture: 1 (on-demand: 1)" in line)
    # The idle app stays below 50% of 100m.
    index, _ = run.wait_for(lambda line: RECAP.match(line) and "below-threshold" in line)

    go_app.load(cpu_seconds=60, workers=2)
    index, line = run.wait_for(lambda line: RECAP.match(line) and "cpu-threshold" in line, after=index)
    assert "capture: 1 (cpu-threshold: 1)" in line and "captured: 1" in line
    # Still loaded, but within the cooldown: checks go on and capture nothing.
    for _ in range(2):
        index, line = run.wait_for(lambda line: RECAP.match(line), after=index + 1)
        assert "none: 1 (cooldown: 1)" in line, line
        assert float(re.search(r"cpu\s+([\d.]+)%", line)[1]) >= 50
    run.send(signal.SIGINT)
    assert run.wait() == 0, run.output()
    assert run.stdout[-1].startswith("stopped after")

    profiles = landed(run.stdout)
    assert sorted((kind, reason) for kind, _, _, reason in profiles) == [
        ("cpu", "cpu-threshold"),
        ("cpu", "on-demand"),
        ("heap", "cpu-threshold"),
        ("heap", "on-demand"),
    ], run.output()
    assert sum("capture: 1" in line for line in recaps(run.stdout)) == 2
    for kind, size, path, reason in profiles:
        assert path.is_relative_to(out) and path.stat().st_size == size
        assert gzip.decompress(path.read_bytes()), kind
        metadata = json.loads(path.with_name(path.name + ".json").read_text())["metadata"]
        assert (metadata["namespace"], metadata["pod"], metadata["reason"], metadata["profile-type"]) == (
            "local",
            f"{Path(go_app.binary).name}-{go_app.pid}",
            reason,
            kind,
        )


def test_ctrl_c_finishes_the_capture_in_progress(go_app, kprof, tmp_path):
    run = kprof(
        "local",
        "--target",
        go_app.url,
        "--on-demand-interval",
        "30",
        "--types",
        "cpu",
        "--cpu-seconds",
        "4",
        "--out",
        str(tmp_path),
        "--console-spans",
        "--name",
        "checkout",
    )
    # The CPU profile's progress line: the capture is under way.
    run.wait_for(lambda line: line.startswith("  … cpu"))
    run.send(signal.SIGINT)
    assert run.wait() == 0, run.output()
    [(kind, size, path, reason)] = landed(run.stdout)
    assert (kind, reason) == ("cpu", "on-demand") and path.stat().st_size == size
    assert path.is_relative_to(tmp_path / "local" / "checkout")
    stopping = [line for line in run.stdout if line.startswith("stopping: ")]
    assert stopping and stopping[0].startswith("stopping: finishing cpu of local/checkout (about "), run.output()
    assert stopping[0].endswith("; Ctrl-C again to abort")
    assert run.stdout[-1] == "stopped after 1 check(s)"
    spans = [line.split()[1] for line in run.stdout if line.startswith("  span ")]
    # Each span after the line it belongs to: the profile's after it landed, the check's after the check.
    assert spans == ["kprof.capture", "kprof.upload", "kprof.metrics", "kprof.summary", "kprof.check"]


def test_duration_ends_the_run_by_itself(go_app, kprof, tmp_path):
    run = kprof(
        "local",
        "--target",
        go_app.url,
        "--pid",
        str(go_app.pid),
        "--memory-threshold",
        "1000",
        "--memory-request",
        "1Gi",
        "--check-interval",
        "1",
        "--duration",
        "3",
        "--out",
        str(tmp_path),
    )
    assert run.wait() == 0, run.output()
    lines = recaps(run.stdout)
    assert lines and all("below-threshold" in line for line in lines), run.output()
    assert not list(tmp_path.iterdir())


def test_a_process_that_exits_stops_the_run(go_app_factory, kprof, tmp_path):
    app = go_app_factory()
    run = kprof(
        "local",
        "--target",
        app.url,
        "--pid",
        str(app.pid),
        "--cpu-threshold",
        "90",
        "--check-interval",
        "1",
        "--out",
        str(tmp_path),
    )
    run.wait_for(lambda line: RECAP.match(line))
    app.stop()
    assert run.wait() == 1, run.output()
    assert any(f"process {app.pid} has exited; stopping" in line for line in run.stdout)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--check-interval", "0.5", "--on-demand-interval", "30"], "--check-interval: 0.5 is outside 1-86400 seconds"),
        (
            ["--cooldown", "10", "--cpu-threshold", "50", "--pid", "1"],
            "spec.thresholds.cooldownSeconds (--cooldown): 10 is less than the minimum of 60",
        ),
        (
            ["--on-demand-interval", "5"],
            "spec.onDemand.intervalSeconds (--on-demand-interval): 5 is less than the minimum of 30",
        ),
        (["--cpu-threshold", "50"], "thresholds need --pid"),
        ([], "nothing to capture"),
        (["--on-demand-interval", "30", "--cpu-request", "-1"], "--cpu-request: '-1' is not a valid quantity"),
        (["--on-demand-interval", "30", "--types", "heap,flame"], "spec.profileTypes[1] (--types)"),
        (["--on-demand-interval", "30", "--region", "eu-west-1"], "--s3-endpoint and --region go with --to"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(flags, message, capsys):
    assert cli.main(["local", "--target", "http://127.0.0.1:6060", *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_config_file_gives_the_rules_and_flags_override_it(go_app, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: profiling.io/v1alpha1\nkind: ProfilingConfig\nmetadata: {name: c}\n"
        "spec:\n  selector: {namespace: shop}\n  thresholds: {cpuThresholdPercent: 80, cooldownSeconds: 10}\n"
        "  profileTypes: [heap]\n"
    )
    base = ["local", "--target", go_app.url, "--pid", str(os.getpid()), "--config", str(config)]
    # The config's cooldown is invalid: exit 1 and the line `kprof validate` prints for it.
    assert cli.main(base) == 1
    validated = cli.main(["validate", str(config)])
    said = capsys.readouterr().err
    assert validated == 1
    line = f"{config} document 1 (c): spec.thresholds.cooldownSeconds: 10 is less than the minimum of 60"
    assert said.count(line) == 2, said
    config.write_text(config.read_text().replace("cooldownSeconds: 10", "cooldownSeconds: 60"))

    # Flags on top; the selector is ignored (the process is given), so the pod is measured, not
    # left out as namespace-mismatch. 1000% of one core is out of reach on this machine.
    assert (
        cli.main(
            [
                *base,
                "--cooldown",
                "120",
                "--cpu-threshold",
                "1000",
                "--check-interval",
                "1",
                "--duration",
                "2.5",
                "--out",
                str(tmp_path / "profiles"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "capture heap when cpu >= 1000% or memory >= 90% (cooldown 120s); check every 1s" in out
    lines = recaps(out.splitlines())
    assert lines and all("none: 1 (below-threshold: 1)" in line for line in lines), out
