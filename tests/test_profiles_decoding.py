"""The pprof reader against `go tool pprof` on profiles of the real Go sample app: for every
profile type and sample type the top-N functions, their flat and cum values and the total are the
ones `go tool pprof -top -nodecount=N` prints for the same file. Plus the reader's handling of
broken input: each error names the field at fault."""

from __future__ import annotations

import gzip

import pytest

from kprof_lib.profiles import ProfileError, decode, top
from tests import profiles_support
from tests.support.goapp import GoApp

N = 15
CASES = [
    ("cpu", None),
    ("cpu", "samples"),
    ("heap", None),  # inuse_space: Go names no default, pprof shows the last type
    ("heap", "alloc_space"),
    ("heap", "inuse_objects"),
    ("allocs", None),  # alloc_space: the allocs profile names it as default
    ("goroutine", None),
    ("mutex", None),
    ("mutex", "contentions"),
    ("block", None),
    ("block", "contentions"),
]


@pytest.fixture(scope="module")
def captured(sample_app_binary, tmp_path_factory):
    folder = tmp_path_factory.mktemp("profiles")
    with GoApp(sample_app_binary) as app:
        return profiles_support.capture_all(app, folder)


@pytest.mark.parametrize(("kind", "sample_index"), CASES, ids=[f"{k}-{s or 'default'}" for k, s in CASES])
def test_top_equals_go_tool_pprof(captured, kind, sample_index):
    path = captured[kind]
    total, expected = profiles_support.pprof_top(path, N, sample_index)
    profile = decode(path.read_bytes())
    index = profile.sample_type_index(sample_index)
    rows = top.entries(profile, sample_index)
    assert total == profile.total(index)
    assert expected, f"go tool pprof shows no rows for {kind}: the load did not reach this profile"
    # pprof first drops nodes whose cum is below 0.5% of the total (-nodefraction), then takes N.
    cutoff = abs(int(total * 0.005))
    kept = [(r.name, r.flat, r.cum) for r in rows if abs(r.cum) >= cutoff]
    assert kept[:N] == expected


def test_sample_types_and_defaults(captured):
    heap = decode(captured["heap"].read_bytes())
    cpu = decode(captured["cpu"].read_bytes())
    allocs = decode(captured["allocs"].read_bytes())
    assert [(t.type, t.unit) for t in heap.sample_types] == [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]
    assert (heap.default_sample_type, allocs.default_sample_type, cpu.default_sample_type) == (
        "inuse_space",
        "alloc_space",
        "cpu",
    )
    assert cpu.period_type is not None and (cpu.period_type.type, cpu.period) == ("cpu", 10_000_000)
    assert 1.9e9 < cpu.duration_nanos < 3e9


def test_plain_protobuf_reads_like_gzip(captured):
    data = captured["cpu"].read_bytes()
    assert decode(gzip.decompress(data)).values == decode(data).values


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x1f\x8b\x08\x00garbage", "gzip:"),
        (gzip.compress(b"\x0a\x05\x08\x01", mtime=0), "not a pprof profile"),
        # sample_type {type: 1} but string_table has only "": index 1 is outside it
        (b"\x0a\x02\x08\x01\x32\x00", "sample_type[0].type: string index 1 is outside string_table"),
        # a sample naming location 7 with no locations at all
        (b"\x12\x03\x0a\x01\x07\x32\x00", "sample[0].location_id: 7 is not a location id"),
        # a sample with two values where there is one sample type
        (
            b"\x0a\x04\x08\x01\x10\x01\x12\x04\x12\x02\x01\x02\x32\x00\x32\x01x",
            "sample[0].value: 2 values for 1 sample types",
        ),
        # location 1 whose line names function 3, which does not exist
        (b"\x22\x06\x08\x01\x22\x02\x08\x03\x32\x00", "location[0].line[0].function_id: 3 is not a function id"),
        (b"\x32\x01x", "string_table[0]: must be the empty string"),
    ],
)
def test_broken_input_names_the_field(data, message):
    with pytest.raises(ProfileError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        decode(data)


def test_truncated_gzip_is_refused(captured):
    data = captured["heap"].read_bytes()
    with pytest.raises(ProfileError, match="truncated"):
        decode(data[: len(data) // 2])


def test_decompressed_size_is_capped(captured):
    data = captured["goroutine"].read_bytes()
    with pytest.raises(ProfileError, match="more than the limit of 100 bytes"):
        decode(data, max_decoded_bytes=100)


def test_samples_parsed_in_runs_read_as_one_parse(captured, monkeypatch):
    from kprof_lib.profiles import decoding

    raw = gzip.decompress(captured["cpu"].read_bytes())
    whole = decode(raw)
    # Runs of at most one sample, and the other fields moved between the samples: the same profile.
    monkeypatch.setattr(decoding, "_RUN_BYTES", 1)
    header, runs = decoding._split(raw)
    assert len(runs) == whole.sample_count > 10
    interleaved = b"".join(raw[start:end] + (header if i == 3 else b"") for i, (start, end) in enumerate(runs))
    for data in (raw, interleaved):
        again = decode(data)
        assert (again.function_names, again.locations) == (whole.function_names, whole.locations)
        assert (again.stack_ids, again.stack_starts, again.values) == (
            whole.stack_ids,
            whole.stack_starts,
            whole.values,
        )
