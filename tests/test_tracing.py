"""Tests of the OpenTelemetry set-up (kprof_lib.adapters.tracing): off by default, configured from
OTEL_* variables, and spans exported over OTLP/HTTP into a receiver that decodes them. Tests use
private providers; the one test of the global provider runs in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import Status, StatusCode

from kprof_lib.adapters import tracing
from kprof_lib.execution import telemetry
from tests.support.otlp import OTLPReceiver

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        {"OTEL_SERVICE_NAME": "kprof", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},  # no exporter asked for
    ],
    ids=["empty", "exporter-none", "sdk-disabled", "settings-without-exporter"],
)
def test_tracing_is_off_unless_asked_for(env: dict[str, str]) -> None:
    assert tracing.configure(env=env) is None
    assert tracing.make_exporters(env) == []
    # The process keeps OpenTelemetry's no-op default: spans cost nothing and have no trace id.
    assert not hasattr(trace.get_tracer_provider(), "force_flush")
    with tracing.get_tracer().start_as_current_span(telemetry.SPAN_CHECK) as span:
        assert tracing.trace_id_hex(span) is None
    tracing.shutdown()  # nothing configured: a no-op


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, [HttpSpanExporter]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, [HttpSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, [HttpSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, [GrpcSpanExporter]),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            [HttpSpanExporter],
        ),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, [ConsoleSpanExporter, HttpSpanExporter]),
    ],
    ids=["endpoint", "traces-endpoint", "exporter-otlp", "grpc", "traces-protocol-wins", "console-and-otlp"],
)
def test_exporters_follow_the_environment(env: dict[str, str], expected: list[type]) -> None:
    exporters = tracing.make_exporters(env)
    try:
        assert [type(exporter) for exporter in exporters] == expected
    finally:
        for exporter in exporters:
            exporter.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "'http/json' is not supported"),
    ],
)
def test_unsupported_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tracing.configure(env=env)


def test_resource_follows_service_name_and_attributes() -> None:
    resource = tracing.build_resource(
        {"OTEL_RESOURCE_ATTRIBUTES": "k8s.cluster.name=prod%2Deu,service.name=from-attributes,broken"},
        "kprof-operator",
    )
    assert resource.attributes["k8s.cluster.name"] == "prod-eu"
    assert resource.attributes["service.name"] == "from-attributes"
    assert tracing.build_resource({"OTEL_SERVICE_NAME": "named"}).attributes["service.name"] == "named"
    assert tracing.build_resource({}, "kprof-sidecar").attributes["service.name"] == "kprof-sidecar"


def test_console_exporter_writes_spans(capsys: pytest.CaptureFixture[str]) -> None:
    provider = tracing.configure(env={"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None
    with provider.get_tracer(telemetry.TRACER_NAME).start_as_current_span(
        telemetry.SPAN_METRICS, attributes={telemetry.ATTR_PODS_SEEN: 3}
    ):
        pass
    tracing.shutdown(provider)

    printed = json.loads(capsys.readouterr().err)
    assert printed["name"] == telemetry.SPAN_METRICS
    assert printed["attributes"] == {telemetry.ATTR_PODS_SEEN: 3}
    assert printed["resource"]["attributes"]["service.name"] == "kprof"
    assert not hasattr(trace.get_tracer_provider(), "force_flush"), "not made global unless asked"


def test_spans_reach_an_otlp_receiver_with_names_attributes_parentage_and_errors(
    otlp_receiver: OTLPReceiver,
) -> None:
    provider = tracing.build_provider(HttpSpanExporter(endpoint=otlp_receiver.traces_url, timeout=10))
    tracer = tracing.get_tracer(provider)
    try:
        with tracer.start_as_current_span(
            telemetry.SPAN_CHECK,
            attributes={
                telemetry.ATTR_CONFIG: "shop/profiling",
                telemetry.ATTR_PODS_SEEN: 2,
                telemetry.ATTR_CAPTURES_PLANNED: 1,
            },
        ) as check:
            with tracer.start_as_current_span(telemetry.SPAN_CAPTURE) as capture:
                capture.set_attributes(
                    {
                        telemetry.ATTR_K8S_NAMESPACE: "shop",
                        telemetry.ATTR_K8S_POD: "web-1",
                        telemetry.ATTR_PROFILE_TYPE: "heap",
                        telemetry.ATTR_TRANSPORT: "direct",
                        telemetry.ATTR_BYTES: 2048,
                        telemetry.ATTR_RESULT: "captured",
                    }
                )
                capture_trace_id = tracing.trace_id_hex(capture)
                with tracer.start_as_current_span(telemetry.SPAN_UPLOAD) as upload:
                    upload.set_attributes(
                        {
                            telemetry.ATTR_STORE: "s3://profiles",
                            telemetry.ATTR_BUCKET: "profiles",
                            telemetry.ATTR_OBJECT_KEY: "shop/web-1/heap.pprof",
                            telemetry.ATTR_URL_FULL: "s3://profiles/shop/web-1/heap.pprof",
                            telemetry.ATTR_BYTES: 2048,
                            telemetry.ATTR_ATTEMPTS: 1,
                            telemetry.ATTR_RESULT: "spooled",
                        }
                    )
            with pytest.raises(ConnectionRefusedError):  # noqa: SIM117 - the span must end inside
                with tracer.start_as_current_span(telemetry.SPAN_CAPTURE) as failed:
                    failed.set_attribute(telemetry.ATTR_K8S_POD, "web-2")
                    raise ConnectionRefusedError("connection refused by 10.0.0.2:6060")
    finally:
        tracing.shutdown(provider)

    spans = otlp_receiver.wait_for(count=4)
    [received_check] = otlp_receiver.by_name(telemetry.SPAN_CHECK)
    assert received_check.parent_span_id is None
    assert received_check.trace_id == tracing.trace_id_hex(check) == capture_trace_id
    assert received_check.attributes == {
        "kprof.config": "shop/profiling",
        "kprof.pods.seen": 2,
        "kprof.captures.planned": 1,
    }
    assert received_check.resource["service.name"] == "kprof"

    captures = {span.attributes["k8s.pod.name"]: span for span in otlp_receiver.children_of(received_check)}
    assert set(captures) == {"web-1", "web-2"}
    assert all(span.name == telemetry.SPAN_CAPTURE for span in captures.values())
    assert captures["web-1"].attributes == {
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "web-1",
        "profile.type": "heap",
        "kprof.transport": "direct",
        "kprof.bytes": 2048,
        "kprof.result": "captured",
    }
    assert captures["web-1"].status_code == "UNSET"
    [received_upload] = otlp_receiver.children_of(captures["web-1"])
    assert received_upload.name == telemetry.SPAN_UPLOAD
    assert received_upload.attributes["url.full"] == "s3://profiles/shop/web-1/heap.pprof"
    assert received_upload.attributes["kprof.attempts"] == 1
    assert received_upload.attributes["kprof.result"] == "spooled"

    failed_capture = captures["web-2"]
    assert failed_capture.status_code == "ERROR"
    assert "connection refused by 10.0.0.2:6060" in failed_capture.status_message
    [(event_name, event_attributes)] = failed_capture.events
    assert event_name == "exception"
    assert event_attributes["exception.type"] == "ConnectionRefusedError"
    assert event_attributes["exception.message"] == "connection refused by 10.0.0.2:6060"
    assert len(spans) == 4


def test_explicit_error_status_is_exported(otlp_receiver: OTLPReceiver) -> None:
    provider = tracing.build_provider(HttpSpanExporter(endpoint=otlp_receiver.traces_url, timeout=10))
    try:
        with tracing.get_tracer(provider).start_as_current_span(telemetry.SPAN_UPLOAD) as upload:
            upload.set_status(Status(StatusCode.ERROR, "s3://profiles: the bucket does not exist"))
    finally:
        tracing.shutdown(provider)
    [span] = otlp_receiver.wait_for(lambda span: span.name == telemetry.SPAN_UPLOAD)
    assert (span.status_code, span.status_message) == ("ERROR", "s3://profiles: the bucket does not exist")


def test_configure_from_environment_exports_to_the_receiver(otlp_receiver: OTLPReceiver) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_SERVICE_NAME": "kprof-test",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.cluster.name=test",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=team%20a",
    }
    provider = tracing.configure(env=env)
    assert provider is not None
    try:
        with tracing.get_tracer(provider).start_as_current_span(telemetry.SPAN_METRICS):
            pass
    finally:
        tracing.shutdown(provider)
    [span] = otlp_receiver.wait_for()
    assert span.name == telemetry.SPAN_METRICS
    assert span.resource["service.name"] == "kprof-test"
    assert span.resource["k8s.cluster.name"] == "test"
    assert otlp_receiver.requests[0].headers.get("x-tenant") == "team a"
    assert otlp_receiver.requests[0].content_type == "application/x-protobuf"


def test_configure_sets_the_global_provider_in_a_fresh_process(otlp_receiver: OTLPReceiver) -> None:
    # A global provider can be set once per process, so this runs where it harms no other test.
    script = textwrap.dedent(
        """
        from kprof_lib.adapters import tracing
        from kprof_lib.execution import telemetry

        provider = tracing.configure(set_global=True)
        assert provider is not None
        with tracing.get_tracer().start_as_current_span(telemetry.SPAN_CHECK) as span:
            span.set_attribute(telemetry.ATTR_CONFIG, "default/kprof")
            print(tracing.trace_id_hex(span))
        tracing.shutdown()
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
            "OTEL_SERVICE_NAME": "kprof-subprocess",
            "NO_PROXY": "127.0.0.1",
            "PYTHONPATH": str(REPOSITORY),
        }
    )
    finished = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    trace_id = finished.stdout.strip()
    assert len(trace_id) == 32

    [span] = otlp_receiver.wait_for(lambda span: span.name == telemetry.SPAN_CHECK)
    assert span.trace_id == trace_id
    assert span.attributes == {"kprof.config": "default/kprof"}
    assert span.resource["service.name"] == "kprof-subprocess"
