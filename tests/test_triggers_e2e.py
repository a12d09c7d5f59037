"""The capture triggers of spec.triggers end to end, with the real Go sample app leaking: its memory
climbs at a steady 2 MiB/s toward the container's memory limit and its goroutines pile up
(/leak). Both runtimes that measure on their own:

- the sidecar (`kprof sidecar` as a real process, /proc of the app, its annotations from a
  downwardAPI-style folder): `oom-risk` fires while the app's memory is still well under the
  limit, `goroutine-threshold` on the count read from goroutine?debug=1, the usage window is kept
  beside the history and bounded; `capture-now` gives one capture per distinct value, also after
  a restart of the sidecar;
- the operator (`kprof run` against the real control plane: metrics-server scrapes the node agent,
  which reports the app processes' real resident memory): the same triggers over the pods' limits,
  the usage windows in their ConfigMap and carried across an operator restart, and
  `kubectl annotate ... profiling.io/capture-now=...` answered by exactly one capture per value,
  also across that restart, with the Event saying so.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kprof_lib.adapters import windows
from kprof_lib.adapters.kube.windows import windows_configmap_name
from kprof_lib.runtimes import sidecar
from kprof_lib.state import cluster
from tests.operator_support import OperatorProcess, create_config, events_about, wait_until
from tests.support.goapp import GoApp, run_go_tool_pprof
from tests.support.kprofproc import KprofProcesses
from tests.test_operator_e2e import history_of, operator_identity
from tests.test_sidecar import go_quote, sidecar_env

MiB = 1024 * 1024
LIMIT_MIB = 256
LEAK_MIB_PER_SECOND = 2
LEAK_GOROUTINES_PER_SECOND = 40
GOROUTINE_THRESHOLD = 300
WINDOW_SAMPLES = 8
CHECK_SECONDS = 10  # the schema's minimum

# Thresholds far out of reach (CPU against a request of 2 cores, memory at 100 % of the limit):
# what captures is the triggers.
TRIGGER_SPEC: dict[str, Any] = {
    "thresholds": {
        "cpuThresholdPercent": 1000,
        "memoryThresholdPercent": 100,
        "checkIntervalSeconds": CHECK_SECONDS,
        "cooldownSeconds": 600,
    },
    "triggers": {
        "windowSamples": WINDOW_SAMPLES,
        "oom": {"oomHorizonSeconds": 300, "minSamples": 3},
        "goroutines": {"goroutineThreshold": GOROUTINE_THRESHOLD},
    },
    "profileTypes": ["heap", "goroutine"],
}


@pytest.fixture
def kprof():
    processes = KprofProcesses()
    yield processes
    processes.close()


@pytest.fixture
def leaky(sample_app_binary, tmp_path):
    """A sample app under a name of its own (for --app-process), leaking memory and goroutines."""
    name = f"leaky-{tmp_path.name[-12:]}".replace("_", "-")
    link = tmp_path / name
    link.symlink_to(sample_app_binary)
    with GoApp(link) as app:
        app.process_name = name
        yield app


def write_annotations(folder: Path, port: int, **extra: str) -> None:
    """The downwardAPI annotations file as the kubelet writes it: whole, by a rename."""
    annotations = {"profiling.io/enabled": "true", "profiling.io/port": str(port), **extra}
    partial = folder / ".annotations.tmp"
    partial.write_text("".join(f"{key}={go_quote(value)}\n" for key, value in annotations.items()))
    partial.replace(folder / "annotations")


def podinfo(tmp_path: Path, port: int) -> Path:
    folder = tmp_path / "podinfo"
    folder.mkdir(exist_ok=True)
    (folder / "labels").write_text('app.kubernetes.io/name="leaky"\n')
    write_annotations(folder, port)
    return folder


def leaky_env(tmp_path: Path, folder: Path, spec: dict[str, Any]) -> dict[str, str]:
    env = sidecar_env(tmp_path, folder, spec)
    env.update(
        {
            "KPROF_APP_CPU_REQUEST": "2000",
            "KPROF_APP_MEMORY_REQUEST": str(LIMIT_MIB * MiB),
            "KPROF_APP_MEMORY_LIMIT": str(LIMIT_MIB * MiB),
        }
    )
    return env


def checks(run) -> list[dict[str, Any]]:
    return [r for r in run.json_logs() if r.get("logger") == "kprof.sidecar" and r["msg"].startswith("check: ")]


def wait_for_check(run, predicate, timeout: float = 90) -> dict[str, Any]:
    def found():
        return next((r for r in checks(run) if predicate(r)), None)

    return wait_until(found, timeout, lambda: f"no such check within {timeout}s:\n{run.output()}", interval=0.3)


def stored_file(profile: dict[str, Any]) -> Path:
    return Path(urllib.request.url2pathname(profile["uri"].removeprefix("file://")))


def top_of(path: Path, *flags: str) -> str:
    top = run_go_tool_pprof("-top", *flags, str(path))
    assert top.returncode == 0, top.stderr
    return top.stdout


# The sidecar ------------------------------------------------------------------------------------


def test_the_sidecar_captures_before_the_oom_and_when_goroutines_leak(leaky, kprof, tmp_path):
    folder = podinfo(tmp_path, leaky.port)
    env = leaky_env(tmp_path, folder, TRIGGER_SPEC)
    leaky.leak(mem_mib_per_second=LEAK_MIB_PER_SECOND, goroutines_per_second=LEAK_GOROUTINES_PER_SECOND, seconds=300)
    run = kprof("sidecar", "--app-process", leaky.process_name, "--health-addr", "127.0.0.1:0", env=env)

    goroutine_capture = wait_for_check(run, lambda r: r.get("reason") == "goroutine-threshold" and r.get("profiles"))
    oom_capture = wait_for_check(run, lambda r: r.get("reason") == "oom-risk" and r.get("profiles"), timeout=120)
    resident_after = leaky.resident_bytes()
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.output()

    # Before the limit: the app's memory at that check was a fraction of it, and still climbing.
    assert oom_capture["memoryPercent"] < 100, oom_capture
    said = re.search(
        r"memory (\d+)% of limit, rising [\d.]+%/min, limit reached in ~\d+ (s|min)", oom_capture["detail"]
    )
    assert said and int(said[1]) < 100, oom_capture
    window = windows.decode(json.loads((tmp_path / "var" / "spool" / sidecar.WINDOW_FILE).read_text()))
    [samples] = [[windows.sample_object(row) for row in rows] for rows in window.values()]
    captured_at = cluster.parse_time(oom_capture["ts"])  # the check line comes after its captures
    at_capture = [s for s in samples if cluster.parse_time(s["time"]) <= captured_at][-1]
    assert at_capture["memoryBytes"] < LIMIT_MIB * MiB
    assert resident_after > at_capture["memoryBytes"]
    heap = next(stored_file(p) for p in oom_capture["profiles"] if p["type"] == "heap")
    assert "main.(*leakState).leakMemory" in top_of(heap, "-sample_index=inuse_space")

    goroutine_profile = next(stored_file(p) for p in goroutine_capture["profiles"] if p["type"] == "goroutine")
    assert "main.leakedGoroutine" in top_of(goroutine_profile)
    assert (
        json.loads(goroutine_profile.with_name(goroutine_profile.name + ".json").read_text())["metadata"]["reason"]
        == "goroutine-threshold"
    )

    # The window: bounded, oldest first, one sample per check, memory and goroutines rising.
    assert 3 <= len(samples) <= WINDOW_SAMPLES
    times = [cluster.parse_time(s["time"]) for s in samples]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert [s["memoryBytes"] for s in samples] == sorted(s["memoryBytes"] for s in samples)
    assert all(s["goroutines"] is not None for s in samples)
    assert samples[-1]["goroutines"] > samples[0]["goroutines"] >= GOROUTINE_THRESHOLD
    history = json.loads((tmp_path / "var" / "spool" / sidecar.HISTORY_FILE).read_text())
    assert {"lastOomCapture", "lastThresholdCapture"} <= set(history[f"shop/{env['KPROF_POD_NAME']}"])


def test_the_sidecar_captures_once_per_capture_now_value_across_a_restart(leaky, kprof, tmp_path):
    go_app = leaky  # not leaking here
    folder = podinfo(tmp_path, go_app.port)
    spec = {"triggers": {"captureNow": {"enabled": True}}, "profileTypes": ["heap"]}
    env = sidecar_env(tmp_path, folder, spec)
    flags = ("--health-addr", "127.0.0.1:0", "--app-process", go_app.process_name)
    run = kprof("sidecar", *flags, env=env)
    run.wait_for(lambda line: "kprof sidecar starting" in line, stream="stderr")

    write_annotations(folder, go_app.port, **{"profiling.io/capture-now": "incident-1"})
    first = wait_for_check(run, lambda r: r.get("reason") == "requested", timeout=30)
    assert [p["status"] for p in first["profiles"]] == ["stored"]
    woken = [r for r in run.json_logs() if r.get("action") == "wake"]
    assert [r["msg"] for r in woken] == ["profiling.io/capture-now=incident-1: checking now"]
    # The same value again at the next checks: nothing more (no early check either).
    time.sleep(3)
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.output()
    assert [r["reason"] for r in checks(run) if r.get("profiles")] == ["requested"]

    # A restarted sidecar (same emptyDir) finds the value served: no capture, no early check.
    again = kprof("sidecar", *flags, env=env)
    again.wait_for(lambda line: "kprof sidecar starting" in line, stream="stderr")
    time.sleep(3)
    write_annotations(folder, go_app.port, **{"profiling.io/capture-now": "incident-2"})
    second = wait_for_check(again, lambda r: r.get("reason") == "requested", timeout=30)
    time.sleep(2)
    again.send(signal.SIGTERM)
    assert again.wait() == 0, again.output()
    assert [r["msg"] for r in again.json_logs() if r.get("action") == "wake"] == [
        "profiling.io/capture-now=incident-2: checking now"
    ]
    assert [r["reason"] for r in checks(again) if r.get("profiles")] == ["requested"]
    heap = stored_file(second["profiles"][0])
    metadata = json.loads(heap.with_name(heap.name + ".json").read_text())["metadata"]
    assert metadata["reason"] == "requested"
    history = json.loads((tmp_path / "var" / "spool" / sidecar.HISTORY_FILE).read_text())
    assert history[f"shop/{env['KPROF_POD_NAME']}"]["captureNowValue"] == "incident-2"


# Local mode -------------------------------------------------------------------------------------


def test_local_mode_keeps_a_window_in_memory_and_captures_on_the_trend(go_app, kprof, tmp_path):
    """Local mode checks every second (--check-interval): the same triggers within seconds."""
    config = tmp_path / "leaks.yaml"
    config.write_text(
        "apiVersion: profiling.io/v1alpha1\nkind: ProfilingConfig\nmetadata: {name: leaks}\nspec:\n"
        "  triggers:\n    windowSamples: 5\n    oom: {oomHorizonSeconds: 120, minSamples: 3}\n"
        "    goroutines: {goroutineThreshold: 150}\n  profileTypes: [heap]\n"
    )
    go_app.leak(mem_mib_per_second=20, goroutines_per_second=100, seconds=60)
    out = tmp_path / "profiles"
    run = kprof(
        "local", "--target", go_app.url, "--pid", str(go_app.pid), "--config", str(config),
        "--memory-limit", f"{LIMIT_MIB}Mi", "--check-interval", "1", "--out", str(out),
    )  # fmt: skip
    run.wait_for(lambda line: "capture heap when" in line, timeout=30)
    start = next(line for line in run.stdout if "capture heap when" in line)
    assert "memory would reach its limit within 120s (oom-risk) or goroutines >= 150" in start, start
    run.wait_for(lambda line: line.startswith("[") and "goroutine-threshold: 1" in line, timeout=30)
    run.wait_for(lambda line: line.startswith("[") and "oom-risk: 1" in line, timeout=30)
    run.send(signal.SIGINT)
    assert run.wait() == 0, run.output()
    # Each capture's folder has the reason in its profile's metadata.
    reasons = sorted(json.loads(path.read_text())["metadata"]["reason"] for path in out.rglob("heap.pprof.json"))
    assert reasons == ["goroutine-threshold", "oom-risk"], run.output()


# The operator -----------------------------------------------------------------------------------


def windows_of(plane, namespace: str, config_key: str) -> windows.Windows:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        configmap = client.CoreV1Api(plane.api()).read_namespaced_config_map(
            windows_configmap_name(config_key), namespace
        )
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    rows = windows.decode(json.loads((configmap.data or {})["windows.json"]))
    return {key: [windows.sample_object(row) for row in found] for key, found in rows.items()}


def annotate(plane, namespace: str, pod: str, value: str) -> None:
    """What `kubectl annotate pod POD profiling.io/capture-now=VALUE --overwrite` sends."""
    from kubernetes import client

    body = {"metadata": {"annotations": {"profiling.io/capture-now": value}}}
    client.CoreV1Api(plane.api()).patch_namespaced_pod(pod, namespace, body)


def captures_of(profiles: Path, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The stored profiles' metadata documents for one pod, oldest capture first."""
    folder = profiles / namespace / pod
    documents = [json.loads(p.read_text()) for p in sorted(folder.rglob("*.pprof.json"))] if folder.exists() else []
    return sorted(documents, key=lambda d: (d["metadata"]["captured-at"], d["metadata"]["profile-type"]))


