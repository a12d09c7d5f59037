"""Where a profile goes and what it is labelled with: object keys, S3 user metadata and object tags.

The executor builds every key here, and both stores (S3 and the local directory) take the key as
given, so the two share one layout. Pure: no I/O, no SDK. Every value that comes from a cluster is
sanitised on the way in, so a pod or label cannot steer a key out of its prefix, break S3's limits
or turn into a surprising file name.

Layouts (spec.s3Config.keyLayout):
    pod           {prefix}/{namespace}/{pod}/{timestamp}/{type}.pprof
    service-date  {prefix}/{date}/{service}/{namespace}/{pod}/{timestamp}-{type}.pprof
A keyTemplate replaces the layout; its fields are those of `keytemplates.FIELDS` and it must use
{namespace}, {pod}, {timestamp} and {type} (spec.keytemplates): every key is unique per pod and
capture, so replicas of one service, or a pod of another namespace with the same `app` label,
never write under each other's keys. The stores refuse to overwrite all the same.

`{timestamp}` is the capture time in UTC as `20261125T100000.123Z` (ISO 8601 basic form): it sorts
as text in time order and is safe in keys and file names. Milliseconds are kept because two
captures of one pod and type within a second (an on-demand request right after a threshold
capture, or two replicas of the operator) would otherwise overwrite each other. `{date}` is
`2026-11-25` in UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kprof_lib.spec import keytemplates

if TYPE_CHECKING:
    from kprof_lib.planning.plan import PodDecision
    from kprof_lib.spec.model import KeyLayout

LAYOUTS = {
    "pod": "{prefix}/{namespace}/{pod}/{timestamp}/{type}.pprof",
    "service-date": "{prefix}/{date}/{service}/{namespace}/{pod}/{timestamp}-{type}.pprof",
}

MAX_KEY_BYTES = keytemplates.MAX_KEY_BYTES
MAX_SEGMENT_CHARS = keytemplates.MAX_SEGMENT_CHARS
MAX_COMPONENT_CHARS = 200  # one value (pod name, namespace, ...) before it is shortened
MAX_PREFIX_CHARS = keytemplates.MAX_PREFIX_CHARS

MAX_METADATA_BYTES = 2048  # S3's limit for all user metadata keys and values together
MAX_METADATA_VALUE_CHARS = 256
# The alert name and the capture-now value a user chose: shorter, so every field still fits in 2 KB.
MAX_TRIGGER_CHARS = 128

MAX_TAGS = 10
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
# Labels Kubernetes adds to every replica: they identify a rollout, not the workload, so they are
# the first to give way when a pod has more labels than S3 keeps tags.
LOW_PRIORITY_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
    }
)

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# S3's tag character set, restricted to ASCII letters so every S3-compatible store takes it.
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9 +\-=._:/@]")
_METADATA_UNSAFE = re.compile(r"[^\x20-\x7e]")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def object_key(
    *,
    layout: str = "pod",
    template: str | None = None,
    prefix: str = "",
    namespace: str,
    pod: str,
    service: str,
    profile_type: str,
    reason: str,
    captured_at: dt.datetime,
) -> str:
    """The object key for one profile: `template` if given, else the named `layout`.

    Raises ValueError for an unknown layout, a template with an unknown or malformed field or
    without {type}, a naive `captured_at`, or a template whose literal text alone is too long.
    """
    if template is None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown key layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        template = LAYOUTS[layout]
    keytemplates.fields(template)
    when = _utc(captured_at)
    raw = {"namespace": namespace, "pod": pod, "service": service, "type": profile_type, "reason": reason}
    # Long values are shortened step by step until the whole key fits; the literal text of the
    # template is the only part that cannot shrink.
    for limit in (MAX_COMPONENT_CHARS, 100, 50, keytemplates.SHORTEST_COMPONENT_CHARS):
        values = {name: sanitize_component(value, limit) for name, value in raw.items()}
        values["prefix"] = sanitize_prefix(prefix, limit)
        values["date"] = when.strftime("%Y-%m-%d")
        values["timestamp"] = format_timestamp(when)
        key = _normalise_path(template.format_map(values))
        if keytemplates.fits(key):
            return key
    raise keytemplates.too_long(template)


def capture_key(layout: KeyLayout, decision: PodDecision, profile_type: str, captured_at: dt.datetime) -> str:
    """The key of one file of a pod's capture: its `profile_type` profile, or (with `document_key`)
    the summary and page named like one."""
    return object_key(
        layout=layout.layout,
        template=layout.template,
        prefix=layout.prefix,
        namespace=decision.namespace,
        pod=decision.pod,
        service=decision.service,
        profile_type=profile_type,
        reason=decision.reason,
        captured_at=captured_at,
    )


def format_timestamp(when: dt.datetime) -> str:
    """`20261125T100000.123Z`: UTC, sortable as text, safe in keys and file names."""
    when = _utc(when)
    return when.strftime("%Y%m%dT%H%M%S.") + f"{when.microsecond // 1000:03d}Z"


def format_rfc3339(when: dt.datetime) -> str:
    """`2026-11-25T10:00:00.123Z`, the same instant as the key's timestamp."""
    return _utc(when).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sanitize_component(value: str, limit: int = MAX_COMPONENT_CHARS) -> str:
    """One key segment made of one value: `[A-Za-z0-9._-]` only, never empty, never `.` or `..`.

    Accented letters lose their accents, every other character becomes `_`, and a value longer
    than `limit` keeps its head plus a short hash of the whole, so distinct long values stay
    distinct.
    """
    text = _clean_segment(str(value))
    if len(text) > limit:
        digest = hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        text = text[: max(limit - 9, 1)] + "-" + digest
    return text


