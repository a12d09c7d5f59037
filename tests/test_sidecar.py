"""`kprof sidecar` as a real process beside the real Go sample app, as in a pod with a shared process
namespace: the pod's identity and resources come from KPROF_* variables, its labels and annotations
from a downwardAPI-style folder, the app's usage from /proc of the Go process (found by a regular
expression on its command line) while /load drives its CPU up. The threshold capture happens,
on-demand happens, cooldown holds and survives a restart (history on the spool folder), /healthz
answers, and SIGTERM finishes the capture in progress and exits 0. Then the downward API readers
and the spec source on their own."""

from __future__ import annotations

import gzip
import json
import logging
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from kprof_lib import reconcile
from kprof_lib.adapters import podinfo
from kprof_lib.runtimes import sidecar
from kprof_lib.spec.errors import SpecError
from tests.support.goapp import GoApp
from tests.support.kprofproc import KprofProcesses
from tests.support.net import free_port

POD = "checkout-5d8f7c9b4-kx2lp"
NAMESPACE = "shop"


@pytest.fixture
def kprof():
    processes = KprofProcesses()
    yield processes
    processes.close()


@pytest.fixture
def app(sample_app_binary, tmp_path):
    """The sample app started under a name no other process on this machine has, so that
    --app-process finds this one."""
    name = f"checkout-{uuid.uuid4().hex[:8]}"
    link = tmp_path / name
    link.symlink_to(sample_app_binary)
    with GoApp(link) as running:
        running.process_name = name
        yield running


def go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def podinfo_dir(tmp_path: Path, port: int, **extra_annotations: str) -> Path:
    folder = tmp_path / "podinfo"
    folder.mkdir(exist_ok=True)
    labels = {"app.kubernetes.io/name": "checkout", "tier": "backend", "pod-template-hash": "5d8f7c9b4"}
    annotations = {
        "profiling.io/enabled": "true",
        "profiling.io/port": str(port),
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Pod",\n"x":"\\u00e9"}',
        **extra_annotations,
    }
    (folder / "labels").write_text("".join(f"{k}={go_quote(v)}\n" for k, v in labels.items()))
    (folder / "annotations").write_text("".join(f"{k}={go_quote(v)}\n" for k, v in annotations.items()))
    return folder


def sidecar_env(tmp_path: Path, folder: Path, spec: dict) -> dict[str, str]:
    return {
        "KPROF_POD_NAME": POD,
        "KPROF_POD_NAMESPACE": NAMESPACE,
        "KPROF_POD_IP": "10.244.1.17",
        "KPROF_POD_UID": "9d8c7b6a-0000-4000-8000-123456789abc",
        "KPROF_APP_CONTAINER": "checkout",
        "KPROF_APP_CPU_REQUEST": "100",  # millicores
        "KPROF_APP_CPU_LIMIT": "1000",
        "KPROF_APP_MEMORY_REQUEST": str(256 * 1024 * 1024),
        "KPROF_APP_MEMORY_LIMIT": str(512 * 1024 * 1024),
        "KPROF_CONFIG": json.dumps(spec),
        "KPROF_PODINFO_DIR": str(folder),
        "KPROF_SPOOL_DIR": str(tmp_path / "var" / "spool"),
        "KPROF_LOCAL_DIR": str(tmp_path / "var" / "profiles"),
    }


def check_logs(run) -> list[dict]:
    return [r for r in run.json_logs() if r.get("logger") == "kprof.sidecar" and r["msg"].startswith("check: ")]


def wait_for_check(run, reason: str, after: int = 0, timeout: float = 60) -> tuple[int, dict]:
    index, line = run.wait_for(
        lambda text: '"check: ' in text and f'"reason": "{reason}"' in text,
        stream="stderr",
        after=after,
        timeout=timeout,
    )
    return index, json.loads(line)


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


THRESHOLD_SPEC = {
    "thresholds": {
        "cpuThresholdPercent": 50,
        "memoryThresholdPercent": 90,
        "checkIntervalSeconds": 10,
        "cooldownSeconds": 60,
    },
    "profileTypes": ["cpu", "heap"],
    "cpuProfileSeconds": 1,
}


