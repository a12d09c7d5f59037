"""Each capture's `summary.json` and `index.html`, stored beside its profiles once they are
stored: what was hot per profile type (`profiles.summary`), the flame-graph page
(`profiles.page`), and the top functions for the pod's Event and the config's status. The check
cycle and `kprof capture` call `write` after the executor, off the capture's critical section: no
pod is held any more and the in-flight byte budget has been given back.

The profiles' bytes come from `Keeping`, the store the executor is given: it passes every put on
and keeps a reference to each stored profile (no copy), so nothing is downloaded again.

Bounded, so that a big or hostile profile cannot take the process down or hold a core:
- memory: a profile larger than `MAX_PROFILE_BYTES` (8 MiB, as stored) is not kept, and a process
  keeps at most `RETAIN_BYTES` (64 MiB) for summaries in all; profiles are decoded one at a time
  (capped at `MAX_DECODED_BYTES` decompressed) and let go once summarised;
- CPU: the summaries of every check of the process are computed one after another (at most one
  core), and once a capture's summary has spent `TIME_BUDGET` seconds its remaining profiles are
  left out. A profile left out is named under the summary's `errors` with the reason.
Failures are logged (`summary-failed`) and named in the result; they never touch the profiles,
which are stored before any of this starts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import trace

from kprof_lib import profiles
from kprof_lib.execution import budget, keys, redact, results, telemetry
from kprof_lib.execution.ports import ForwardingStore, ProfileStore, StoredObject, StoreError
from kprof_lib.planning.plan import (
    ALERT,
    BASELINE,
    CPU_THRESHOLD,
    MEMORY_THRESHOLD,
    ON_DEMAND,
    REQUESTED,
    THRESHOLD_REASONS,
    Plan,
    PodDecision,
)
from kprof_lib.profiles import diff as diff_
from kprof_lib.profiles import flame, page, text
from kprof_lib.profiles import summary as summaries
from kprof_lib.state.cluster import HEALTHY_KEY, HEALTHY_TIME_KEY, WORKLOAD_KEY, parse_time

log = logging.getLogger("kprof.summary")

MiB = 1 << 20
MAX_PROFILE_BYTES = 8 * MiB
MAX_DECODED_BYTES = 128 * MiB
RETAIN_BYTES = 64 * MiB
TIME_BUDGET = 10.0
SUMMARY = "summary"  # the summary's key name and its metadata's profile-type
PAGE = "index"  # the page's key name
PAGE_KIND = "page"  # the page's metadata profile-type
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
TOP_COUNT = 3

# One summary at a time in the whole process: summaries are worth having, not worth a second core.
_ONE_AT_A_TIME = threading.Lock()


# Bytes that may be kept for summaries at once, across every check of the process; a profile that
# finds them in use is not waited for, only left out of its summary.
RETAINED = budget.ByteBudget(RETAIN_BYTES)


@dataclass
class Kept:
    """A profile the store took: its metadata, and its bytes unless they were not kept (`why`)."""

    metadata: dict[str, str]
    size: int
    data: bytes | None = None
    why: str | None = None


class Keeping(ForwardingStore):
    """A `ProfileStore` in front of `inner` that remembers what was stored, for `write`.
    Thread-safe (the executor stores from several threads); `release()` lets the bytes go."""

    def __init__(
        self,
        inner: ProfileStore,
        *,
        allowance: budget.ByteBudget | None = None,
        max_profile_bytes: int = MAX_PROFILE_BYTES,
    ) -> None:
        super().__init__(inner)
        self.allowance = allowance or RETAINED
        self.max_profile_bytes = max_profile_bytes
        self.kept: dict[str, Kept] = {}
        self._held = budget.Holding(self.allowance)
        self._lock = threading.Lock()

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        stored = self.inner.put(key, data, metadata=metadata, tags=tags, content_type=content_type)
        kept = Kept(dict(metadata), len(data))
        with self._lock:
            if len(data) > self.max_profile_bytes:
                kept.why = f"not summarised: {len(data)} bytes, more than the summary limit of {self.max_profile_bytes}"
            else:
                try:
                    self._held.reserve(len(data), deadline=0.0)  # now or not at all
                    kept.data = data
                except budget.BudgetExhausted:
                    kept.why = f"not summarised: the {self.allowance.limit} bytes kept for summaries were in use"
            self.kept[key] = kept
        return stored

    def release(self) -> None:
        with self._lock:
            self._held.release()
            self.kept.clear()


@dataclass
class CaptureSummary:
    """What `write` did for one captured pod: where the capture's folder is (`uri`), where its
    summary went, the top functions per type ({type: [(function, flat share)]}) and any error."""

    pod: str
    uri: str
    summary_uri: str | None = None
    page_uri: str | None = None
    tops: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    spooled: bool = False
    error: str | None = None
    summary: dict[str, Any] | None = None
    grower: str | None = None  # what grew most since the baseline, e.g. "cpu main.spin +41.0 pts"
    # History fields that make this capture its workload's healthy baseline (see `baseline_for`).
    history_fields: dict[str, str] = field(default_factory=dict)

    def hot(self) -> str:
        """`main.spin 78%, runtime.mallocgc 6%, crypto/sha256.block 4%`: the CPU profile's top
        functions, else those of the first type that has any."""
        kind = "cpu" if self.tops.get("cpu") else next((k for k in sorted(self.tops) if self.tops[k]), None)
        if kind is None:
            return ""
        text = summaries.hot_text(self.tops[kind])
        return text if kind == "cpu" else f"{kind}: {text}"

    def to_status(self) -> dict[str, Any]:
        """The config status' `lastCapture`."""
        capture = (self.summary or {}).get("capture", {})
        status: dict[str, Any] = {
            "time": capture.get("capturedAt", ""),
            "pod": self.pod,
            "reason": capture.get("reason", ""),
            "uri": self.uri,
            "topFunctions": {
                kind: [{"name": name, "share": share} for name, share in rows]
                for kind, rows in sorted(self.tops.items())
            },
        }
        if self.grower:
            status["topGrower"] = self.grower
        return {k: v for k, v in status.items() if v not in ("", None)}