def sanitize_prefix(prefix: str, limit: int = MAX_COMPONENT_CHARS) -> str:
    """A key prefix: its `/`-separated segments each sanitised, empty segments dropped, so no
    leading, trailing or doubled slash remains; at most `MAX_PREFIX_CHARS`."""
    segments = [sanitize_component(segment, limit) for segment in str(prefix).split("/") if segment]
    text = "/".join(segments)
    while len(text) > MAX_PREFIX_CHARS and "/" in text:
        text = text.rsplit("/", 1)[0]
    return text[:MAX_PREFIX_CHARS]


def object_metadata(
    *,
    namespace: str,
    pod: str,
    service: str,
    reason: str,
    profile_type: str,
    captured_at: dt.datetime,
    trace_id: str | None = None,
    alert: str | None = None,
    request_value: str | None = None,
) -> dict[str, str]:
    """S3 user metadata for one profile: printable ASCII values of at most 256 characters, 2 KB in
    all. `trace-id` is present only when `trace_id` is given (32 hex digits, not all zero); `alert`
    (the alert's name) and `capture-now` (the annotation value served) only when given, each cut
    to `MAX_TRIGGER_CHARS`."""
    given = {"namespace": namespace, "pod": pod, "service": service, "reason": reason, "profile-type": profile_type}
    metadata = {name: _metadata_value(value) for name, value in given.items()}
    for name, value in (("alert", alert), ("capture-now", request_value)):
        if value:
            metadata[name] = _metadata_value(value)[:MAX_TRIGGER_CHARS]
    metadata["captured-at"] = format_rfc3339(captured_at)
    if trace_id:
        normalised = trace_id.strip().lower()
        if not _TRACE_ID.match(normalised) or normalised == "0" * 32:
            raise ValueError(f"trace id {trace_id!r} is not 32 hexadecimal digits of a valid trace")
        metadata["trace-id"] = normalised
    # With these keys and the per-value limit the total stays below 2 KB; the check keeps it so
    # if fields are ever added.
    if _metadata_size(metadata) > MAX_METADATA_BYTES:
        raise ValueError(f"object metadata exceeds {MAX_METADATA_BYTES} bytes")
    return metadata


