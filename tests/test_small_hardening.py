"""The smaller items of the hardening: credentials in URLs redacted wherever they are printed,
spec values that would crash validation instead of being reported, a pod spec that is not an
object, the spool refusing a new profile loudly when full, and the local store refusing every bad
key with a StoreError."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess

import pytest

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.s3 import S3Store
from kprof_lib.adapters.spool import SpoolFull, SpoolingStore
from kprof_lib.execution import cycle
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import PPROF_CONTENT_TYPE, StoreError
from kprof_lib.planning.reconcile import reconcile
from kprof_lib.runtimes import logs
from kprof_lib.runtimes.operator import monitoring
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.validation import validate_spec
from kprof_lib.state.errors import StateError
from tests.operator_support import kprof_command
from tests.support.kprofproc import KprofProcesses
from tests.support.net import free_port
from tests.support.pods import ENABLED, pod
from tests.support.stores import UnreachableStore
from tests.test_executor import pod_at, state, tracing  # noqa: F401 - the tracing fixture

SECRET = "s3cr3t-pw"
ON_DEMAND = {"onDemand": {"enabled": True, "intervalSeconds": 300}, "profileTypes": ["heap"]}


def endpoint_with_credentials() -> str:
    return f"http://minio:{SECRET}@127.0.0.1:{free_port()}"


# -- credentials in URLs ------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_lines_never_show_credentials_in_urls(log_format):
    stream = io.StringIO()
    handler = logs.configure("info", log_format, stream=stream)
    try:
        logging.getLogger("kprof.test").warning(
            "cannot reach %s", f"https://admin:{SECRET}@minio.example:9000/b", extra={"detail": f"s3://k:{SECRET}@x"}
        )
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert SECRET not in text
    assert "https://REDACTED@minio.example:9000/b" in text and "s3://REDACTED@x" in text


def test_spans_and_events_of_a_failed_upload_never_show_credentials(go_app, tracing, otlp_receiver, caplog):  # noqa: F811
    endpoint = endpoint_with_credentials()
    store = S3Store("profiles", endpoint=endpoint, max_attempts=1, connect_timeout=1)
    spec = {**ON_DEMAND, "s3Config": {"bucket": "profiles", "endpoint": endpoint}}
    caplog.set_level(logging.INFO)

    report = cycle.run_check(
        config_name="shop/cfg", spec=spec, gather=lambda: state(pod_at("p-1", go_app.port)),
        executor=Executor(tracer=tracing), store=store, transport=DirectTransport(),
    )

    [profile] = report.execution.profiles
    assert profile.status == "failed" and SECRET not in profile.error and "REDACTED@127.0.0.1" in profile.error
    [upload] = otlp_receiver.wait_for(lambda span: span.name == "kprof.upload")
    assert "REDACTED@127.0.0.1" in upload.status_message
    assert SECRET not in repr(otlp_receiver.wait_for(count=4))
    assert SECRET not in caplog.text


def test_the_spool_header_never_shows_credentials(tmp_path):
    store = SpoolingStore(S3Store("profiles", endpoint=endpoint_with_credentials(), max_attempts=1,
                                  connect_timeout=1), tmp_path / "spool")
    assert store.put("k.pprof", b"\x1f\x8b", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE).spooled
    [spooled] = list((tmp_path / "spool").glob("*.spool"))
    header = json.loads(spooled.read_bytes().split(b"\n", 1)[0])
    assert SECRET not in header["lastError"] and "REDACTED@127.0.0.1" in header["lastError"]


def test_a_store_error_names_the_endpoint_without_its_credentials():
    store = S3Store("profiles", endpoint=endpoint_with_credentials(), max_attempts=1, connect_timeout=1)
    with pytest.raises(StoreError) as raised:
        store.put("k.pprof", b"\x1f\x8b", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert SECRET not in str(raised.value) and "http://REDACTED@127.0.0.1" in str(raised.value)


def test_kprof_local_output_never_shows_credentials(go_app, tmp_path):
    processes = KprofProcesses()
    try:
        run = processes(
            "local", "--target", go_app.url, "--on-demand-interval", "30", "--check-interval", "1",
            "--types", "heap", "--to", "s3://profiles", "--s3-endpoint", endpoint_with_credentials(),
            "--spool-dir", str(tmp_path / "spool"),
            env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"},
        )
        # The start-up check says the endpoint does not answer; the profile waits in the spool.
        run.wait_for(lambda line: "spooled" in line, timeout=90)
        run.send(signal.SIGINT)
        run.wait()
        output = run.output()
    finally:
        processes.close()
    assert SECRET not in output, output
    assert "REDACTED@127.0.0.1" in output, output


# -- spec and cluster-state values that would crash the checks ---------------------------------


def nested(depth: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"thresholds": {"cpuThresholdPercent": float("nan")}}, "spec.thresholds.cpuThresholdPercent",
         "must be a finite number, not nan"),
        ({"thresholds": {"memoryThresholdPercent": float("-inf")}}, "spec.thresholds.memoryThresholdPercent",
         "must be a finite number, not -inf"),
        ({"thresholds": {"cooldownSeconds": 10**5000}}, "spec.thresholds.cooldownSeconds", "is too large"),
        ({"selector": nested(5000)}, "spec.selector", "is nested deeper than 32 levels"),
    ],
)
def test_values_that_would_crash_validation_are_spec_errors(spec, path, message):
    with pytest.raises(SpecError) as raised:
        validate_spec(spec)
    [problem] = raised.value.errors
    assert problem["path"].startswith(path) and message in problem["message"], problem


def test_values_echoed_in_error_messages_are_cut_short():
    with pytest.raises(SpecError) as raised:
        validate_spec({**ON_DEMAND, "s3Config": {"bucket": "profiles", "prefix": "p" * 100_000}})
    assert len(str(raised.value)) < 400, str(raised.value)[:500]
    assert "(100000 long)" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("huge.json", '{"spec": {"thresholds": {"cooldownSeconds": ' + "9" * 5000 + "}}}", "4300 digits"),
        ("huge.yaml", "spec:\n  thresholds: {cooldownSeconds: " + "9" * 5000 + "}\n", "4300 digits"),
        ("deep.yaml", "spec: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
    ],
)
def test_kprof_validate_reports_unreadable_values_without_a_traceback(tmp_path, name, text, reason):
    path = tmp_path / name
    path.write_text(text)
    result = subprocess.run([*kprof_command(), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{path}: not valid" in result.stdout + result.stderr and reason in result.stdout + result.stderr


def test_a_pod_whose_spec_is_not_an_object_is_a_state_error():
    bad = pod("p-1", "shop", annotations=ENABLED)
    bad["spec"] = "not a pod spec"
    with pytest.raises(StateError, match=r"pods\[0\]\.spec: must be an object"):
        reconcile({"thresholds": {}}, {"now": "2026-11-25T10:00:00Z", "pods": [bad],
                                       "podMetrics": [{"metadata": {"name": "p-1", "namespace": "shop"},
                                                       "containers": [{"name": "app", "usage": {"cpu": "1"}}]}]})


# -- the spool when full -----------------------------------------------------------------------


def test_a_full_spool_refuses_the_new_profile_loudly_and_keeps_the_old(tmp_path, caplog):
    store = SpoolingStore(UnreachableStore(), tmp_path / "spool", max_bytes=2000)
    instruments = monitoring.Instruments()
    instruments.track_spool(lambda: store.pending_bytes, lambda: store.refused)
    assert store.put("old.pprof", b"\x1f\x8b" + b"o" * 1000, metadata={}, tags={}, content_type="x").spooled

    with caplog.at_level(logging.ERROR), pytest.raises(SpoolFull) as raised:
        store.put("new.pprof", b"\x1f\x8b" + b"n" * 1000, metadata={}, tags={}, content_type="x")

    message = str(raised.value)
    assert f"profile spool {tmp_path / 'spool'} is full" in message and "2000 bytes" in message
    assert "new.pprof (1002 bytes) was NOT stored" in message
    assert any("is full" in record.getMessage() and record.levelno == logging.ERROR for record in caplog.records)
    assert "kprof_spool_refused_total 1.0" in instruments.exposition().decode()
    [kept] = list((tmp_path / "spool").glob("*.spool"))
    assert json.loads(kept.read_bytes().split(b"\n", 1)[0])["key"] == "old.pprof"


# -- the local store's keys -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a\x00b.pprof", "a/b\x00/c.pprof", "tab\there.pprof", "line\n.pprof", "\x7f.pprof"])
def test_the_local_store_refuses_keys_with_control_characters_with_a_store_error(tmp_path, key):
    with pytest.raises(StoreError, match="control character") as raised:
        LocalStore(tmp_path).put(key, b"\x1f\x8b", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert raised.value.retryable is False
    assert list(tmp_path.iterdir()) == []
