"""`kprof show` and `kprof diff` on real captures: a healthy baseline and an incident taken from the
real Go sample app with `kprof capture`, read back from a local directory and from S3 (moto over
HTTP), checked against `go tool pprof -top` on the same files; and the summaries they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kprof_lib.profiles import decode, diff, summary, top
from tests import profiles_support
from tests.support.goapp import GoApp

kprof = profiles_support.kprof


@pytest.fixture(scope="module")
def captures(sample_app_binary, tmp_path_factory):
    """(baseline folder, incident folder): idle, then under CPU, memory and goroutine load."""
    return profiles_support.baseline_and_incident(GoApp(sample_app_binary), tmp_path_factory.mktemp("captures"))


def test_show_prints_the_top_table_pprof_prints(captures):
    _, incident = captures
    done = kprof("show", str(incident), "--type", "cpu", "-n", "5")
    assert done.returncode == 0, done.stderr
    _, expected = profiles_support.pprof_top(incident / "cpu.pprof", 5)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("local/127.0.0.1-") and " on-demand " in lines[0] + " "
    names = [
        line.split()[-1] for line in lines[lines.index(next(x for x in lines if x.lstrip().startswith("flat"))) + 1 :]
    ]
    assert names == [name for name, _, _ in expected][: len(names)] and len(names) == min(5, len(expected))


def test_show_json_is_the_summary(captures):
    _, incident = captures
    done = kprof("show", str(incident), "-o", "json", "-n", "10")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(result["profiles"]) == ["cpu", "goroutine", "heap"] and result["errors"] == {}
    assert result["capture"]["reason"] == "on-demand" and result["capture"]["uri"] == str(incident)
    heap = result["profiles"]["heap"]
    assert heap["file"] == "heap.pprof" and heap["bytes"] == (incident / "heap.pprof").stat().st_size
    assert heap["defaultSampleType"] == "inuse_space"
    assert sorted(heap["sampleTypes"]) == ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
    inuse = heap["sampleTypes"]["inuse_space"]
    # The same numbers as the reader gives, which the differential test holds to go tool pprof.
    profile = decode((incident / "heap.pprof").read_bytes())
    rows = top.entries(profile, "inuse_space")
    assert inuse["total"] == profile.total(profile.sample_type_index("inuse_space"))
    assert [(r["name"], r["flat"], r["cum"]) for r in inuse["topFlat"]] == [(e.name, e.flat, e.cum) for e in rows[:10]]
    assert inuse["topFlat"][0]["name"] == "main.allocateHeld" and inuse["topFlat"][0]["flatShare"] > 0.5
    assert [r["cum"] for r in inuse["topCum"]] == sorted((r["cum"] for r in inuse["topCum"]), reverse=True)
    assert all(r["flatShare"] == round(r["flat"] / inuse["total"], 4) for r in inuse["topFlat"])
    cpu = result["profiles"]["cpu"]
    assert cpu["defaultSampleType"] == "cpu" and 0.9 <= cpu["durationSeconds"] <= 2.5
    assert summary.top_functions(result)["heap"][0][0] == "main.allocateHeld"


def test_diff_names_what_grew(captures):
    base, incident = captures
    done = kprof("diff", str(base), str(incident), "-o", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(result["types"]) == ["cpu", "goroutine", "heap"] and result["missing"] == []
    heap = result["types"]["heap"]
    assert (heap["sampleType"], heap["measure"]) == ("inuse_space", "flat")
    assert heap["growth"][0]["name"] == "main.allocateHeld" and heap["growth"][0]["delta"] > 40 << 20
    goroutine = result["types"]["goroutine"]
    # Six workers appeared; each is a stack that was not there in the baseline.
    assert sum(r["delta"] for r in goroutine["growth"]) >= 6
    assert any("main.(*app).runLoad.func3" in r["stack"] for r in goroutine["growth"])
    cpu = result["types"]["cpu"]
    assert cpu["measure"] == "flatShare" and cpu["growth"][0]["incident"] > cpu["growth"][0]["base"]
    assert diff.top_grower(result) == ("cpu", cpu["growth"][0]["name"])
    text = kprof("diff", str(base), str(incident)).stdout
    assert "heap (inuse_space)" in text and "main.allocateHeld" in text and "pts)" in text
    # Goroutine stacks are named by their own frames, not by the runtime's parking ones.
    goroutines = text.split("goroutine (goroutine)")[1].split("heap (")[0]
    assert "main.burnCPU" in goroutines and "runtime.gopark" not in goroutines


def test_show_and_diff_read_s3(captures, s3, s3_bucket, tmp_path):
    base, _ = captures
    # Two real captures into S3, in both key layouts.
    with GoApp() as app:
        app.load(cpu_seconds=30, workers=2, mem_mib=16, hold=30)
        for layout in ("pod", "service-date"):
            done = kprof(
                "capture",
                "--url",
                app.url,
                "--types",
                "heap,goroutine",
                "--to",
                f"s3://{s3_bucket}/{layout}",
                "--s3-endpoint",
                s3.endpoint_url,
                "--key-layout",
                layout,
            )
            assert done.returncode == 0, done.stdout + done.stderr
    keys = sorted(o["key"] for o in s3.objects(s3_bucket))
    pod_key = next(k for k in keys if k.startswith("pod/") and k.endswith("/heap.pprof"))
    folder = f"s3://{s3_bucket}/{pod_key[: -len('heap.pprof')]}"
    done = kprof("show", folder, "-o", "json", "--s3-endpoint", s3.endpoint_url)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(result["profiles"]) == ["goroutine", "heap"] and result["capture"]["uri"] == folder
    local = tmp_path / "heap.pprof"
    local.write_bytes(s3.body(s3_bucket, pod_key))
    _, expected = profiles_support.pprof_top(local, 10)
    rows = result["profiles"]["heap"]["sampleTypes"]["inuse_space"]["topFlat"]
    assert [(r["name"], r["flat"], r["cum"]) for r in rows[: len(expected)]] == expected[: len(rows)]
    # service-date: the capture is the common start of its files' names.
    dated = next(k for k in keys if k.startswith("service-date/") and k.endswith("-heap.pprof"))
    start = f"s3://{s3_bucket}/{dated[: -len('heap.pprof')]}"
    done = kprof("show", start, "--type", "goroutine", "--s3-endpoint", s3.endpoint_url)
    assert done.returncode == 0 and "goroutine (goroutine, total " in done.stdout, done.stderr
    # A diff across stores: the local baseline against the S3 capture.
    done = kprof("diff", str(base), folder, "-o", "json", "--s3-endpoint", s3.endpoint_url)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["types"]) == ["goroutine", "heap"]
    assert json.loads(done.stdout)["missing"] == ["cpu"]


def test_a_broken_profile_is_reported_and_the_others_shown(captures, tmp_path):
    _, incident = captures
    for name in ("cpu.pprof", "heap.pprof"):
        (tmp_path / name).write_bytes((incident / name).read_bytes())
    (tmp_path / "goroutine.pprof").write_bytes(b"\x1f\x8b\x08\x00not gzip")
    done = kprof("show", str(tmp_path))
    # The others are shown; the exit code says that one could not be read.
    assert done.returncode == 1, done.stderr
    assert kprof("show", str(tmp_path), "--type", "heap").returncode == 0
    assert "goroutine: not readable: goroutine.pprof: gzip:" in done.stdout and "main.allocateHeld" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "/nonexistent/kprof/capture"], "kprof show: /nonexistent/kprof/capture: no such directory"),
        (["show", "{empty}"], "no profiles (*.pprof) there"),
        (["show", "{incident}", "--type", "mutex"], "--type mutex: not in this capture (it has: cpu, goroutine, heap)"),
        (["show", "{incident}", "-n", "0"], "-n: must be at least 1"),
        (["diff", "{incident}", "/nonexistent/x"], "kprof diff: /nonexistent/x: no such directory"),
    ],
)
def test_bad_input_is_named(captures, tmp_path, args, message):
    args = [a.format(empty=tmp_path, incident=captures[1]) for a in args]
    done = kprof(*args)
    assert done.returncode in (1, 2) and message in done.stderr, done.stderr


def stored_summary(folder: Path) -> dict:
    """The summary.json `kprof capture` wrote beside the profiles; its profiles' part is what
    `kprof show -o json` gives for the folder."""
    stored = json.loads((folder / "summary.json").read_text())
    shown = json.loads(kprof("show", str(folder), "-o", "json", "-n", "10").stdout)
    assert stored["profiles"] == shown["profiles"] and stored["capture"]["uri"] == str(folder) + "/"
    return stored


def test_ls_lists_captures_newest_first(captures):
    base, incident = captures
    for folder in captures:
        stored_summary(folder)
    root = base.parents[3]
    done = kprof("ls", str(root), "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [Path(r["capture"]) for r in rows] == [incident, base]
    assert rows[0]["reason"] == "on-demand" and rows[0]["types"] == ["cpu", "goroutine", "heap"]
    assert rows[0]["top"][2] == "cpu" and rows[0]["top"][0].startswith("crypto/")
    pod = rows[0]["pod"]
    assert kprof("ls", str(root), "--reason", "cpu-threshold", "-o", "json").stdout.strip() == "[]"
    assert len(json.loads(kprof("ls", str(root), "--since", "1h", "--pod", pod, "-o", "json").stdout)) == 2
    table = kprof("ls", str(root)).stdout.splitlines()
    assert table[0].split()[:4] == ["TIME", "POD", "REASON", "TYPES"] and table[1].endswith(str(incident) + "/")
    bad = kprof("ls", str(root), "--since", "yesterday")
    assert bad.returncode == 2 and "--since 'yesterday': expected a number and s, m, h or d" in bad.stderr


def test_ls_reads_s3_page_by_page_under_the_namespace(captures, s3, s3_bucket):
    _, incident = captures
    summary_body = stored_summary(incident)
    client = s3.client()
    # 1,050 captures of other namespaces (more than one list page of 1,000) and one of ours.
    for i in range(1050):
        client.put_object(Bucket=s3_bucket, Key=f"p/other/pod-{i}/20261201T000000.000Z/summary.json", Body=b"{}")
    key = "p/local/" + summary_body["capture"]["pod"] + "/20261201T100000.000Z/"
    for name in ("summary.json", "cpu.pprof"):
        client.put_object(Bucket=s3_bucket, Key=key + name, Body=(incident / name).read_bytes())
    done = kprof("ls", f"s3://{s3_bucket}/p", "--namespace", "local", "-o", "json", "--s3-endpoint", s3.endpoint_url)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert row["capture"] == f"s3://{s3_bucket}/{key}" and row["pod"] == summary_body["capture"]["pod"]
    # Without the namespace every summary is read: paginated past the first 1,000 keys.
    everything = kprof("ls", f"s3://{s3_bucket}/p", "--limit", "5000", "-o", "json", "--s3-endpoint", s3.endpoint_url)
    assert len(json.loads(everything.stdout)) == 1051
    # What ls prints, show takes.
    shown = kprof("show", row["capture"], "--type", "cpu", "-n", "1", "--s3-endpoint", s3.endpoint_url)
    assert shown.returncode == 0 and "cpu (cpu, total" in shown.stdout, shown.stderr
