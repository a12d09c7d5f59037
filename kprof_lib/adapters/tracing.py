"""OpenTelemetry set-up for kprof's runtimes: off unless asked for, configured from the standard
OTEL_* environment variables, with a private-provider path for tests and embedders.

`configure()` returns None, and leaves OpenTelemetry's no-op global provider in place, unless
OTEL_TRACES_EXPORTER (otlp, console, none; comma-separated), OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; OTEL_SDK_DISABLED=true turns it off whatever else is
set. The SDK and exporters are imported only then, so tracing costs nothing when off. It reads
OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (http/protobuf, the default, or grpc), _ENDPOINT and
_HEADERS, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from `env`; the console exporter writes
JSON on stderr (a command's own output on stdout stays clean), or one line per span with
KPROF_CONSOLE_SPANS=compact; the exporters read their remaining settings (timeout, compression,
certificates) and BatchSpanProcessor its OTEL_BSP_* settings from the process environment
themselves. Spans go through a BatchSpanProcessor; call `shutdown()` before exit to send the last
batch. The provider is made global only with `set_global=True`, as a process can set it once.

Spans and their attributes are named in `kprof_lib.execution.telemetry` and described in
docs/TRACING.md; the capture's trace id (`trace_id_hex`) goes into the profile's metadata, which
leads from a stored profile to its trace.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from kprof_lib.execution.telemetry import TRACER_NAME

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"
EXPORTERS = ("otlp", "console", "none")
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"

# KPROF_CONSOLE_SPANS=compact: the console exporter prints one line per span instead of JSON.
CONSOLE_SPANS_VARIABLE = "KPROF_CONSOLE_SPANS"

_configured: TracerProvider | None = None  # the provider configure() made global, for shutdown()


def configure(
    *, service_name: str = "kprof", env: Mapping[str, str] = os.environ, set_global: bool = False
) -> TracerProvider | None:
    """A TracerProvider exporting as `env` asks, or None when tracing is off. Raises ValueError
    for an unknown exporter or protocol: a tracing setting that is silently ignored is worse than
    a clear stop."""
    global _configured
    exporters = make_exporters(env)
    if not exporters:
        return None
    provider = build_provider(exporters[0], resource=build_resource(env, service_name))
    for exporter in exporters[1:]:
        _add_batch_processor(provider, exporter)
    if set_global:
        trace.set_tracer_provider(provider)
        _configured = provider
    return provider


def make_exporters(env: Mapping[str, str] = os.environ) -> list[SpanExporter]:
    """The span exporters `env` asks for; empty when tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    exporters: list[SpanExporter] = []
    for name in _exporter_names(env):
        if name == "otlp":
            exporters.append(_otlp_exporter(env))
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            if env.get(CONSOLE_SPANS_VARIABLE, "").strip().lower() == "compact":
                exporters.append(ConsoleSpanExporter(out=sys.stderr, formatter=compact_span))
            else:
                exporters.append(ConsoleSpanExporter(out=sys.stderr))
    return exporters


# In every span of a session, or repeated by url.full: left out of the compact lines.
_REPEATED_ATTRIBUTES = frozenset(
    {"k8s.namespace.name", "k8s.pod.name", "kprof.store", "kprof.object.key", "kprof.transport", "kprof.config"}
)


def compact_span(span: Any) -> str:
    """One line per span: name, duration, trace id, status when not OK, then its attributes (less
    those every span of the session repeats)."""
    seconds = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    trace_id = trace.format_trace_id(span.context.trace_id)
    status = span.status.status_code
    text = f"  span {span.name:<13} {seconds:6.2f}s trace={trace_id}"
    if status == trace.StatusCode.ERROR:
        text += f" status=ERROR({span.status.description})"
    attributes = " ".join(
        f"{key}={value}" for key, value in (span.attributes or {}).items() if key not in _REPEATED_ATTRIBUTES
    )
    return f"{text} {attributes}\n"


def build_provider(exporter: SpanExporter, resource: Resource | None = None) -> TracerProvider:
    """A TracerProvider sending every span through a BatchSpanProcessor to `exporter`; not made
    global, so tests and embedders can have their own."""
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=resource or build_resource({}, "kprof"))
    _add_batch_processor(provider, exporter)
    return provider


def build_resource(env: Mapping[str, str], service_name: str = "kprof") -> Resource:
    """The resource describing this process: OTEL_RESOURCE_ATTRIBUTES from `env`, service.name
    from OTEL_SERVICE_NAME, else from those attributes, else `service_name`."""
    from opentelemetry.sdk import resources
    from opentelemetry.sdk.version import __version__ as sdk_version

    attributes: dict[str, Any] = {
        resources.TELEMETRY_SDK_LANGUAGE: "python",
        resources.TELEMETRY_SDK_NAME: "opentelemetry",
        resources.TELEMETRY_SDK_VERSION: sdk_version,
    }
    attributes.update(_key_value_list(env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES"))
    named = env.get("OTEL_SERVICE_NAME", "").strip() or attributes.get(resources.SERVICE_NAME)
    attributes[resources.SERVICE_NAME] = named or service_name
    return resources.Resource(attributes)


def shutdown(provider: TracerProvider | None = None, timeout_millis: int = 30_000) -> None:
    """Send what is still batched and stop `provider` (by default the one made global by
    `configure`); does nothing when tracing is off."""
    global _configured
    target = provider or _configured
    if target is None:
        return
    target.force_flush(timeout_millis=timeout_millis)
    target.shutdown()
    if target is _configured:
        _configured = None


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """kprof's tracer from `provider`, or from the global provider (a no-op one when tracing is off)."""
    return (provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)


def trace_id_hex(span: trace.Span | None) -> str | None:
    """The span's trace id as 32 lowercase hex digits, or None for no span or a no-op one."""
    if span is None:
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id)


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    configured = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if configured:
        names = [name.strip().lower() for name in configured.split(",") if name.strip()]
        unknown = [name for name in names if name not in EXPORTERS]
        if unknown:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(unknown)}; expected {', '.join(EXPORTERS)}"
            )
        return [name for name in dict.fromkeys(names) if name != "none"]
    if _setting(env, "ENDPOINT"):
        return ["otlp"]
    return []


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (_setting(env, "PROTOCOL") or HTTP_PROTOBUF).lower()
    headers = _key_value_list(_setting(env, "HEADERS") or "", "OTEL_EXPORTER_OTLP_HEADERS") or None
    traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if protocol == HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The per-signal endpoint is used as given; the general one gets the signal's path.
        url = traces_endpoint or (endpoint or DEFAULT_HTTP_ENDPOINT).rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=url, headers=headers)
    if protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter(endpoint=traces_endpoint or endpoint or DEFAULT_GRPC_ENDPOINT, headers=headers)
    raise ValueError(f"OTLP protocol {protocol!r} is not supported; use {HTTP_PROTOBUF} or {GRPC}")


def _setting(env: Mapping[str, str], name: str) -> str:
    """An OTLP exporter setting: the traces-specific variable, else the general one."""
    return (env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or "").strip()


def _key_value_list(text: str, variable: str) -> dict[str, str]:
    # The W3C-baggage-like `k=v,k2=v2` form with percent-encoded values that OTEL_* variables use.
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            log.warning("%s: ignoring %r, which is not key=value", variable, item.strip())
            continue
        pairs[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return pairs


def _add_batch_processor(provider: TracerProvider, exporter: SpanExporter) -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(exporter))