def summary_of(profiles: Path, document: dict[str, Any]) -> dict[str, Any]:
    """The summary.json of the capture a profile's metadata document belongs to ({} until it is
    written, after the capture's profiles)."""
    path = (profiles / document["key"]).parent / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_the_operator_captures_before_the_oom_when_goroutines_leak_and_on_request(
    control_plane, kprof_release, sample_app_binary, tmp_path
):
    plane = control_plane
    namespace = plane.new_namespace("leaks")
    operator_namespace = plane.new_namespace("kprof-triggers")
    kubeconfig, _ = operator_identity(plane, operator_namespace, tmp_path / "kubeconfig")
    config_key = f"{namespace}/leak-watch"
    with (
        GoApp(sample_app_binary) as memory_app,
        GoApp(sample_app_binary) as goroutine_app,
        GoApp(sample_app_binary) as quiet_app,
    ):
        memory_app.leak(mem_mib_per_second=LEAK_MIB_PER_SECOND, seconds=600)
        goroutine_app.leak(goroutines_per_second=LEAK_GOROUTINES_PER_SECOND, seconds=600)
        quiet_app.load(cpu_seconds=0.3, workers=1, wait=True)  # metrics-server drops a pod with no CPU time
        for name, app in (("memory-1", memory_app), ("goroutines-1", goroutine_app), ("quiet-1", quiet_app)):
            plane.run_pod(
                namespace,
                name,
                port=app.port,
                pid=app.pid,
                labels={"app": name.rsplit("-", 1)[0]},
                annotations={"profiling.io/enabled": "true", "profiling.io/port": str(app.port)},
                requests={"cpu": "2", "memory": f"{LIMIT_MIB}Mi"},
                limits={"memory": f"{LIMIT_MIB}Mi"},
            )
        create_config(
            plane,
            "leak-watch",
            namespace,
            {**TRIGGER_SPEC, "triggers": {**TRIGGER_SPEC["triggers"], "captureNow": {"enabled": True}}},
        )
        plane.wait_for_metrics_api()
        profiles = tmp_path / "first" / "profiles"
        args = ["--namespace", operator_namespace, "--no-leader-elect"]
        operator = OperatorProcess(kubeconfig, tmp_path / "first", args=args, name="first operator")
        restarted = None
        try:
            operator.wait_ready()

            def oom_captures() -> list[dict[str, Any]]:
                found = [
                    d for d in captures_of(profiles, namespace, "memory-1") if d["metadata"]["reason"] == "oom-risk"
                ]
                # Both profiles of the capture, or none yet: its heap profile is stored before the other.
                return found if len(found) >= 2 else []

            oom = wait_until(
                oom_captures,
                150,
                lambda: f"no oom-risk capture of memory-1 with both profiles:\n{operator.output()}",
            )
            # (Its memory climbs a little too, with the goroutines' stacks: the capture's reasons
            # hold goroutine-threshold, whichever comes first in precedence.)
            wait_until(
                lambda: [
                    d
                    for d in captures_of(profiles, namespace, "goroutines-1")
                    if "goroutine-threshold" in summary_of(profiles, d).get("capture", {}).get("reasons", ())
                ],
                60,
                lambda: f"no goroutine-threshold capture of goroutines-1:\n{operator.output()}",
            )
            # Capture now, by annotation: one capture for the value, however many checks see it.
            annotate(plane, namespace, "quiet-1", "incident-1")
            requested = wait_until(
                lambda: [
                    d for d in captures_of(profiles, namespace, "quiet-1") if d["metadata"]["reason"] == "requested"
                ],
                60,
                lambda: f"no requested capture of quiet-1:\n{operator.output()}",
            )
            captured_at = requested[0]["metadata"]["captured-at"]
            operator.wait_for_log(
                lambda r: r.get("action") == "check" and r.get("config") == config_key and r["ts"] > captured_at,
                2 * CHECK_SECONDS + 15,
                "a check after the requested capture",
            )
            window_before_restart = windows_of(plane, operator_namespace, config_key)
            assert operator.terminate() == 0, operator.output()
            window_at_stop = windows_of(plane, operator_namespace, config_key)

            # A restarted operator: the value was served (history), the windows carried on.
            restarted_profiles = tmp_path / "restarted" / "profiles"
            restarted = OperatorProcess(
                kubeconfig, tmp_path / "restarted", args=[*args, "--log-level", "debug"], name="restarted operator"
            )
            restarted.wait_ready()
            restarted.wait_for_log(
                lambda r: r.get("logger") == "kprof.check" and r.get("pod") == f"{namespace}/quiet-1",
                60,
                "a decision about quiet-1 after the restart",
            )
            assert captures_of(restarted_profiles, namespace, "quiet-1") == [], "incident-1 was served already"
            annotate(plane, namespace, "quiet-1", "incident-2")
            again = wait_until(
                lambda: captures_of(restarted_profiles, namespace, "quiet-1"),
                60,
                lambda: f"no capture of quiet-1 for the second value:\n{restarted.output()}",
            )
            restarted.wait_for_log(
                lambda r: (
                    r.get("action") == "check"
                    and r.get("config") == config_key
                    and r["ts"] > again[0]["metadata"]["captured-at"]
                ),
                2 * CHECK_SECONDS + 15,
                "a check after the second requested capture",
            )
            window_after_restart = windows_of(plane, operator_namespace, config_key)
            # Each new value woke the config's check (not left to its next interval). Configs of
            # other tests in the shared control plane that select every namespace are woken too.
            woken = [
                [
                    r["msg"]
                    for r in process.find_logs(lambda r: r.get("action") == "wake")
                    if r["msg"].startswith(f"checking {config_key} ")
                ]
                for process in (operator, restarted)
            ]
            restarted.terminate()
            history = history_of(plane, operator_namespace, config_key)
        finally:
            operator.close()
            if restarted is not None:
                restarted.close()

    # oom-risk before the limit: the memory the operator saw at that check (metrics-server's
    # working set of the app's process), against the limit (which is also the request).
    assert [d["metadata"]["profile-type"] for d in oom] == ["goroutine", "heap"]
    summary = summary_of(profiles, oom[0])
    assert 0 < summary["capture"]["usage"]["memoryPercent"] < 100, summary["capture"]
    [event] = [e for e in events_about(plane.api(), namespace, "memory-1") if "oom-risk" in e.message]
    said = re.search(r"memory (\d+)% of limit, rising [\d.]+%/min, limit reached in ~\d+ (s|min)", event.message)
    assert said and int(said[1]) < 100, event.message
    # The Event gives the count read from the app: over the threshold.
    [event, *_] = [
        e for e in events_about(plane.api(), namespace, "goroutines-1") if "goroutine-threshold" in e.message
    ]
    said = re.search(rf"goroutines (\d+) >= {GOROUTINE_THRESHOLD}", event.message)
    assert said and int(said[1]) >= GOROUTINE_THRESHOLD, event.message
    goroutine_window = window_at_stop[f"{namespace}/goroutines-1"]
    assert goroutine_window[-1]["goroutines"] > GOROUTINE_THRESHOLD

    # Exactly one capture per value, the second by the restarted operator only.
    first_run = [d for d in captures_of(profiles, namespace, "quiet-1") if d["metadata"]["reason"] == "requested"]
    assert len({d["metadata"]["captured-at"] for d in first_run}) == 1, first_run
    assert len({d["metadata"]["captured-at"] for d in again}) == 1 and again[0]["metadata"]["reason"] == "requested"
    assert history[f"{namespace}/quiet-1"]["captureNowValue"] == "incident-2"
    assert woken == [
        [f"checking {config_key} at once: profiling.io/capture-now=incident-1 on {namespace}/quiet-1"],
        [f"checking {config_key} at once: profiling.io/capture-now=incident-2 on {namespace}/quiet-1"],
    ]
    # The Events confirm each: the reason, the value served, where the capture is.
    said = sorted(e.message for e in events_about(plane.api(), namespace, "quiet-1"))
    assert [m.split(":", 1)[0] for m in said] == [
        "requested (capture-now=incident-1)",
        "requested (capture-now=incident-2)",
    ], said
    assert all(e.reason == "ProfileCaptured" for e in events_about(plane.api(), namespace, "quiet-1"))

    # The windows: bounded, in their ConfigMap, and continued by the restarted operator.
    for samples in (*window_at_stop.values(), *window_after_restart.values()):
        assert 1 <= len(samples) <= WINDOW_SAMPLES
    assert window_before_restart and window_at_stop
    before = window_at_stop[f"{namespace}/memory-1"]
    after = window_after_restart[f"{namespace}/memory-1"]
    assert before[-1] in after and after[-1]["time"] > before[-1]["time"], (before, after)
