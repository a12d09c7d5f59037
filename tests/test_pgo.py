"""`kprof pgo` and the merge under it (`profiles.merge`), with real parts: CPU profiles from the
real Go sample app under load, merged by kprof and by `go tool pprof -proto` and compared (totals
per sample type, the top-20 flat functions, read by kprof and by pprof itself); `go build -pgo`
of the sample app with a merged profile; the command end to end against a local directory and
moto's S3, on captures `kprof capture` stored."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from kprof_lib.profiles import decode, messages, top
from kprof_lib.profiles.merge import MergeError, Merger
from kprof_lib.runtimes.pgo import Selection, select
from tests.profiles_support import kprof, pprof_top
from tests.support.goapp import SAMPLE_APP_DIR, GoApp, go_environment, go_executable, run_go_tool_pprof

FIXTURES = Path(__file__).parent / "fixtures" / "pgo"


@pytest.fixture(scope="module")
def live_profiles(sample_app_binary, tmp_path_factory) -> list[Path]:
    """Three 1-second CPU profiles of one sample app, each taken under CPU and memory load."""
    folder = tmp_path_factory.mktemp("pgo-live")
    paths = []
    with GoApp(sample_app_binary) as app:
        for number in range(3):
            app.load(cpu_seconds=2.5, workers=2, mem_mib=16)
            paths.append(folder / f"cpu-{number}.pprof")
            paths[-1].write_bytes(app.pprof("profile", seconds=1))
    return paths


def _kprof_merge(paths: list[Path], out: Path) -> Path:
    merger = Merger()
    for path in paths:
        merger.add(path.read_bytes(), path.name)
    out.write_bytes(merger.result())
    return out


def test_merge_matches_go_tool_pprof(live_profiles, tmp_path):
    ours = _kprof_merge(live_profiles, tmp_path / "cpu-kprof.pprof")
    theirs = tmp_path / "cpu-go.pprof"
    done = run_go_tool_pprof("-proto", "-symbolize=none", "-output", str(theirs), *map(str, live_profiles), timeout=300)
    assert done.returncode == 0, done.stderr
    mine, go = decode(ours.read_bytes()), decode(theirs.read_bytes())
    inputs = [decode(p.read_bytes()) for p in live_profiles]
    assert mine.sample_types == go.sample_types
    for index in range(len(mine.sample_types)):
        assert mine.total(index) == go.total(index) == sum(p.total(index) for p in inputs)
    assert mine.total(1) > 0, "the app was under load: its profiles have CPU samples"
    assert mine.duration_nanos == go.duration_nanos == sum(p.duration_nanos for p in inputs)
    assert (mine.period, mine.time_nanos) == (go.period, go.time_nanos)
    assert top.entries(mine)[:20] == top.entries(go)[:20]
    # pprof reads kprof's merge as it reads its own: the same total and top-20 flat and cum.
    assert pprof_top(ours, 20) == pprof_top(theirs, 20)


def _merged(*inputs: bytes):
    merger = Merger()
    for data in inputs:
        merger.add(data)
    message = messages.Profile()
    message.ParseFromString(gzip.decompress(merger.result()))
    return message


def _frames(message) -> set[tuple]:
    """(address, its frames as (function, start line, line)) of every location samples use."""
    strings, functions = message.string_table, {f.id: f for f in message.function}
    used = {location_id for sample in message.sample if any(sample.value) for location_id in sample.location_id}
    return {
        (
            location.address,
            tuple(
                (strings[functions[ln.function_id].name], functions[ln.function_id].start_line, ln.line)
                for ln in location.line
            ),
        )
        for location in message.location
        if location.id in used
    }


@pytest.mark.parametrize("source", ["live", "fixture"])
def test_merge_sums_equal_stacks_and_keeps_what_the_compiler_needs(source, live_profiles):
    data = (live_profiles[0] if source == "live" else FIXTURES / "cpu-1.pprof").read_bytes()
    once, twice = _merged(data), _merged(data, data)
    # The same profile twice: every stack once, with twice the values, nothing else grows.
    assert [list(s.location_id) for s in twice.sample] == [list(s.location_id) for s in once.sample]
    assert [list(s.value) for s in twice.sample] == [[2 * v for v in s.value] for s in once.sample]
    assert (twice.location, twice.function, twice.mapping, twice.string_table) == (
        once.location,
        once.function,
        once.mapping,
        once.string_table,
    )
    assert len(once.string_table) == len(set(once.string_table))
    assert twice.duration_nanos == 2 * once.duration_nanos
    # Every location keeps its frames: start lines, line numbers and inlined frames, as the input has them.
    original = messages.Profile()
    original.ParseFromString(gzip.decompress(data))
    assert _frames(once) == _frames(original)
    if source == "fixture":
        assert any(len(frames) > 1 for _, frames in _frames(once)), "the fixture has inlined frames"


def _profile(unit: str, values: list[int], *, kind: str = "cpu", function: str = "main.work") -> bytes:
    message = messages.Profile()
    message.string_table.extend(["", "samples", "count", kind, unit, function, "main.go"])
    message.sample_type.add(type=1, unit=2)
    message.sample_type.add(type=3, unit=4)
    message.period_type.type, message.period_type.unit, message.period = 3, 4, 10
    message.function.add(id=1, name=5, system_name=5, filename=6, start_line=3)
    message.location.add(id=1, address=0x1000).line.add(function_id=1, line=7)
    message.sample.add(location_id=[1], value=values)
    message.duration_nanos = 1_000_000_000
    return gzip.compress(message.SerializeToString())


def test_merge_keeps_one_unit_and_names_what_does_not_merge():
    merger = Merger()
    merger.add(_profile("nanoseconds", [1, 10_000_000]))
    merger.add(_profile("microseconds", [2, 20_000]))
    merged = decode(merger.result())
    assert [(t.type, t.unit) for t in merged.sample_types] == [("samples", "count"), ("cpu", "nanoseconds")]
    assert (merged.total(0), merged.total(1), merged.period) == (3, 30_000_000, 10_000)
    with pytest.raises(MergeError, match=r"heap.pprof: sample_type: \[samples/count, alloc_space/bytes\] differs"):
        merger.add(_profile("bytes", [1, 1], kind="alloc_space"), "heap.pprof")
    with pytest.raises(MergeError, match=r"bad\.pprof: not a pprof profile"):
        merger.add(b"\x00\x01not a profile", "bad.pprof")
    # A refused input changes nothing.
    assert decode(merger.result()).total(1) == 30_000_000
    with pytest.raises(MergeError, match="no profiles to merge"):
        Merger().result()


def test_go_build_uses_the_merged_profile(tmp_path):
    # The profiles are real ones of the sample app, kept as fixtures so that the merged file is
    # the same on every run: `go build -pgo` recompiles the standard library for a new profile
    # (a minute on a busy two-core machine) and takes it from Go's build cache for a known one.
    app = tmp_path / "app"
    shutil.copytree(SAMPLE_APP_DIR, app)
    _kprof_merge(sorted(FIXTURES.glob("cpu-*.pprof")), app / "default.pgo")
    env = go_environment()
    built = subprocess.run(
        [go_executable(), "build", "-trimpath", "-pgo=auto", "-o", str(tmp_path / "app.bin"), "."],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    shown = subprocess.run(
        [go_executable(), "version", "-m", str(tmp_path / "app.bin")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "\tbuild\t-pgo=default.pgo" in shown.stdout, shown.stdout


def _summary(namespace="shop", service="checkout", reason="on-demand", at="2026-12-01T10:00:00.000Z", types=("cpu",)):
    return {
        "capture": {
            "namespace": namespace,
            "pod": f"{service}-1",
            "service": service,
            "reason": reason,
            "capturedAt": at,
        },
        "profiles": {kind: {} for kind in types},
    }


def test_select_takes_one_workloads_cpu_captures_of_the_reasons_asked():
    found = [
        ("b/", _summary(at="2026-12-01T11:00:00.000Z")),
        ("a/", _summary()),
        ("other-ns/", _summary(namespace="prod")),
        ("other-workload/", _summary(service="cart")),
        ("threshold/", _summary(reason="cpu-threshold", at="2026-12-01T12:00:00.000Z")),
        ("heap-only/", _summary(types=("heap",))),
        ("old/", _summary(at="2026-11-01T10:00:00.000Z")),
    ]
    since = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    default = select(found, Selection("shop", "checkout", since=since))
    assert [p.location for p in default] == ["a/", "b/"]
    both = select(found, Selection("shop", "checkout", ("on-demand", "cpu-threshold")))
    assert [p.location for p in both] == ["old/", "a/", "b/", "threshold/"]


def _check_written(done: subprocess.CompletedProcess, out: Path, inputs: list[bytes]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {out}: {len(inputs)} CPU profiles from 2" in done.stdout
    merged = decode(out.read_bytes())
    assert merged.total(1) > 0
    assert merged.total(1) == sum(decode(data).total(1) for data in inputs)
    assert f"{merged.total(1) / 1e9:.2f} CPU seconds" in done.stdout
    # The top functions printed are the merged profile's own.
    hottest = top.entries(merged)[0].name
    assert hottest in done.stdout.splitlines()[2]


def test_pgo_command_on_a_local_directory(stored_captures, tmp_path):
    store = stored_captures.copy(tmp_path / "store")
    workload = stored_captures.workload
    out = tmp_path / "default.pgo"
    done = kprof("pgo", str(store), "--namespace", "local", "--workload", workload, "--since", "1h", "-o", str(out))
    _check_written(done, out, [p.read_bytes() for p in store.rglob("cpu.pprof")])

    missing = kprof("pgo", str(store), "--namespace", "local", "--workload", "cart", "-o", str(tmp_path / "none.pgo"))
    assert missing.returncode == 1
    searched = f"no CPU captures with a summary.json under {store} for namespace local, workload cart, reason on-demand"
    assert searched in missing.stderr
    assert not (tmp_path / "none.pgo").exists()
    none = kprof("pgo", str(store), "--namespace", "local", "--workload", workload, "--reason", "cpu-threshold")
    assert none.returncode == 1 and "reason cpu-threshold" in none.stderr
    bad = kprof("pgo", str(store), "--namespace", "local", "--workload", workload, "--since", "a week")
    assert bad.returncode == 2 and "--since 'a week'" in bad.stderr
    typo = kprof("pgo", str(store), "--namespace", "local", "--workload", workload, "--reason", "ondemand")
    assert typo.returncode == 2 and "--reason 'ondemand': expected some of on-demand, baseline" in typo.stderr
    unwritable = kprof("pgo", str(store), "--namespace", "local", "--workload", workload, "-o", "/proc/kprof.pgo")
    assert unwritable.returncode == 1 and "kprof pgo: -o /proc/kprof.pgo:" in unwritable.stderr

    # A capture whose CPU profile is broken is left out and named; the others still make the file.
    [first, *_] = sorted(store.rglob("cpu.pprof"))
    first.write_bytes(b"\x1f\x8bbroken")
    done = kprof("pgo", str(store), "--namespace", "local", "--workload", workload, "-o", str(out))
    assert done.returncode == 1
    assert f"left out {first.parent}/: cpu.pprof: gzip:" in done.stderr
    assert f"wrote {out}: 1 CPU profiles from 2" in done.stdout


def test_pgo_command_on_s3(stored_captures, s3, s3_bucket, tmp_path):
    keys = stored_captures.upload(s3, s3_bucket, "profiles")
    out = tmp_path / "default.pgo"
    done = kprof(
        "pgo",
        f"s3://{s3_bucket}/profiles",
        "--namespace",
        "local",
        "--workload",
        stored_captures.workload,
        "--s3-endpoint",
        s3.endpoint_url,
        "-o",
        str(out),
    )
    _check_written(done, out, [s3.body(s3_bucket, key) for key in keys])
