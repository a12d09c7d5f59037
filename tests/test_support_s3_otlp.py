"""Checks of the S3 server and OTLP receiver test fixtures against the real clients that use them.

Other tests rely on these fixtures to tell them what boto3 stored and what an OTLP exporter sent,
so a fixture that silently lost metadata, parentage or stored objects would hide real defects.
"""

from __future__ import annotations

import gzip
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.support.otlp import OTLPReceiver
from tests.support.s3server import S3Server

# -- OTLP receiver ---------------------------------------------------------------------------------


def _private_provider(receiver: OTLPReceiver, *, batch: bool, compression: Compression) -> TracerProvider:
    # A provider of the test's own, so nothing is installed globally for other tests to inherit.
    provider = TracerProvider(resource=Resource.create({"service.name": "kprof-fixture-check"}))
    exporter = OTLPSpanExporter(endpoint=receiver.traces_url, compression=compression, timeout=10)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


@pytest.mark.parametrize(
    ("batch", "compression"),
    [(False, Compression.Gzip), (True, Compression.NoCompression)],
    ids=["simple-gzip", "batch-plain"],
)
def test_receiver_decodes_parentage_attributes_and_status(
    otlp_receiver: OTLPReceiver, batch: bool, compression: Compression
) -> None:
    provider = _private_provider(otlp_receiver, batch=batch, compression=compression)
    tracer = provider.get_tracer("kprof.fixture-check")
    try:
        with (
            tracer.start_as_current_span(
                "capture", kind=SpanKind.SERVER, attributes={"kprof.pod": "web-1", "kprof.seconds": 2.5}
            ) as parent,
            tracer.start_as_current_span("upload") as child,
        ):
            child.set_attribute("kprof.bytes", 4096)
            child.set_attribute("kprof.retried", True)
            child.set_attribute("kprof.profiles", ["cpu", "heap"])
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "bucket unreachable"))
        provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()

    spans = otlp_receiver.wait_for(count=2)
    assert sorted(span.name for span in spans) == ["capture", "upload"]
    [received_parent] = otlp_receiver.by_name("capture")
    [received_child] = otlp_receiver.children_of(received_parent)

    assert received_parent.trace_id == format(parent.get_span_context().trace_id, "032x")
    assert received_parent.span_id == format(parent.get_span_context().span_id, "016x")
    assert received_parent.parent_span_id is None
    assert received_parent.kind == "SERVER"
    assert received_parent.attributes == {"kprof.pod": "web-1", "kprof.seconds": 2.5}
    assert received_parent.status_code == "UNSET"
    assert received_parent.resource["service.name"] == "kprof-fixture-check"

    assert received_child.name == "upload"
    assert received_child.span_id == format(child.get_span_context().span_id, "016x")
    assert received_child.trace_id == received_parent.trace_id
    assert received_child.kind == "INTERNAL"
    assert received_child.attributes == {
        "kprof.bytes": 4096,
        "kprof.retried": True,
        "kprof.profiles": ["cpu", "heap"],
    }
    assert received_child.status_code == "ERROR"
    assert received_child.status_message == "bucket unreachable"
    assert received_child.events == [("retry", {"attempt": 2})]
    assert received_child.scope == "kprof.fixture-check"
    assert received_parent.start_ns <= received_child.start_ns <= received_child.end_ns

    expected_encoding = "gzip" if compression is Compression.Gzip else ""
    assert {request.content_encoding for request in otlp_receiver.requests} == {expected_encoding}
    assert otlp_receiver.errors == []


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_receiver_accepts_gzipped_otlp_json(otlp_receiver: OTLPReceiver) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-sender"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "json-scope"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "from-json",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "count", "value": {"intValue": "3"}},
                                    {
                                        "key": "labels",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [{"key": "zone", "value": {"stringValue": "a"}}]
                                            }
                                        },
                                    },
                                ],
                                "status": {"code": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    status, content_type, _ = _post(
        otlp_receiver.traces_url,
        gzip.compress(json.dumps(document).encode()),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (status, content_type) == (200, "application/json")

    [span] = otlp_receiver.wait_for(lambda span: span.name == "from-json")
    assert span.trace_id == trace_id
    assert span.span_id == "eee19b7ec3c1b174"
    assert span.parent_span_id == "eee19b7ec3c1b173"
    assert span.kind == "CLIENT"
    assert span.attributes == {"count": 3, "labels": {"zone": "a"}}
    assert span.status_code == "OK"
    assert span.resource == {"service.name": "json-sender"}
    assert (span.start_ns, span.end_ns) == (1544712660000000000, 1544712661000000000)


def test_receiver_answers_protobuf_and_rejects_garbage(otlp_receiver: OTLPReceiver) -> None:
    status, content_type, body = _post(
        otlp_receiver.traces_url, b"", {"Content-Type": "application/x-protobuf"}
    )
    assert (status, content_type) == (200, "application/x-protobuf")
    ExportTraceServiceResponse().ParseFromString(body)

    status, _, _ = _post(
        otlp_receiver.traces_url,
        b"not gzip",
        {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert status == 400
    assert len(otlp_receiver.errors) == 1
    assert otlp_receiver.spans == []


def test_wait_for_reports_what_arrived_when_it_times_out(otlp_receiver: OTLPReceiver) -> None:
    provider = _private_provider(otlp_receiver, batch=False, compression=Compression.NoCompression)
    try:
        with provider.get_tracer("kprof.fixture-check").start_as_current_span("only-this-one"):
            pass
    finally:
        provider.shutdown()
    otlp_receiver.wait_for(count=1)

    with pytest.raises(AssertionError, match="only-this-one"):
        otlp_receiver.wait_for(lambda span: span.name == "never-sent", timeout=0.2)

    otlp_receiver.clear()
    assert otlp_receiver.spans == []


# -- S3 server -------------------------------------------------------------------------------------


def test_objects_show_metadata_tags_and_content_type(s3: S3Server, s3_bucket: str) -> None:
    client = s3.client()
    client.put_object(
        Bucket=s3_bucket,
        Key="profiles/web-1/cpu.pb.gz",
        Body=b"\x1f\x8bprofile",
        Metadata={"pod": "web-1", "profile_type": "cpu"},
        Tagging="kind=cpu&team=core",
        ContentType="application/octet-stream",
    )
    client.put_object(Bucket=s3_bucket, Key="elsewhere.txt", Body=b"x", ContentType="text/plain")

    assert s3.objects(s3_bucket, prefix="profiles/") == [
        {
            "key": "profiles/web-1/cpu.pb.gz",
            "size": 9,
            "metadata": {"pod": "web-1", "profile_type": "cpu"},
            "tags": {"kind": "cpu", "team": "core"},
            "content_type": "application/octet-stream",
        }
    ]
    assert [obj["key"] for obj in s3.objects(s3_bucket)] == ["elsewhere.txt", "profiles/web-1/cpu.pb.gz"]
    assert s3.body(s3_bucket, "profiles/web-1/cpu.pb.gz") == b"\x1f\x8bprofile"


def test_outage_refuses_uploads_and_recovery_keeps_earlier_objects(s3: S3Server, s3_bucket: str) -> None:
    impatient = s3.client(max_attempts=1, connect_timeout=1)
    # Stored through the client used during the outage, so that a pooled connection it kept
    # from before would show up as an upload that wrongly succeeds.
    impatient.put_object(Bucket=s3_bucket, Key="before-outage", Body=b"kept")
    port_before = s3.port

    s3.down()
    with pytest.raises(EndpointConnectionError):
        impatient.put_object(Bucket=s3_bucket, Key="during-outage", Body=b"lost")

    s3.up()
    assert s3.port == port_before
    assert [obj["key"] for obj in s3.objects(s3_bucket)] == ["before-outage"]
    assert s3.body(s3_bucket, "before-outage") == b"kept"
    impatient.put_object(Bucket=s3_bucket, Key="after-outage", Body=b"new")
    assert [obj["key"] for obj in s3.objects(s3_bucket)] == ["after-outage", "before-outage"]


def test_default_credential_chain_sees_only_the_dummy_environment(s3: S3Server, s3_bucket: str) -> None:
    assert not Path(os.environ["AWS_CONFIG_FILE"]).exists()
    assert not Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).exists()
    assert "AWS_PROFILE" not in os.environ

    session = boto3.session.Session()
    assert session.region_name == "us-east-1"
    assert session.get_credentials().get_frozen_credentials().access_key == os.environ["AWS_ACCESS_KEY_ID"]
    # A client built the way code under test builds one (no explicit credentials) can upload.
    session.client("s3", endpoint_url=s3.endpoint_url).put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert [obj["key"] for obj in s3.objects(s3_bucket)] == ["k"]


def test_reset_removes_every_bucket(s3: S3Server, s3_bucket: str) -> None:
    s3.client().put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    s3.reset()
    assert s3.client().list_buckets()["Buckets"] == []