def write(
    plan: Plan,
    execution: results.ExecutionReport,
    keeping: Keeping,
    *,
    tracer: trace.Tracer | None = None,
    time_budget: float = TIME_BUDGET,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
    config_name: str | None = None,
    history: Mapping[str, Any] | None = None,
    jaeger_url: str | None = None,
) -> dict[str, CaptureSummary]:
    """Summarises and stores the summary and page of every captured pod; {"ns/pod": CaptureSummary}.
    `history` is the capture history the check read: a threshold capture is compared with the
    latest healthy capture of its workload found there, and a healthy capture's `history_fields`
    make it that reference. With `jaeger_url`, each page links its trace there. Never raises for
    one pod's failure; lets the kept bytes go before returning."""
    tracer = tracer or trace.get_tracer(telemetry.TRACER_NAME)
    decisions = {d.key: d for d in plan.captures}
    done: dict[str, CaptureSummary] = {}
    try:
        for result in execution.results:
            if result.status != results.CAPTURED:
                continue  # most of a big plan: nothing was due
            decision = decisions.get(result.key)
            kept = [p for p in result.profiles if p.status in (results.STORED, results.SPOOLED) and p.key]
            if decision is None or not kept:
                continue
            with _ONE_AT_A_TIME, tracer.start_as_current_span(telemetry.SPAN_SUMMARY) as span:
                span.set_attributes(
                    {telemetry.ATTR_K8S_NAMESPACE: result.namespace, telemetry.ATTR_K8S_POD: result.pod}
                )
                base = baseline_for(decision, history) if decision.reason in THRESHOLD_REASONS else None
                try:
                    summary = _one(plan, decision, kept, keeping, time_budget, max_decoded_bytes, base, jaeger_url)
                except Exception as error:
                    message = redact.text(f"{type(error).__name__}: {error}")
                    span.set_status(trace.Status(trace.StatusCode.ERROR, message))
                    span.set_attribute(telemetry.ATTR_RESULT, results.FAILED)
                    summary = CaptureSummary(result.key, _folder(kept[0].uri or ""), error=message)
                else:
                    span.set_attribute(telemetry.ATTR_RESULT, results.SPOOLED if summary.spooled else results.STORED)
                    if summary.summary_uri:
                        span.set_attribute(telemetry.ATTR_URL_FULL, redact.text(summary.summary_uri))
                done[result.key] = summary
                if summary.error:
                    failed = {"config": config_name, "pod": result.key, "action": "summary-failed"}
                    log.warning(
                        "summary-failed %s: %s (the profiles are stored)",
                        result.key,
                        summary.error,
                        extra={**failed, "detail": summary.error},
                    )
    finally:
        keeping.release()
    return done


