"""Every stored capture gets its summary.json and index.html beside its profiles, made off the
capture path from the profiles' own bytes: `kprof capture` into a directory and into S3 (moto over
HTTP), `kprof local` (the check cycle the operator runs too) and a spooling store whose bucket is
missing at first; `kprof ls` then lists those real captures. The limits hold (a profile too big to
summarise, one that does not decode), and a summary that cannot be stored leaves the profiles
stored and says why in the log."""

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import json
import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.s3 import S3Store
from kprof_lib.adapters.spool import SpoolingStore
from kprof_lib.execution import summaries
from kprof_lib.execution.cycle import run_check
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import StoreError
from kprof_lib.profiles import decode, top
from tests import profiles_support
from tests.support.pods import ENABLED, pod

kprof = profiles_support.kprof


def test_capture_into_a_directory_writes_the_summary_and_page_beside_the_profiles(go_app, tmp_path):
    # Long enough to outlast kprof's start-up on a busy machine; the app is stopped afterwards.
    go_app.load(cpu_seconds=30, workers=2, mem_mib=32, hold=30)
    done = kprof("capture", "--url", go_app.url, "--types", "cpu,heap", "--seconds", "1", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = {p.parent for p in tmp_path.rglob("*.pprof")}
    assert sorted(p.name for p in folder.iterdir()) == [
        "cpu.pprof",
        "cpu.pprof.json",
        "heap.pprof",
        "heap.pprof.json",
        "index.html",
        "index.html.json",
        "summary.json",
        "summary.json.json",
    ]
    stored = json.loads((folder / "summary.json").read_text())
    # The numbers are the reader's, which the differential test holds to go tool pprof.
    heap = decode((folder / "heap.pprof").read_bytes())
    rows = top.entries(heap, "inuse_space")
    inuse = stored["profiles"]["heap"]["sampleTypes"]["inuse_space"]
    assert [(r["name"], r["flat"], r["cum"]) for r in inuse["topFlat"]] == [(e.name, e.flat, e.cum) for e in rows[:10]]
    assert inuse["topFlat"][0]["name"] == "main.allocateHeld"
    capture = stored["capture"]
    assert capture["uri"] == str(folder) + "/" and capture["reason"] == "on-demand" and stored["errors"] == {}
    profile_meta = json.loads((folder / "heap.pprof.json").read_text())["metadata"]
    assert capture["capturedAt"] == profile_meta["captured-at"] and capture["pod"] == profile_meta["pod"]
    # The summary's own metadata carries the top function of each type.
    meta = json.loads((folder / "summary.json.json").read_text())["metadata"]
    assert meta["top-heap"].startswith("main.allocateHeld ") and meta["top-cpu"]
    assert meta["profile-type"] == "summary" and meta["pod"] == profile_meta["pod"]
    page = (folder / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "main.allocateHeld" in page
    assert " src=" not in page and "<link" not in page  # self-contained: nothing to fetch
    # What was hot, printed by the capture itself.
    assert any(line.startswith("  = summary and page stored") and str(folder) in line for line in done.stdout.splitlines())
    # kprof ls lists the real capture.
    listed = json.loads(kprof("ls", str(tmp_path), "-o", "json").stdout)
    assert [(Path(r["capture"]), r["types"]) for r in listed] == [(folder, ["cpu", "heap"])]


def test_capture_into_s3_writes_the_documents_with_their_metadata(go_app, s3, s3_bucket):
    go_app.load(cpu_seconds=30, workers=2, mem_mib=16, hold=30)
    for layout in ("pod", "service-date"):
        done = kprof(
            "capture",
            "--url",
            go_app.url,
            "--types",
            "heap,goroutine",
            "--to",
            f"s3://{s3_bucket}/{layout}",
            "--s3-endpoint",
            s3.endpoint_url,
            "--key-layout",
            layout,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    objects = {o["key"]: o for o in s3.objects(s3_bucket)}
    heap_key = next(k for k in objects if k.startswith("pod/") and k.endswith("/heap.pprof"))
    folder = heap_key[: -len("heap.pprof")]
    assert {k for k in objects if k.startswith(folder)} == {
        folder + name for name in ("heap.pprof", "goroutine.pprof", "summary.json", "index.html")
    }
    summary_object = objects[folder + "summary.json"]
    assert summary_object["content_type"] == "application/json"
    assert objects[folder + "index.html"]["content_type"].startswith("text/html")
    assert summary_object["metadata"]["top-heap"].startswith("main.allocateHeld ")
    assert summary_object["metadata"]["top-goroutine"] and summary_object["metadata"]["profile-type"] == "summary"
    stored = json.loads(s3.body(s3_bucket, folder + "summary.json"))
    assert stored["capture"]["uri"] == f"s3://{s3_bucket}/{folder}"
    dated = next(k for k in objects if k.startswith("service-date/") and k.endswith("-heap.pprof"))
    start = dated[: -len("heap.pprof")]
    assert start + "summary.json" in objects and start + "index.html" in objects
    # ls reads them back, page by page, with the top function.
    for prefix, where in (("pod", f"s3://{s3_bucket}/{folder}"), ("service-date", f"s3://{s3_bucket}/{start}")):
        done = kprof("ls", f"s3://{s3_bucket}/{prefix}", "-o", "json", "--s3-endpoint", s3.endpoint_url)
        assert done.returncode == 0, done.stderr
        [row] = json.loads(done.stdout)
        assert row["capture"] == where and row["types"] == ["goroutine", "heap"] and row["top"][0]
        shown = kprof("show", row["capture"], "--type", "heap", "-n", "1", "--s3-endpoint", s3.endpoint_url)
        assert shown.returncode == 0 and "main.allocateHeld" in shown.stdout, shown.stderr


def test_local_mode_writes_a_summary_per_capture(go_app, tmp_path):
    done = kprof(
        "local",
        "--target",
        go_app.url,
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
        str(tmp_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    listed = json.loads(kprof("ls", str(tmp_path), "-o", "json").stdout)
    [row] = listed
    assert (row["namespace"], row["pod"], row["reason"]) == ("local", "shop-api", "on-demand")
    assert row["types"] == ["goroutine", "heap"] and row["top"] is not None


def _decision_plan(spec: dict, url: str) -> tuple[dict, dict]:
    """A spec with an on-demand capture due now for one pod at `url`, and its cluster state."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    target = pod("api-0", "shop", pod_ip=host, annotations={**ENABLED, "profiling.io/port": port})
    state = {"now": "2026-12-01T10:00:00Z", "pods": [target], "podMetrics": [], "history": {}}
    return spec, state


def _check(spec: dict, state: dict, store, **kwargs):
    from kprof_lib.adapters.pprof.direct import DirectTransport

    return run_check(
        config_name="shop/cfg",
        spec=spec,
        gather=lambda: state,
        executor=Executor(concurrency=1),
        store=store,
        transport=DirectTransport(),
        **kwargs,
    )


SPEC = {"profileTypes": ["heap", "goroutine"], "onDemand": {"enabled": True, "intervalSeconds": 3600}}


def test_a_spooled_capture_has_its_summary_spooled_and_uploaded_with_it(go_app, s3, tmp_path):
    bucket = "created-later"
    spec = {**SPEC, "s3Config": {"bucket": bucket, "endpoint": s3.endpoint_url, "region": "us-east-1"}}
    store = SpoolingStore(S3Store(bucket, endpoint=s3.endpoint_url, region="us-east-1"), tmp_path / "spool")
    report = _check(*_decision_plan(spec, go_app.url), store)
    [(key, written)] = report.summaries.items()
    assert key == "shop/api-0" and written.spooled and written.error is None
    assert store.pending_count == 4  # two profiles, the summary and the page
    s3.client().create_bucket(Bucket=bucket)
    assert store.flush().uploaded == 4
    keys = sorted(o["key"] for o in s3.objects(bucket))
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["goroutine.pprof", "heap.pprof", "index.html", "summary.json"]
    assert written.uri == f"s3://{bucket}/" + keys[0].rsplit("/", 1)[0] + "/"


class RefusingDocuments:
    """A store that keeps profiles in a directory and refuses every summary and page."""

    def __init__(self, folder: Path):
        self.local = LocalStore(folder)
        self.description, self.bucket = self.local.description, None

    def uri_for(self, key):
        return self.local.uri_for(key)

    def put(self, key, data, **kwargs):
        if not key.endswith(".pprof"):
            raise StoreError("documents refused", retryable=False)
        return self.local.put(key, data, **kwargs)


def test_a_summary_that_cannot_be_stored_is_logged_and_the_profiles_stay(go_app, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kprof.summary")
    report = _check(*_decision_plan(SPEC, go_app.url), RefusingDocuments(tmp_path))
    assert [p.status for p in report.execution.profiles] == ["stored", "stored"]
    written = report.summaries["shop/api-0"]
    assert written.error == "documents refused; documents refused" and written.summary_uri is None
    assert sorted(p.name for p in tmp_path.rglob("*.pprof")) == ["goroutine.pprof", "heap.pprof"]
    [record] = [r for r in caplog.records if r.action == "summary-failed"]
    assert "shop/api-0" in record.getMessage() and "the profiles are stored" in record.getMessage()


@pytest.fixture
def garbage_server():
    """A pprof endpoint that answers every profile with gzip'd bytes that are not a profile."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = gzip.compress(b"\xff" * 64)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_limits_leave_profiles_out_of_the_summary_with_the_reason(go_app, garbage_server, tmp_path):
    # Over the size limit: stored, named in the summary's errors, not decoded.
    store = LocalStore(tmp_path / "big")
    spec, state = _decision_plan(SPEC, go_app.url)
    plan_store = summaries.Keeping(store, max_profile_bytes=16)
    report = run_check_with(spec, state, plan_store)
    written = report["shop/api-0"]
    assert sorted(written.summary["errors"]) == ["goroutine", "heap"] and written.summary["profiles"] == {}
    assert "more than the summary limit of 16" in written.summary["errors"]["heap"]
    assert len(list((tmp_path / "big").rglob("*.pprof"))) == 2
    # Not a profile: stored all the same, and the summary says what the reader found.
    report = _check(*_decision_plan(SPEC, garbage_server), LocalStore(tmp_path / "garbage"))
    written = report.summaries["shop/api-0"]
    assert written.error is None and "heap.pprof: not a pprof profile" in written.summary["errors"]["heap"]
    assert len(list((tmp_path / "garbage").rglob("*.pprof"))) == 2
    assert summaries.RETAINED.used == 0  # every kept byte given back


def run_check_with(spec, state, keeping):
    """The executor and the summary step with a given Keeping (its limits), as run_check runs them."""
    from kprof_lib.adapters.pprof.direct import DirectTransport
    from kprof_lib.planning.reconcile import reconcile

    plan = reconcile(spec, state)
    execution = Executor(concurrency=1).execute(plan, store=keeping, transport=DirectTransport())
    return summaries.write(plan, execution, keeping)


def test_the_summary_time_budget_leaves_the_rest_out(go_app, tmp_path):
    spec, state = _decision_plan(SPEC, go_app.url)
    from kprof_lib.adapters.pprof.direct import DirectTransport
    from kprof_lib.planning.reconcile import reconcile

    plan = reconcile(spec, state)
    keeping = summaries.Keeping(LocalStore(tmp_path))
    execution = Executor(concurrency=1).execute(plan, store=keeping, transport=DirectTransport())
    [written] = summaries.write(plan, execution, keeping, time_budget=-1).values()
    assert written.summary["profiles"] == {}
    assert written.summary["errors"]["heap"] == "not summarised: the summary's time budget of -1 s was spent"


def test_document_metadata_stays_within_s3s_limit():
    from kprof_lib.execution import keys

    base = keys.object_metadata(
        namespace="n" * 300,
        pod="p" * 300,
        service="s" * 300,
        reason="cpu-threshold",
        profile_type="cpu",
        captured_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        trace_id="1" * 32,
    )
    base["labels"] = "x" * 700  # room for about three more values
    tops = {kind: "f" * 500 + " 50%" for kind in ("allocs", "block", "goroutine", "heap", "mutex", "cpu")}
    meta = keys.document_metadata(base, "summary", tops)
    assert sum(len(k) + len(v) for k, v in meta.items()) <= keys.MAX_METADATA_BYTES
    assert list(meta)[-3:] == ["top-cpu", "top-heap", "top-goroutine"] and "top-allocs" not in meta
    assert len(meta["top-cpu"]) == keys.MAX_TOP_CHARS


@pytest.mark.parametrize("command", ["capture", "local"])
def test_the_page_links_its_trace_when_a_jaeger_url_is_set(go_app, tmp_path, command):
    jaeger = "http://127.0.0.1:16686/"
    if command == "capture":
        args = ["capture", "--url", go_app.url, "--types", "heap"]
    else:
        args = ["local", "--target", go_app.url, "--types", "heap", "--on-demand-interval", "30", "--duration", "2"]
    done = subprocess.run(
        [profiles_support.KPROF, *args, "--out", str(tmp_path), "--console-spans"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "KPROF_JAEGER_URL": jaeger},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [meta] = tmp_path.rglob("heap.pprof.json")
    trace_id = json.loads(meta.read_text())["metadata"]["trace-id"]
    assert len(trace_id) == 32 and set(trace_id) != {"0"}, trace_id
    link = f"http://127.0.0.1:16686/trace/{trace_id}"
    [summary] = tmp_path.rglob("summary.json")
    assert json.loads(summary.read_text())["capture"]["traceUrl"] == link
    [page] = tmp_path.rglob("index.html")
    assert f'<a href="{link}">' in page.read_text()
