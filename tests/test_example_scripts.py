"""The Python scripts under examples/scripts, run as a user would run them (a separate process): the
live check-mode plan against the real API server (through its front in tests/kube_emulator, which
reports the pod metrics the test chooses), and a one-shot capture from the real Go sample app,
directly and through the front's pods/portforward."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from kubernetes import client

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


def test_plan_live_plans_over_the_cluster_it_reads(kube_front, control_plane, kubeconfig_path, tmp_path):
    # threshold.yaml as it is, but selecting a namespace of this test's own instead of "shop".
    shop, elsewhere = control_plane.new_namespace("shop"), control_plane.new_namespace("elsewhere")
    config = yaml.safe_load((REPO / "examples/profilingconfigs/threshold.yaml").read_text())
    config["spec"]["selector"]["namespace"] = shop
    threshold = tmp_path / "threshold.yaml"
    threshold.write_text(yaml.safe_dump(config))
    labels = {"tier": "backend"}
    for name in ("hot", "calm"):
        control_plane.run_pod(shop, name, port=6060, labels=labels, annotations=OPTED_IN)
    control_plane.run_pod(elsewhere, "other", port=6060, labels=labels, annotations=OPTED_IN)
    # Requests are 100m CPU and 64Mi (run_pod's default): "hot" runs at 150% of its CPU requests.
    kube_front.set_pod_metrics(shop, "hot", {"app": {"cpu": "150m", "memory": "10Mi"}})
    kube_front.set_pod_metrics(shop, "calm", {"app": {"cpu": "5m", "memory": "10Mi"}})

    result = run_script("plan_live.py", "--kubeconfig", kubeconfig_path, "--config", threshold, "-o", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    actions = {f"{r['namespace']}/{r['pod']}": (r["action"], r["reason"]) for r in plan["results"]}
    # The config selects one namespace: the pod elsewhere is not even listed.
    assert actions == {f"{shop}/hot": ("capture", "cpu-threshold"), f"{shop}/calm": ("none", "below-threshold")}
    assert kube_front.count("GET", rf"/apis/metrics\.k8s\.io/v1beta1/namespaces/{shop}/pods$") == 1
    assert kube_front.count("GET", rf"/api/v1/namespaces/{shop}/pods$") == 1

    text = run_script("plan_live.py", "--kubeconfig", kubeconfig_path, "--config", threshold)
    assert text.returncode == 0, text.stderr
    assert f"{shop}/hot" in text.stdout and "cpu-threshold" in text.stdout


def test_plan_live_says_what_is_wrong_with_the_config(kubeconfig_path, tmp_path):
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


def test_capture_once_from_a_pod_through_port_forward(
    go_app, kube_front, control_plane, kube_namespace, kubeconfig_path, tmp_path
):
    annotations = {"profiling.io/enabled": "true", "profiling.io/port": str(go_app.port)}
    control_plane.run_pod(kube_namespace, "sample", port=go_app.port, annotations=annotations)
    out = tmp_path / "profiles"
    result = run_script(
        "capture_once.py",
        "--pod",
        f"{kube_namespace}/sample",
        "--kubeconfig",
        kubeconfig_path,
        "--config",
        write_config(tmp_path),
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert len(stored_profiles(out)) == 2
    assert kube_front.count("GET", rf"/api/v1/namespaces/{kube_namespace}/pods/sample/portforward") >= 1


def test_capture_once_reports_an_unreachable_pod(control_plane, kube_namespace, kubeconfig_path, tmp_path):
    pending = {"metadata": {"name": "pending", "annotations": OPTED_IN},
               "spec": {"containers": [{"name": "app", "image": "kprof/sample-app:test"}]}}
    client.CoreV1Api(control_plane.api()).create_namespaced_pod(kube_namespace, pending)
    result = run_script("capture_once.py", "--pod", f"{kube_namespace}/pending", "--kubeconfig", kubeconfig_path)
    assert result.returncode == 1
    assert "not running" in result.stderr