def _one(
    plan: Plan,
    decision: PodDecision,
    kept: list[results.ProfileResult],
    keeping: Keeping,
    time_budget: float,
    max_decoded_bytes: int,
    base: Baseline | None = None,
    jaeger_url: str | None = None,
) -> CaptureSummary:
    started = time.monotonic()
    parts: dict[str, dict[str, Any]] = {}
    flames: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    metadata: dict[str, str] = {}
    compared: dict[str, Any] = {}
    base_errors: dict[str, str] = {}
    for profile in kept:
        assert profile.key is not None
        held = keeping.kept.get(profile.key)
        if held is None:
            errors[profile.type] = "not summarised: its bytes were not kept"
            continue
        metadata = metadata or held.metadata
        if held.data is None:
            errors[profile.type] = held.why or "not summarised"
            continue
        if time.monotonic() - started > time_budget:
            errors[profile.type] = f"not summarised: the summary's time budget of {time_budget:g} s was spent"
            continue
        file = profile.key.rsplit("/", 1)[-1]
        try:
            decoded = profiles.decode(held.data, max_decoded_bytes=max_decoded_bytes)
        except profiles.ProfileError as error:
            errors[profile.type] = f"{file}: {error}"
            continue
        parts[profile.type] = summaries.profile_part(file, held.size, decoded)
        if decoded.sample_types:
            flames[profile.type] = flame.tree(decoded)
        if base is not None and profile.type in base.keys:
            try:
                before = _read_base(keeping, base.keys[profile.type], max_decoded_bytes)
                compared[profile.type] = diff_.compare_profile(profile.type, before, decoded)
                del before
            except (StoreError, profiles.ProfileError, KeyError) as error:
                base_errors[profile.type] = redact.text(str(error))
        del decoded  # one decoded profile (and one of the baseline) at a time
    try:
        captured_at = parse_time(metadata.get("captured-at", ""))
    except ValueError:
        # The time is in every key of the capture: without it the summary cannot be put beside them.
        raise RuntimeError("the profiles' metadata (captured-at) was not kept by the store") from None

    def key_for(name: str, suffix: str) -> str:
        return keys.document_key(keys.capture_key(plan.key_layout, decision, name, captured_at), suffix)

    summary_key, page_key = key_for(SUMMARY, ".json"), key_for(PAGE, ".html")
    folder = _folder(keeping.uri_for(summary_key))
    facts = _facts(decision, metadata, folder)
    if jaeger_url and facts["traceId"]:
        facts["traceUrl"] = page.trace_url(jaeger_url, facts["traceId"])
    summary = summaries.assemble(parts, capture=facts, errors=errors)
    compare = None
    if base is not None:
        missing = sorted((set(base.keys) | set(parts)) - set(compared) - set(base_errors))
        compare = {"types": compared, "missing": missing}
        summary["baseline"] = {"uri": base.uri, "capturedAt": base.captured_at, "pod": base.pod}
        summary["diff"] = {**compare, "errors": base_errors}
    tops = summaries.top_functions(summary, count=TOP_COUNT)
    result = CaptureSummary(decision.key, folder, tops=tops, summary=summary)
    if compare is not None:
        result.grower = grower_text(compare)
    elif decision.reason in (ON_DEMAND, BASELINE) and not decision.crossed and parts:
        # Taken while no threshold was seen crossed: the workload's healthy reference from now on.
        reference = {
            "uri": folder,
            "capturedAt": facts.get("capturedAt", ""),
            "service": decision.service,
            "keys": {p.type: p.key for p in kept if p.type in parts and p.key},
        }
        result.history_fields = {
            HEALTHY_KEY: json.dumps(reference, separators=(",", ":"), sort_keys=True),
            HEALTHY_TIME_KEY: str(facts.get("capturedAt", "")),
            WORKLOAD_KEY: decision.service,
        }
    top_texts = {kind: summaries.hot_text(rows[:1]) for kind, rows in tops.items() if rows}
    tags, _ = keys.object_tags(decision.labels)
    problems = []
    for key, body, kind, content_type in (
        (summary_key, json.dumps(summary, indent=1).encode(), SUMMARY, JSON_TYPE),
        (page_key, page.render(summary, flames, diff=compare).encode(), PAGE_KIND, HTML_TYPE),
    ):
        try:
            stored = keeping.inner.put(
                key,
                body,
                metadata=keys.document_metadata(metadata, kind, top_texts),
                tags=tags,
                content_type=content_type,
            )
        except StoreError as error:
            problems.append(redact.text(str(error)))
            continue
        result.spooled = result.spooled or stored.spooled
        if kind == SUMMARY:
            result.summary_uri = stored.uri
        else:
            result.page_uri = stored.uri
    if problems:
        result.error = "; ".join(problems)
    else:
        log.info(
            "summary %s: %s",
            decision.key,
            result.summary_uri,
            extra={"pod": decision.key, "action": "summary", "reason": decision.reason, "detail": result.hot()},
        )
    return result