def object_tags(labels: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Object tags from a pod's labels, within S3's limits, and what could not be kept.

    Characters S3 does not allow in tags become `_`. A label is dropped when its key is longer
    than 128 characters, its value longer than 256, its key is empty or in the reserved `aws:`
    namespace, or it clashes with another label after sanitising. At most 10 tags are kept:
    labels are taken in key order, the per-replica ones of `LOW_PRIORITY_LABELS` last. `dropped`
    lists `"<label key>: <why>"` in the same order, for one log line.
    """
    ordered = sorted(labels.items(), key=lambda item: (str(item[0]) in LOW_PRIORITY_LABELS, str(item[0])))
    tags: dict[str, str] = {}
    dropped: list[str] = []
    for raw_key, raw_value in ordered:
        label = str(raw_key)
        key = _tag_text(label)
        value = _tag_text("" if raw_value is None else str(raw_value))
        if not key:
            why = "empty key"
        elif key.lower().startswith("aws:"):
            why = "keys starting with aws: are reserved"
        elif len(key) > MAX_TAG_KEY_CHARS:
            why = f"key longer than {MAX_TAG_KEY_CHARS} characters"
        elif len(value) > MAX_TAG_VALUE_CHARS:
            why = f"value longer than {MAX_TAG_VALUE_CHARS} characters"
        elif key in tags:
            why = f"same tag key as another label after sanitising ({key})"
        elif len(tags) >= MAX_TAGS:
            why = f"more than {MAX_TAGS} labels"
        else:
            tags[key] = value
            continue
        shown = label if len(label) <= 64 else label[:61] + "..."
        dropped.append(f"{shown}: {why}")
    return dict(sorted(tags.items())), dropped


def _normalise_path(key: str) -> str:
    # Field values are clean already; this cleans the template's own text and the joints between
    # fields (an empty prefix leaves a leading slash to drop).
    return "/".join(_clean_segment(segment) for segment in key.split("/") if segment)


def _clean_segment(text: str) -> str:
    cleaned = _KEY_UNSAFE.sub("_", _strip_accents(text))
    if not cleaned:
        return "_"
    if set(cleaned) == {"."}:
        # "." and ".." would walk the directory tree in a local store and in many S3 tools.
        return "_" * len(cleaned)
    return cleaned


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("captured_at must be timezone-aware")
    return when.astimezone(dt.UTC)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _metadata_value(value: str) -> str:
    text = _METADATA_UNSAFE.sub("_", _strip_accents(str(value))).strip()
    return text[:MAX_METADATA_VALUE_CHARS]


def _metadata_size(metadata: Mapping[str, str]) -> int:
    return sum(len(key.encode()) + len(value.encode()) for key, value in metadata.items())


def _tag_text(text: str) -> str:
    return _TAG_UNSAFE.sub("_", _strip_accents(text))


def document_key(named_key: str, suffix: str) -> str:
    """A capture's document (summary `.json`, page `.html`) from the key `object_key` builds for
    the capture with the document's name as profile type: `.pprof` becomes `suffix`, so that it
    lies beside the profiles (`…/20261201T…Z/summary.json` in the pod layout,
    `…/20261201T…Z-summary.json` in service-date)."""
    stem = named_key[: -len(".pprof")] if named_key.endswith(".pprof") else named_key
    return stem + suffix


def document_metadata(profile_metadata: Mapping[str, str], kind: str, tops: Mapping[str, str]) -> dict[str, str]:
    """S3 user metadata for a capture's summary or page: the metadata of its profiles (pod, reason,
    time, trace), `profile-type` set to `kind`, and `top-<type>` for each profile type, e.g.
    `top-cpu: main.spin 78.1%`. Within S3's 2 KB: each top is cut to 120 characters, and types
    that would not fit are left out (cpu, heap and goroutine first)."""
    metadata = {**profile_metadata, "profile-type": _metadata_value(kind)}
    order = sorted(tops, key=lambda t: (_TOP_ORDER.index(t) if t in _TOP_ORDER else len(_TOP_ORDER), t))
    for profile_type in order:
        name = "top-" + _clean_segment(profile_type)[:40]
        value = _metadata_value(tops[profile_type])[:MAX_TOP_CHARS]
        if _metadata_size({**metadata, name: value}) <= MAX_METADATA_BYTES:
            metadata[name] = value
    return metadata


MAX_TOP_CHARS = 120
_TOP_ORDER = ("cpu", "heap", "goroutine", "allocs", "mutex", "block", "threadcreate")
