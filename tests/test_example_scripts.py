"""The Python scripts under examples/scripts, run as a user would run them (a separate process): the
live check-mode plan against the Kubernetes API emulator, and a one-shot capture from the real Go
sample app, directly and through the emulator's pods/portforward."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.kube_emulator.objects import make_pod

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "examples/scripts"
OPTED_IN = {"profiling.io/enabled": "true", "profiling.io/port": "6060"}


def run_script(name: str, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        # No KUBECONFIG from the outside: the scripts get --kubeconfig or need none.
        env={**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, "PYTHONPATH": str(REPO)},
    )


def test_plan_live_plans_over_the_cluster_it_reads(kube_emulator, kubeconfig_path, tmp_path):
    labels = {"tier": "backend"}
    for name in ("hot", "calm"):
        kube_emulator.create(make_pod(name, namespace="shop", labels=labels, annotations=OPTED_IN))
    kube_emulator.create(make_pod("other", namespace="elsewhere", labels=labels, annotations=OPTED_IN))
    # Requests are 100m CPU and 64Mi (make_pod's default): "hot" runs at 150% of its CPU requests.
    kube_emulator.set_pod_metrics("shop", "hot", [{"name": "app", "usage": {"cpu": "150m", "memory": "10Mi"}}])
    kube_emulator.set_pod_metrics("shop", "calm", [{"name": "app", "usage": {"cpu": "5m", "memory": "10Mi"}}])

    result = run_script(
        "plan_live.py",
        "--kubeconfig",
        kubeconfig_path,
        "--config",
        REPO / "examples/profilingconfigs/threshold.yaml",
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    actions = {f"{r['namespace']}/{r['pod']}": (r["action"], r["reason"]) for r in plan["results"]}
    # threshold.yaml selects namespace shop: the pod elsewhere is not even listed.
    assert actions == {"shop/hot": ("capture", "cpu-threshold"), "shop/calm": ("none", "below-threshold")}
    assert kube_emulator.count("GET", r"/apis/metrics\.k8s\.io/v1beta1/namespaces/shop/pods$") == 1
    assert kube_emulator.count("GET", r"/api/v1/namespaces/shop/pods$") == 1

    text = run_script(
        "plan_live.py", "--kubeconfig", kubeconfig_path, "--config", REPO / "examples/profilingconfigs/threshold.yaml"
    )
    assert text.returncode == 0, text.stderr
    assert "shop/hot" in text.stdout and "cpu-threshold" in text.stdout


def test_plan_live_says_what_is_wrong_with_the_config(kube_emulator, kubeconfig_path, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"spec": {"thresholds": {"cooldownSeconds": 1}}}))
    result = run_script("plan_live.py", "--kubeconfig", kubeconfig_path, "--config", bad)
    assert result.returncode == 1
    assert "spec.thresholds.cooldownSeconds" in result.stderr


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "profiling.io/v1alpha1",
                "kind": "ProfilingConfig",
                "metadata": {"name": "once"},
                "spec": {"thresholds": {"cpuThresholdPercent": 50}, "profileTypes": ["heap", "goroutine"]},
            }
        )
    )
    return config


def stored_profiles(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and not p.name.endswith(".json"))


def test_capture_once_from_an_address(go_app, tmp_path):
    out = tmp_path / "profiles"
    result = run_script("capture_once.py", "--url", go_app.url, "--config", write_config(tmp_path), "--out", out)
    assert result.returncode == 0, result.stderr + result.stdout
    profiles = stored_profiles(out)
    assert len(profiles) == 2, profiles
    for profile in profiles:
        # pprof's protobuf, gzipped: the bytes of the real endpoint, not a placeholder.
        assert gzip.decompress(profile.read_bytes())
    assert "heap:" in result.stdout and "goroutine:" in result.stdout


def test_capture_once_from_a_pod_through_port_forward(go_app, kube_emulator, kubeconfig_path, tmp_path):
    annotations = {"profiling.io/enabled": "true", "profiling.io/port": str(go_app.port)}
    kube_emulator.create(make_pod("sample", namespace="demo", annotations=annotations, pod_ip="127.0.0.1"))
    out = tmp_path / "profiles"
    result = run_script(
        "capture_once.py",
        "--pod",
        "demo/sample",
        "--kubeconfig",
        kubeconfig_path,
        "--config",
        write_config(tmp_path),
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert len(stored_profiles(out)) == 2
    assert kube_emulator.count("GET", r"/api/v1/namespaces/demo/pods/sample/portforward") >= 1


def test_capture_once_reports_an_unreachable_pod(kube_emulator, kubeconfig_path, tmp_path):
    kube_emulator.create(make_pod("pending", namespace="demo", annotations=OPTED_IN, phase="Pending", pod_ip=None))
    result = run_script("capture_once.py", "--pod", "demo/pending", "--kubeconfig", kubeconfig_path)
    assert result.returncode == 1
    assert "not running" in result.stderr
