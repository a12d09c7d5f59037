"""Tests of object keys, metadata and tags (kprof_lib.execution.keys): both layouts, templates, and
the sanitising that keeps cluster-controlled names from steering keys or breaking S3's limits."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kprof_lib.execution import keys

CAPTURED = dt.datetime(2026, 11, 25, 10, 0, 0, 123_456, tzinfo=dt.UTC)
SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
TAG_CHARS = re.compile(r"^[A-Za-z0-9 +\-=._:/@]*$")


def key(**overrides: object) -> str:
    fields: dict[str, object] = {
        "namespace": "shop",
        "pod": "web-7d9c-abcde",
        "service": "web",
        "profile_type": "heap",
        "reason": "cpu-threshold",
        "captured_at": CAPTURED,
    }
    fields.update(overrides)
    return keys.object_key(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "shop/web-7d9c-abcde/20261125T100000.123Z/heap.pprof"),
        ({"prefix": "profiles"}, "profiles/shop/web-7d9c-abcde/20261125T100000.123Z/heap.pprof"),
        ({"prefix": "/a//b/"}, "a/b/shop/web-7d9c-abcde/20261125T100000.123Z/heap.pprof"),
        ({"layout": "service-date"}, "2026-11-25/web/shop/web-7d9c-abcde/20261125T100000.123Z-heap.pprof"),
        (
            {"layout": "service-date", "prefix": "prod/eu", "profile_type": "cpu"},
            "prod/eu/2026-11-25/web/shop/web-7d9c-abcde/20261125T100000.123Z-cpu.pprof",
        ),
        (
            {"template": "{prefix}/{reason}/{service}/{date}/{namespace}/{pod}.{timestamp}.{type}.pb.gz", "prefix": "p"},
            "p/cpu-threshold/web/2026-11-25/shop/web-7d9c-abcde.20261125T100000.123Z.heap.pb.gz",
        ),
        ({"template": "{namespace}/{pod}/{timestamp}{type}"}, "shop/web-7d9c-abcde/20261125T100000.123Zheap"),
        # Another time zone is the same instant: keys are always in UTC.
        (
            {"captured_at": dt.datetime(2026, 11, 25, 11, 0, 0, 123_456, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
            "shop/web-7d9c-abcde/20261125T100000.123Z/heap.pprof",
        ),
    ],
    ids=[
        "pod",
        "pod-prefix",
        "prefix-slashes",
        "service-date",
        "service-date-prefix",
        "template",
        "template-minimal",
        "other-timezone",
    ],
)
def test_layouts_and_templates(overrides: dict[str, object], expected: str) -> None:
    assert key(**overrides) == expected


@pytest.mark.parametrize(
    ("field", "value", "expected_segment"),
    [
        ("namespace", "..", "__"),
        ("namespace", ".", "_"),
        ("pod", "../../etc/passwd", ".._.._etc_passwd"),
        ("pod", "/absolute", "_absolute"),
        ("pod", "with space", "with_space"),
        ("pod", "tab\tnew\nline", "tab_new_line"),
        ("pod", "café-ünïcode", "cafe-unicode"),
        ("pod", "日本", "__"),
        ("pod", "", "_"),
        ("pod", "a?b#c%d&e", "a_b_c_d_e"),
        ("namespace", "back\\slash", "back_slash"),
    ],
)
def test_components_are_sanitised(field: str, value: str, expected_segment: str) -> None:
    result = key(**{field: value})
    assert SAFE_KEY.match(result), result
    segments = result.split("/")
    index = {"namespace": 0, "pod": 1}[field]
    assert segments[index] == expected_segment
    assert ".." not in segments and "." not in segments


def test_very_long_names_are_shortened_distinctly_and_keys_fit() -> None:
    first = key(pod="p" * 300 + "-a")
    second = key(pod="p" * 300 + "-b")
    assert first != second, "a hash of the whole name keeps long names apart"
    assert all(len(segment) <= keys.MAX_SEGMENT_CHARS for segment in first.split("/"))
    assert first.endswith("/20261125T100000.123Z/heap.pprof")

    # A template that repeats long fields would exceed 1024 bytes: values shrink until it fits.
    template = "{prefix}/" + "/".join(["{namespace}/{pod}/{service}"] * 3) + "/{timestamp}-{type}.pprof"
    long_key = key(template=template, prefix="x" * 600, namespace="n" * 250, pod="p" * 250, service="s" * 250)
    assert len(long_key.encode()) <= keys.MAX_KEY_BYTES
    assert SAFE_KEY.match(long_key)
    assert long_key.endswith("-heap.pprof")


def test_template_whose_literal_text_is_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 1024 bytes"):
        key(template="a" * 200 + "/" + "/".join(["b" * 250] * 4) + "/{namespace}/{pod}/{timestamp}/{type}")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{prefix}/{node}/{type}", r"\{node\} is unknown"),
        ("{pod}/{}/{type}", r"\{\} is unknown"),
        ("{pod.__class__}/{type}", r"\{pod.__class__\} is unknown"),
        ("{pod!r}/{type}", "no format spec or conversion"),
        ("{pod:>20}/{type}", "no format spec or conversion"),
        ("{namespace}/{pod}/{timestamp}", r"must contain \{type\}"),
        ("{pod}/{timestamp}/{type}", r"must contain \{namespace\}"),
        ("{date}/{service}/{type}", r"must contain \{namespace\}, \{pod\}, \{timestamp\}"),
        ("{pod/{type}", "malformed"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        key(template=template)


def test_unknown_layout_and_naive_time_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown key layout 'by-node'"):
        key(layout="by-node")
    with pytest.raises(ValueError, match="timezone-aware"):
        key(captured_at=dt.datetime(2026, 11, 25, 10, 0))


def test_timestamps_sort_in_time_order() -> None:
    times = [CAPTURED + dt.timedelta(milliseconds=step) for step in (0, 1, 999, 1000, 61_000, 86_400_000)]
    stamps = [keys.format_timestamp(when) for when in times]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps), "captures a millisecond apart get distinct keys"


@given(
    namespace=st.text(max_size=300),
    pod=st.text(max_size=300),
    service=st.text(max_size=300),
    prefix=st.text(max_size=600),
    layout=st.sampled_from(sorted(keys.LAYOUTS)),
)
def test_any_input_gives_a_safe_key(namespace: str, pod: str, service: str, prefix: str, layout: str) -> None:
    result = key(namespace=namespace, pod=pod, service=service, prefix=prefix, layout=layout)
    assert SAFE_KEY.match(result), result
    assert len(result.encode()) <= keys.MAX_KEY_BYTES
    assert not any(set(segment) == {"."} for segment in result.split("/"))


def test_metadata_is_ascii_and_within_limits() -> None:
    metadata = keys.object_metadata(
        namespace="shop",
        pod="wéb-1",
        service="x" * 1000,
        reason="on-demand",
        profile_type="cpu",
        captured_at=CAPTURED,
        trace_id="0AF7651916CD43DD8448EB211C80319C",
    )
    assert metadata == {
        "namespace": "shop",
        "pod": "web-1",
        "service": "x" * keys.MAX_METADATA_VALUE_CHARS,
        "reason": "on-demand",
        "profile-type": "cpu",
        "captured-at": "2026-11-25T10:00:00.123Z",
        "trace-id": "0af7651916cd43dd8448eb211c80319c",
    }
    assert sum(len(k) + len(v) for k, v in metadata.items()) <= keys.MAX_METADATA_BYTES


def test_metadata_without_trace_and_with_bad_trace() -> None:
    metadata = keys.object_metadata(
        namespace="a", pod="b", service="c", reason="d", profile_type="heap", captured_at=CAPTURED
    )
    assert "trace-id" not in metadata
    for bad in ("xyz", "0" * 32, "a" * 31):
        with pytest.raises(ValueError, match="trace id"):
            keys.object_metadata(
                namespace="a", pod="b", service="c", reason="d", profile_type="heap", captured_at=CAPTURED, trace_id=bad
            )


def test_tags_keep_ten_in_order_and_report_the_rest() -> None:
    labels = {f"label-{i:02d}": f"value-{i}" for i in range(15)}
    labels["pod-template-hash"] = "6d8f7c9b4"
    tags, dropped = keys.object_tags(labels)
    assert list(tags) == [f"label-{i:02d}" for i in range(10)]
    assert tags["label-03"] == "value-3"
    # Kubernetes' per-replica label gives way first, then the labels last in key order.
    assert dropped == [f"label-{i:02d}: more than 10 labels" for i in range(10, 15)] + [
        "pod-template-hash: more than 10 labels"
    ]


@pytest.mark.parametrize(
    ("labels", "expected_tags", "expected_dropped"),
    [
        (
            {"app.kubernetes.io/name": "web", "tier": "backend"},
            {"app.kubernetes.io/name": "web", "tier": "backend"},
            [],
        ),
        ({"a;b": "c,d", "ü": "ö"}, {"a_b": "c_d", "u": "o"}, []),
        ({"k" * 129: "v"}, {}, ["k" * 61 + "...: key longer than 128 characters"]),
        ({"k" * 128: "v" * 256}, {"k" * 128: "v" * 256}, []),
        ({"long": "v" * 257}, {}, ["long: value longer than 256 characters"]),
        (
            {"aws:secret": "x", "AWS:other": "y"},
            {},
            ["AWS:other: keys starting with aws: are reserved", "aws:secret: keys starting with aws: are reserved"],
        ),
        ({"": "x"}, {}, [": empty key"]),
        ({"a;b": "1", "a,b": "2"}, {"a_b": "2"}, ["a;b: same tag key as another label after sanitising (a_b)"]),
        ({}, {}, []),
    ],
    ids=["plain", "characters", "long-key", "at-limits", "long-value", "reserved", "empty-key", "clash", "none"],
)
def test_tag_sanitising(labels: dict[str, str], expected_tags: dict[str, str], expected_dropped: list[str]) -> None:
    tags, dropped = keys.object_tags(labels)
    assert tags == expected_tags
    assert dropped == expected_dropped
    assert all(TAG_CHARS.match(k) and TAG_CHARS.match(v) for k, v in tags.items())


@given(st.dictionaries(st.text(max_size=200), st.text(max_size=300), max_size=20))
def test_any_labels_give_tags_within_limits(labels: dict[str, str]) -> None:
    tags, dropped = keys.object_tags(labels)
    assert len(tags) <= keys.MAX_TAGS
    assert len(tags) + len(dropped) == len(labels), "every label is either kept or reported"
    for tag_key, value in tags.items():
        assert 0 < len(tag_key) <= keys.MAX_TAG_KEY_CHARS and len(value) <= keys.MAX_TAG_VALUE_CHARS
        assert TAG_CHARS.match(tag_key) and TAG_CHARS.match(value)
    assert list(tags) == sorted(tags)
    assert keys.object_tags(dict(reversed(list(labels.items())))) == (tags, dropped), "deterministic"
