"""A real check traced into a real Jaeger v2: `kprof local` captures the real Go sample app with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at Jaeger's OTLP receiver, and the trace is found through
Jaeger's query API by service name, with the span tree and the attributes docs/TRACING.md lists;
then from the trace to the stored profile and back (its metadata's trace-id, `kprof show`'s link)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests import profiles_support
from tests.support.jaeger import Jaeger, span_tree, tags

SERVICE = "kprof-local"


@pytest.fixture
def jaeger(tmp_path):
    server = Jaeger(tmp_path)
    yield server
    server.stop()


def wait_for_trace(jaeger: Jaeger, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for trace in jaeger.traces(SERVICE):
            if any(s["operationName"] == "kprof.upload" for s in trace["spans"]):
                return trace
        time.sleep(0.5)
    raise AssertionError(f"no trace with an upload span for {SERVICE} in Jaeger within {timeout}s")


def test_a_check_is_a_trace_in_jaeger(go_app, jaeger, tmp_path):
    out = tmp_path / "profiles"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    env.pop("OTEL_SERVICE_NAME", None)
    done = subprocess.run(
        [
            profiles_support.KPROF,
            "local",
            "--target",
            go_app.url,
            "--pid",
            str(go_app.pid),
            "--name",
            "shop-api",
            "--on-demand-interval",
            "30",
            "--check-interval",
            "1",
            "--duration",
            "3",
            "--types",
            "heap,goroutine",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SERVICE in jaeger.get("/api/services")["data"]
    trace = wait_for_trace(jaeger)
    tree = span_tree(trace)
    assert tree == [
        (0, "kprof.check"),
        (1, "kprof.metrics"),
        (1, "kprof.capture"),
        (1, "kprof.upload"),
        (1, "kprof.capture"),
        (1, "kprof.upload"),
        (1, "kprof.summary"),
    ], tree
    spans = {}
    for span in trace["spans"]:
        spans.setdefault(span["operationName"], []).append(tags(span))
    pod = "shop-api"
    assert spans["kprof.metrics"][0]["kprof.metrics.pods"] == 1
    assert spans["kprof.check"][0]["kprof.captures.planned"] == 1
    assert sorted(t["profile.type"] for t in spans["kprof.capture"]) == ["goroutine", "heap"]
    for capture in spans["kprof.capture"]:
        assert (capture["k8s.namespace.name"], capture["k8s.pod.name"]) == ("local", pod)
        assert capture["kprof.reason"] == "on-demand" and capture["kprof.result"] == "captured"
        assert capture["kprof.bytes"] > 0 and capture["url.full"].startswith(go_app.url + "/debug/pprof/")
    for upload in spans["kprof.upload"]:
        assert (upload["k8s.namespace.name"], upload["k8s.pod.name"]) == ("local", pod)
        assert upload["kprof.result"] == "stored" and upload["kprof.bytes"] > 0
        # From the trace to the profile: the upload names the file, and its metadata names the trace.
        path = Path(upload["url.full"].removeprefix("file://"))
        assert path.stat().st_size == upload["kprof.bytes"] and path.name == f"{upload['profile.type']}.pprof"
        sidecar = json.loads(path.with_name(path.name + ".json").read_text())
        assert sidecar["metadata"]["trace-id"] == trace["traceID"]
    # ...and back: `kprof show` prints the trace id and its Jaeger link.
    folder = path.parent
    shown = profiles_support.kprof("show", str(folder), "--jaeger-url", jaeger.query_url, "-n", "3")
    assert shown.returncode == 0, shown.stderr
    assert f"trace {trace['traceID']}  {jaeger.query_url}/trace/{trace['traceID']}" in shown.stdout
    # The capture's summary (its own span names it) carries the trace id, and `kprof ls` prints it.
    [summary_span] = spans["kprof.summary"]
    assert summary_span["url.full"] == (folder / "summary.json").as_uri()
    [row] = json.loads(profiles_support.kprof("ls", str(out), "-o", "json", "--jaeger-url", jaeger.query_url).stdout)
    assert (row["traceId"], row["traceUrl"]) == (trace["traceID"], f"{jaeger.query_url}/trace/{trace['traceID']}")
    # The trace the link opens is that one.
    assert jaeger.get(f"/api/traces/{trace['traceID']}")["data"][0]["traceID"] == trace["traceID"]