def test_on_demand_threshold_and_cooldown_survive_a_restart(app, kprof, tmp_path):
    spec = {**THRESHOLD_SPEC, "onDemand": {"enabled": True, "intervalSeconds": 30}}
    env = sidecar_env(tmp_path, podinfo_dir(tmp_path, app.port), spec)
    health = free_port()
    app.load(cpu_seconds=120, workers=1)
    run = kprof("sidecar", "--app-process", app.process_name, "--health-addr", f"127.0.0.1:{health}", env=env)

    # At start on-demand is due (no history); the CPU window has only just opened.
    index, first = wait_for_check(run, "on-demand")
    assert first["pod"] == f"{NAMESPACE}/{POD}" and "cpuPercent" not in first
    assert get(f"http://127.0.0.1:{health}/healthz") == (200, "ok\n")
    assert get(f"http://127.0.0.1:{health}/readyz")[0] == 200
    # One check interval later, the rate over it: 1 worker is far above 50% of 100m.
    index, threshold = wait_for_check(run, "cpu-threshold", after=index)
    assert threshold["cpuPercent"] >= 50
    assert 0 < threshold["memoryPercent"] < 100  # RSS of the Go process against 256 MiB
    index, held = wait_for_check(run, "cooldown", after=index)
    assert held["cpuPercent"] >= 50 and not held.get("profiles")
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.output()

    measured = [r for r in run.json_logs() if r.get("action") == "measure"]
    assert measured and measured[0]["pid"] == app.pid
    captures = [r for r in check_logs(run) if r.get("profiles")]
    assert [(r["reason"], [p["type"] for p in r["profiles"]]) for r in captures] == [
        ("on-demand", ["cpu", "heap"]),
        ("cpu-threshold", ["cpu", "heap"]),
    ]
    for record in captures:
        for profile in record["profiles"]:
            path = Path(urllib.request.url2pathname(profile["uri"].removeprefix("file://")))
            assert path.is_relative_to(tmp_path / "var" / "profiles" / NAMESPACE / POD)
            assert gzip.decompress(path.read_bytes()) and path.stat().st_size == profile["bytes"]
            stored = json.loads(path.with_name(path.name + ".json").read_text())
            assert stored["metadata"]["reason"] == record["reason"]
            assert stored["metadata"]["service"] == "checkout"
            assert stored["tags"]["tier"] == "backend"
    history = json.loads((tmp_path / "var" / "spool" / sidecar.HISTORY_FILE).read_text())
    entry = history[f"{NAMESPACE}/{POD}"]
    # The on-demand capture, taken below the thresholds, is the workload's healthy baseline.
    assert set(entry) == {"lastOnDemandCapture", "lastThresholdCapture", "healthyCapture", "lastHealthyCapture", "workload"}
    assert entry["workload"] == "checkout" and json.loads(entry["healthyCapture"])["keys"].keys() == {"cpu", "heap"}

    # A restarted sidecar (same emptyDir) keeps the cooldown: the first threshold check holds back.
    env["KPROF_CONFIG"] = json.dumps(THRESHOLD_SPEC)
    again = kprof("sidecar", "--app-process", app.process_name, "--health-addr", "127.0.0.1:0", env=env)
    _, record = wait_for_check(again, "cooldown")
    again.send(signal.SIGTERM)
    assert again.wait() == 0, again.output()
    assert [r["reason"] for r in check_logs(again)] == ["cooldown"]


def test_sigterm_finishes_the_capture_in_progress(app, kprof, tmp_path):
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 30}, "profileTypes": ["cpu"], "cpuProfileSeconds": 4}
    env = sidecar_env(tmp_path, podinfo_dir(tmp_path, app.port), spec)
    run = kprof("sidecar", "--app-process", app.process_name, "--health-addr", "127.0.0.1:0", env=env)
    # check.py logs the decision just before the executor starts capturing; a moment later the CPU
    # profile is in flight.
    run.wait_for(lambda line: "capture (on-demand)" in line, stream="stderr")
    time.sleep(1.0)
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.output()
    [stopping] = [r["msg"] for r in run.json_logs() if r["msg"].startswith("SIGTERM received")]
    assert stopping.startswith("SIGTERM received: no new capture; finishing cpu of "), stopping
    assert stopping.endswith("(cut after the grace period of 25 s)"), stopping
    [record] = check_logs(run)
    [profile] = record["profiles"]
    assert profile["status"] == "stored" and profile["type"] == "cpu"
    assert Path(urllib.request.url2pathname(profile["uri"].removeprefix("file://"))).stat().st_size == profile["bytes"]
    assert run.json_logs()[-1]["msg"] == "stopped"


def test_an_explicit_annotation_can_switch_the_sidecar_off(app, kprof, tmp_path):
    folder = podinfo_dir(tmp_path, app.port, **{"profiling.io/enabled": "false"})
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 30}, "profileTypes": ["heap"]}
    run = kprof(
        "sidecar",
        "--app-process",
        app.process_name,
        "--health-addr",
        "127.0.0.1:0",
        env=sidecar_env(tmp_path, folder, spec),
    )
    wait_for_check(run, "not-enabled")
    run.send(signal.SIGTERM)
    assert run.wait() == 0
    # The start-up check made the folder (and removed its probe file); nothing was captured into it.
    assert list((tmp_path / "var" / "profiles").rglob("*")) == []


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"KPROF_POD_NAME": ""}, 2, "KPROF_POD_NAME must be set"),
        ({"KPROF_APP_CPU_REQUEST": "0.25"}, 2, "KPROF_APP_CPU_REQUEST='0.25': expected a whole number"),
        ({"KPROF_CONFIG": '{"thresholds": {"cooldownSeconds": 5}}'}, 1, "spec.thresholds.cooldownSeconds"),
    ],
)
def test_bad_settings_stop_the_sidecar_at_once(kprof, tmp_path, change, code, message):
    env = {**sidecar_env(tmp_path, podinfo_dir(tmp_path, 6060), THRESHOLD_SPEC), **change}
    run = kprof("sidecar", "--health-addr", "127.0.0.1:0", env=env)
    assert run.wait() == code
    assert message in run.output()


