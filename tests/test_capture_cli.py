"""`kprof capture`: a one-shot capture from the real Go app into a directory and into S3."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

KPROF = str(Path(sys.executable).parent / "kprof")


def kprof(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([KPROF, "capture", *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_capture_from_an_address_into_a_directory(go_app, tmp_path):
    result = kprof("--url", go_app.url, "--types", "heap,cpu,goroutine", "--seconds", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.rglob("*.pprof"))
    assert [f.name for f in files] == ["cpu.pprof", "goroutine.pprof", "heap.pprof"]
    assert all(gzip.decompress(f.read_bytes()) for f in files)
    # Each profile is printed as it lands with its size and where it went; then the recap.
    lines = result.stdout.splitlines()
    for profile in ("heap", "cpu", "goroutine"):
        [line] = [line for line in lines if line.startswith(f"  + {profile} ")]
        [size, path] = re.findall(r"([\d,]+) bytes  stored  (\S+)  \(on-demand\)$", line)[0]
        assert path.startswith(f"{tmp_path}/local/127.0.0.1-{go_app.port}/") and path.endswith(f"/{profile}.pprof")
        assert Path(path).stat().st_size == int(size.replace(",", ""))
    assert lines[-1] == "captured: 1  profiles: 3 stored"


def test_capture_into_s3(go_app, s3, s3_bucket):
    result = kprof("--url", go_app.url + "/debug/pprof", "--types", "heap", "--to", f"s3://{s3_bucket}/adhoc",
                   "--s3-endpoint", s3.endpoint_url, "--key-layout", "service-date")
    assert result.returncode == 0, result.stderr
    [obj] = [o for o in s3.objects(s3_bucket) if o["key"].endswith(".pprof")]
    assert obj["key"].startswith("adhoc/") and obj["key"].endswith("-heap.pprof")
    # The capture's summary and page beside it (tests/test_capture_summaries.py reads them).
    start = obj["key"][: -len("heap.pprof")]
    assert sorted(o["key"] for o in s3.objects(s3_bucket)) == [start + "heap.pprof", start + "index.html", start + "summary.json"]
    assert f"stored  s3://{s3_bucket}/{obj['key']}  (on-demand)" in result.stdout
    assert obj["metadata"]["pod"] == f"127.0.0.1-{go_app.port}"


def test_a_refused_address_fails_with_the_reason(tmp_path):
    from tests.support.net import free_port

    port = free_port()
    result = kprof("--url", f"http://127.0.0.1:{port}", "--types", "heap", "--out", str(tmp_path))
    # Found by the check at start, in one line naming the flag; nothing is captured.
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kprof capture: --url http://127.0.0.1:{port}/debug/pprof/: connection refused (nothing listens on that port?)"
    ]
    assert result.stdout == ""
    assert list(tmp_path.rglob("*.pprof")) == []


def test_bad_arguments_name_the_flag(tmp_path):
    result = kprof("--url", "ftp://host", "--out", str(tmp_path))
    assert result.returncode == 2 and "--url" in result.stderr
    result = kprof("--url", "http://127.0.0.1:1", "--types", "heap,bogus", "--out", str(tmp_path))
    assert result.returncode == 2 and "--types[1]: 'bogus' is not one of" in result.stderr
    result = kprof("--url", "http://127.0.0.1:1", "--to", "bucket/prefix")
    assert result.returncode == 2 and "s3://BUCKET" in result.stderr


def test_a_self_signed_https_endpoint_needs_the_explicit_opt_out(tmp_path):
    from tests.support.badserver import VALID_PROFILE_GZ
    from tests.support.rawhttp import ScriptedServer, respond, server_tls_context

    routes = {"/debug/pprof/": respond(b"<html>index</html>"), "/debug/pprof/heap": respond(VALID_PROFILE_GZ)}
    with ScriptedServer(routes, tls=server_tls_context(tmp_path)) as server:
        url = f"https://127.0.0.1:{server.port}"
        refused = kprof("--url", url, "--types", "heap", "--out", str(tmp_path / "a"))
        assert refused.returncode == 1 and "--insecure-skip-tls-verify" in refused.stderr
        accepted = kprof("--url", url, "--types", "heap", "--out", str(tmp_path / "b"), "--insecure-skip-tls-verify")
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert [p.name for p in (tmp_path / "b").rglob("*.pprof")] == ["heap.pprof"]
