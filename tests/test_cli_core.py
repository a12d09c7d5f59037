"""`kprof validate` and `kprof plan` on the examples and on bad files: output, recap, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kprof_lib.runtimes.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
STATE = EXAMPLES / "cluster-state.json"
THRESHOLD = EXAMPLES / "profilingconfigs" / "threshold.yaml"


def test_plan_prints_each_pod_and_a_recap(capsys):
    assert main(["plan", "--config", str(THRESHOLD), "--state", str(STATE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"plan for shop-threshold ({THRESHOLD})"
    assert out[1] == f"now 2026-11-25T10:00:00Z (the state's, {STATE})"
    assert out[2].split() == ["POD", "ACTION", "REASON", "CPU%", "MEM%", "DETAIL"]
    rows = {line.split()[0]: line.split()[1:3] for line in out[3:] if line.startswith(("shop/", "kube-system/"))}
    assert len(rows) == 10
    assert rows["shop/checkout-5d8f7c9b4-kx2lp"] == ["capture", "cpu-threshold"]
    assert rows["shop/checkout-5d8f7c9b4-q7wzn"] == ["none", "cooldown"]
    # The recap, wrapped to 100 columns.
    recap = " ".join(line.strip() for line in out[out.index("") + 1 :])
    assert recap == (
        "active pods: 6  capture: 2 (cpu-threshold: 1, memory-threshold: 1)  none: 8 (below-threshold: 1, cooldown: 1, "
        "invalid-annotation: 1, namespace-mismatch: 1, no-baseline: 1, no-metrics: 1, not-enabled: 1, not-running: 1)"
    )


def test_plan_json_is_the_plan(capsys):
    assert main(["plan", "--config", str(THRESHOLD), "--state", str(STATE), "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["summary"]["byAction"] == {"capture": 2, "none": 8}


def test_plan_with_an_invalid_config_names_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: profiling.io/v1alpha1\nkind: ProfilingConfig\nmetadata: {name: bad}\nspec:\n  thresholds: {cooldownSeconds: 5}\n"
    )
    assert main(["plan", "--config", str(bad), "--state", str(STATE)]) == 1
    err = capsys.readouterr().err
    assert "(bad): invalid ProfilingConfig spec: 1 problem" in err
    assert "spec.thresholds.cooldownSeconds: 5 is less than the minimum of 60" in err


def test_validate_names_file_document_and_path(tmp_path, capsys):
    bad = tmp_path / "configs.yaml"
    bad.write_text(
        THRESHOLD.read_text() + "---\napiVersion: profiling.io/v1alpha1\nkind: ProfilingConfig\n"
        "metadata: {name: typo}\nspec:\n  threshold: {}\n  profileTypes: [heap, bogus]\n"
    )
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad} document 1 (shop-threshold): valid" in captured.out
    assert captured.err.splitlines() == [
        f"{bad} document 2 (typo): spec.profileTypes[1]: 'bogus' is not one of "
        "['heap', 'cpu', 'goroutine', 'mutex', 'block', 'allocs', 'threadcreate']",
        f"{bad} document 2 (typo): spec.threshold: unknown field (allowed: baseline, cpuProfileSeconds, onDemand, pgo, profileTypes, "
        "s3Config, selector, thresholds, transport, triggers)",
        "1 of 2 document(s) invalid",
    ]


@pytest.mark.parametrize("content", ["a: [unclosed", ""])
def test_validate_unreadable_files_fail(tmp_path, capsys, content):
    bad = tmp_path / "broken.yaml"
    bad.write_text(content)
    assert main(["validate", str(bad), str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "missing.yaml") + ": cannot read" in err
    assert str(bad) in err


def test_the_console_script_is_installed():
    kprof = Path(sys.executable).parent / "kprof"
    result = subprocess.run(
        [str(kprof), "validate", *map(str, sorted((EXAMPLES / "profilingconfigs").glob("*.yaml")))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["validate", "plan", "capture", "crd", "sidecar", "local", "run"])
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: kprof {command}")