# The downward API readers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quoted", "value"),
    [
        (r"plain", "plain"),
        (r"a \"quoted\" word", 'a "quoted" word'),
        (r"two\nlines\tand\\slash", "two\nlines\tand\\slash"),
        (r"caf\u00e9 \U0001F600", "café 😀"),
        (r"\xc3\xa9 and \303\251", "é and é"),  # bytes of UTF-8, as strconv.Quote writes them
        (r"\xff", "\ufffd"),
    ],
)
def test_go_quoted_values(quoted, value):
    assert podinfo.unquote_go(quoted) == value


def test_downward_file_lines():
    text = 'app.kubernetes.io/name="checkout"\nprofiling.io/port="6060"\nnote="a=b \\"c\\""\n\n'
    assert podinfo.parse_downward_file(text) == {
        "app.kubernetes.io/name": "checkout",
        "profiling.io/port": "6060",
        "note": 'a=b "c"',
    }
    with pytest.raises(podinfo.PodInfoError, match="line 1"):
        podinfo.parse_downward_file("no-quotes=value\n")
    with pytest.raises(podinfo.PodInfoError, match=r"unknown escape \\q"):
        podinfo.parse_downward_file('k="\\q"\n')


def test_requests_of_zero_are_left_out_so_the_limit_is_the_baseline():
    resources = podinfo.Resources(cpu_request_millis=0, cpu_limit_millis=500, memory_request_bytes=134217728)
    assert resources.to_container_resources() == {"requests": {"memory": "134217728"}, "limits": {"cpu": "500m"}}


def test_the_one_pod_state_reconciles_like_a_cluster_pod():
    identity = podinfo.identity_from_env(
        {
            "KPROF_POD_NAME": POD,
            "KPROF_POD_NAMESPACE": NAMESPACE,
            "KPROF_APP_CPU_REQUEST": "250",
            "KPROF_APP_MEMORY_LIMIT": str(128 * 1024 * 1024),
        },
        app_container="checkout",
    )
    pod = podinfo.pod_document(
        identity, labels={"app": "checkout"}, annotations={"profiling.io/enabled": "true"}, address="127.0.0.1"
    )
    metrics = podinfo.pod_metrics(
        identity, cpu_cores=0.2, memory_bytes=64 * 1024 * 1024, timestamp="2026-11-25T10:00:00Z", window_seconds=10.0
    )
    assert metrics["containers"] == [{"name": "checkout", "usage": {"cpu": "200000000n", "memory": "65536Ki"}}]
    spec = {"thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 90}}
    plan = reconcile(spec, {"now": "2026-11-25T10:00:05Z", "pods": [pod], "podMetrics": [metrics]})
    [result] = plan.to_dict()["results"]
    assert (result["action"], result["reason"]) == ("capture", "cpu-threshold")
    assert result["observed"] == {"cpuPercent": 80.0, "memoryPercent": 50.0}
    assert (result["podIP"], result["endpoint"]["port"]) == ("127.0.0.1", 6060)


def test_the_spec_file_is_read_again_and_a_broken_edit_keeps_the_last_good_spec(tmp_path, caplog):
    path = tmp_path / "config.yaml"
    path.write_text(
        "apiVersion: profiling.io/v1alpha1\nkind: ProfilingConfig\n"
        "metadata: {name: checkout, namespace: shop}\nspec:\n  profileTypes: [heap]\n"
        "  onDemand: {enabled: true}\n"
    )
    source = sidecar.SpecSource(path=path)
    assert source.load()["profileTypes"] == ["heap"] and source.name == "shop/checkout"
    path.write_text("profileTypes: [heap, nonsense]\n")
    with caplog.at_level(logging.ERROR, logger="kprof.sidecar"):
        assert source.load()["profileTypes"] == ["heap"]
    assert [r.reason for r in caplog.records] == ["InvalidConfig"]
    path.write_text("profileTypes: [cpu]\nonDemand: {enabled: true}\n")
    assert source.load()["profileTypes"] == ["cpu"]

    broken = sidecar.SpecSource(text="thresholds: {cooldownSeconds: 1}")
    with pytest.raises(SpecError, match="cooldownSeconds"):
        broken.load()