def _facts(decision: PodDecision, metadata: Mapping[str, str], folder: str) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "namespace": decision.namespace,
        "pod": decision.pod,
        "service": decision.service,
        "reason": decision.reason,
        "reasons": list(decision.reasons),
        "capturedAt": metadata.get("captured-at", ""),
        "uri": folder,
        "traceId": metadata.get("trace-id", ""),
    }
    if decision.thresholds is not None:
        facts["thresholds"] = {
            "cpuPercent": decision.thresholds.cpu_percent,
            "memoryPercent": decision.thresholds.memory_percent,
        }
    if decision.observed is not None:
        facts["usage"] = {k: v for k, v in decision.observed.to_dict().items() if v is not None}
    return {k: v for k, v in facts.items() if v not in ("", None, [], {})}


def _folder(uri: str) -> str:
    """The capture's folder as `kprof ls` and `kprof show` name it, from the URI of its summary (or
    of a profile): the `s3://…/` prefix, or the local directory for a `file://` URI."""
    name = SUMMARY + ".json"
    head = uri[: -len(name)] if uri.endswith(name) else uri.rsplit("/", 1)[0] + "/"
    return unquote(urlsplit(head).path) if head.startswith("file://") else head


def headline(decision: PodDecision, written: CaptureSummary | None) -> str:
    """One line for the pod's Event and the terminal: why (with the usage that crossed), what was
    hot, and where the capture is, e.g. `cpu-threshold (92% of request): main.spin 78%,
    runtime.mallocgc 6%, crypto/sha256.block 4% — s3://bucket/prefix/shop/api-0/20261201T…/`."""
    why = ", ".join(_reason_text(reason, decision) for reason in decision.reasons or (decision.reason,))
    if written is None:
        return why
    hot = written.hot()
    text = f"{why}: {hot}" if hot else why
    if written.grower:
        text += f"; grew most since the baseline: {written.grower}"
    return f"{text} — {written.uri}"


def _reason_text(reason: str, decision: PodDecision) -> str:
    if reason == REQUESTED and decision.request_value is not None:
        return f"{reason} (capture-now={decision.request_value})"
    if reason == ALERT and decision.alert is not None:
        return f"{reason} ({decision.alert})"
    usage = decision.observed
    share = None
    if usage is not None and reason == CPU_THRESHOLD:
        share = usage.cpu_percent
    elif usage is not None and reason == MEMORY_THRESHOLD:
        share = usage.memory_percent
    return f"{reason} ({share:.0f}% of request)" if share is not None else reason


@dataclass(frozen=True)
class Baseline:
    """A workload's latest healthy capture: its folder, when, which pod, {type: key} of its profiles."""

    uri: str
    captured_at: str
    pod: str
    keys: dict[str, str]


def baseline_for(decision: PodDecision, history: Mapping[str, Any] | None) -> Baseline | None:
    """The latest healthy capture of the decision's workload (same namespace and service) in the
    capture history, from any of its pods; None when there is none."""
    found: Baseline | None = None
    for pod_key, entry in (history or {}).items():
        if not isinstance(entry, Mapping) or not str(pod_key).startswith(decision.namespace + "/"):
            continue
        try:
            reference = json.loads(entry.get(HEALTHY_KEY) or "null")
        except (TypeError, ValueError):
            continue
        if not isinstance(reference, dict) or reference.get("service") != decision.service:
            continue
        keys_ = reference.get("keys")
        if not isinstance(keys_, dict) or not all(isinstance(v, str) for v in keys_.values()):
            continue
        at = str(reference.get("capturedAt", ""))
        if found is None or at > found.captured_at:
            found = Baseline(str(reference.get("uri", "")), at, str(pod_key), {str(k): v for k, v in keys_.items()})
    return found


def grower_text(compare: Mapping[str, Any]) -> str | None:
    """`cpu main.spin +41.0 pts`, `heap main.leak +120.0MiB`, `goroutine main.wait +300`: the
    first growth row of cpu, heap or goroutine (`diff.top_grower`), with how much it grew."""
    found = diff_.top_grower(compare)
    if found is None:
        return None
    kind, name = found
    part = compare["types"][kind]
    delta = part["growth"][0]["delta"]
    shares = part["measure"] == "flatShare"
    return f"{kind} {name} " + (f"+{delta * 100:.1f} pts" if shares else "+" + text.quantity(delta, part["unit"]))


def _read_base(keeping: Keeping, key: str, max_decoded_bytes: int) -> profiles.Profile:
    return profiles.decode(keeping.read(key, keeping.max_profile_bytes), max_decoded_bytes=max_decoded_bytes)
