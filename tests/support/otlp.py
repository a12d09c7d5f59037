"""An OTLP/HTTP trace receiver on 127.0.0.1 that decodes what exporters send it, plus its fixture.

Tests of kprof's tracing point a real OTLP exporter at `otlp_receiver.traces_url` and then look
at the spans as plain `Span` records: ids as hex strings, attribute values as Python values,
status and kind as short names. The receiver takes OTLP/protobuf (as the HTTP exporter sends it)
and OTLP/JSON, either one plain, gzip- or deflate-compressed, and answers as a collector would.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass
class Span:
    """One received span, in the terms a test asserts on."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    attributes: dict[str, Any]
    status_code: str
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    scope: str = ""


@dataclass
class ReceivedRequest:
    """What one export request looked like on the wire, for tests of the exporter's settings."""

    content_type: str
    content_encoding: str
    span_count: int
    headers: dict[str, str] = field(default_factory=dict)


def any_value_to_python(value: AnyValue) -> Any:
    """Unwrap an OTLP AnyValue: arrays become lists and key-value lists become dicts."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}


def _short_enum_name(enum_type: Any, number: int, prefix: str) -> str:
    return enum_type.Name(number).removeprefix(prefix)


def decode_request(request: ExportTraceServiceRequest) -> list[Span]:
    """Flatten an export request into `Span` records, each carrying its resource and scope."""
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for proto in scope_spans.spans:
                spans.append(
                    Span(
                        name=proto.name,
                        trace_id=proto.trace_id.hex(),
                        span_id=proto.span_id.hex(),
                        parent_span_id=proto.parent_span_id.hex() or None,
                        kind=_short_enum_name(ProtoSpan.SpanKind, proto.kind, "SPAN_KIND_"),
                        attributes=attributes_to_dict(proto.attributes),
                        status_code=_short_enum_name(
                            ProtoStatus.StatusCode, proto.status.code, "STATUS_CODE_"
                        ),
                        status_message=proto.status.message,
                        events=[(event.name, attributes_to_dict(event.attributes)) for event in proto.events],
                        resource=resource,
                        start_ns=proto.start_time_unix_nano,
                        end_ns=proto.end_time_unix_nano,
                        scope=scope_spans.scope.name,
                    )
                )
    return spans


def _hex_ids_to_base64(otlp_json: dict[str, Any]) -> None:
    # OTLP/JSON writes trace and span ids as hex, while protobuf's JSON mapping of a bytes field
    # expects base64; convert in place before handing the document to json_format.
    def convert(holder: dict[str, Any]) -> None:
        for key in ("traceId", "spanId", "parentSpanId"):
            if holder.get(key):
                holder[key] = base64.b64encode(bytes.fromhex(holder[key])).decode("ascii")

    for resource_spans in otlp_json.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                convert(span)
                for link in span.get("links", []):
                    convert(link)


def parse_body(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Parse an uncompressed OTLP trace export body of the given media type."""
    request = ExportTraceServiceRequest()
    if content_type == JSON:
        document = json.loads(body)
        _hex_ids_to_base64(document)
        json_format.ParseDict(document, request)
    elif content_type == PROTOBUF:
        request.ParseFromString(body)
    else:
        raise ValueError(f"unsupported Content-Type {content_type!r}")
    return request


def decompress(body: bytes, content_encoding: str) -> bytes:
    if content_encoding in ("", "identity"):
        return body
    if content_encoding == "gzip":
        return gzip.decompress(body)
    if content_encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {content_encoding!r}")


class _ExportHandler(BaseHTTPRequestHandler):
    # HTTP/1.0 closes each connection after its answer, so no handler thread outlives stop().
    protocol_version = "HTTP/1.0"
    server: _ReceiverHTTPServer

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._answer(404, "text/plain", b"only " + TRACES_PATH.encode() + b" is served\n")
            return
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        content_encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            body = decompress(self._read_body(), content_encoding)
            request = parse_body(body, content_type)
        except Exception as error:  # any malformed input is the sender's fault: report, don't crash
            self.server.receiver._record_error(f"{type(error).__name__}: {error}")
            self._answer(400, "text/plain", f"cannot decode export request: {error}\n".encode())
            return
        spans = decode_request(request)
        self.server.receiver._record(
            ReceivedRequest(
                content_type=content_type,
                content_encoding=content_encoding,
                span_count=len(spans),
                headers=dict(self.headers.items()),
            ),
            spans,
        )
        if content_type == JSON:
            self._answer(200, JSON, json_format.MessageToJson(ExportTraceServiceResponse()).encode())
        else:
            self._answer(200, PROTOBUF, ExportTraceServiceResponse().SerializeToString())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Skip any trailer lines up to the blank line that ends the message.
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _answer(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # One stderr line per export would drown test output; failures are kept in `errors`.
        pass


class _ReceiverHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: OTLPReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _ExportHandler)
        self.receiver = receiver


class OTLPReceiver:
    """Receives OTLP/HTTP trace exports on a loopback port and keeps the decoded spans."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._spans: list[Span] = []
        self._requests: list[ReceivedRequest] = []
        self._errors: list[str] = []
        self._server = _ReceiverHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def traces_url(self) -> str:
        return self.endpoint + TRACES_PATH

    @property
    def spans(self) -> list[Span]:
        """The spans received so far, in arrival order (a copy)."""
        with self._changed:
            return list(self._spans)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """One record per decoded export request (a copy)."""
        with self._changed:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Why each rejected request could not be decoded (a copy)."""
        with self._changed:
            return list(self._errors)

    def wait_for(
        self,
        predicate: Callable[[Span], bool] | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Span]:
        """Wait until at least `count` received spans satisfy `predicate`; return those spans.

        Raises AssertionError naming everything received if they do not arrive within `timeout`.
        """
        matches = predicate or (lambda span: True)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                selected = [span for span in self._spans if matches(span)]
                remaining = deadline - time.monotonic()
                if len(selected) >= count or remaining <= 0:
                    break
                self._changed.wait(remaining)
            if len(selected) >= count:
                return selected
            received = [(span.name, span.span_id, span.parent_span_id) for span in self._spans]
            errors = list(self._errors)
        raise AssertionError(
            f"expected {count} matching span(s) within {timeout}s, got {len(selected)}; "
            f"received (name, span_id, parent_span_id): {received}; decode errors: {errors}"
        )

    def by_name(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]

    def children_of(self, parent: Span) -> list[Span]:
        return [
            span
            for span in self.spans
            if span.trace_id == parent.trace_id and span.parent_span_id == parent.span_id
        ]

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()
            self._requests.clear()
            self._errors.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _record(self, request: ReceivedRequest, spans: list[Span]) -> None:
        with self._changed:
            self._requests.append(request)
            self._spans.extend(spans)
            self._changed.notify_all()

    def _record_error(self, message: str) -> None:
        with self._changed:
            self._errors.append(message)
            self._changed.notify_all()


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    """A running OTLP/HTTP trace receiver for one test; point exporters at `.traces_url`."""
    receiver = OTLPReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()
