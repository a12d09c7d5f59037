"""`kprof open` on real captures of the Go sample app: from a directory and from S3 (moto over
HTTP) into a local cache, the page handed to the browser ($BROWSER is a script that records its
argument), a page made for a capture that has none, and `--pprof` running the real
`go tool pprof -http` whose web UI answers on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests import profiles_support
from tests.support.goapp import go_environment


@pytest.fixture
def browser(tmp_path) -> tuple[dict[str, str], Path]:
    """(environment with $BROWSER and $KPROF_CACHE_DIR, the file the browser writes each URL to)."""
    record = tmp_path / "opened.txt"
    script = tmp_path / "browser"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {record}\n')
    script.chmod(0o755)
    env = {**os.environ, "BROWSER": str(script), "KPROF_CACHE_DIR": str(tmp_path / "cache")}
    return env, record


def kprof(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([profiles_support.KPROF, *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture(scope="module")
def folder(sample_app_binary, tmp_path_factory) -> Path:
    from tests.support.goapp import GoApp

    with GoApp(sample_app_binary) as app:
        app.load(cpu_seconds=30, workers=2, mem_mib=32, hold=30)
        return profiles_support.capture(app, tmp_path_factory.mktemp("open"))


def test_open_copies_the_capture_and_opens_its_page_at_the_type(folder, browser, tmp_path):
    env, record = browser
    done = kprof("open", str(folder), "--type", "heap", "-o", "json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    cached = Path(result["cached"])
    assert cached.is_relative_to(tmp_path / "cache") and result["how"] == "browser" and not result["madePage"]
    assert result["opened"] == (cached / "index.html").as_uri() + "#heap"
    assert record.read_text().splitlines() == [result["opened"]]
    assert (cached / "index.html").read_bytes() == (folder / "index.html").read_bytes()
    assert sorted(p.name for p in cached.iterdir()) == [
        "cpu.pprof",
        "goroutine.pprof",
        "heap.pprof",
        "index.html",
        "summary.json",
    ]
    text = kprof("open", str(folder), env=env)
    assert text.returncode == 0 and f"opened {(cached / 'index.html').as_uri()}" in text.stdout, text.stderr


def test_open_reads_s3_and_makes_a_page_when_there_is_none(s3, s3_bucket, folder, browser):
    env, record = browser
    client = s3.client()
    prefix = "p/local/app/20261201T100000.000Z/"
    for name in ("cpu.pprof", "heap.pprof", "summary.json", "index.html"):
        client.put_object(Bucket=s3_bucket, Key=prefix + name, Body=(folder / name).read_bytes())
    done = kprof("open", f"s3://{s3_bucket}/{prefix}", "-o", "json", "--s3-endpoint", s3.endpoint_url, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Path(result["cached"], "index.html").read_bytes() == (folder / "index.html").read_bytes()
    # Without a stored page, one is made from the profiles.
    client.delete_object(Bucket=s3_bucket, Key=prefix + "index.html")
    client.delete_object(Bucket=s3_bucket, Key=prefix + "summary.json")
    done = kprof("open", f"s3://{s3_bucket}/{prefix}", "-o", "json", "--s3-endpoint", s3.endpoint_url, env=env)
    result = json.loads(done.stdout)
    assert done.returncode == 0 and result["madePage"], done.stderr
    made = Path(result["cached"], "index.html").read_text()
    assert made.startswith("<!DOCTYPE html>") and "main.allocateHeld" in made
    assert len(record.read_text().splitlines()) == 2
    bad = kprof("open", str(folder), "--type", "mutex", env=env)
    assert bad.returncode == 1 and "--type mutex: not in this capture (it has: cpu, goroutine, heap)" in bad.stderr


def test_open_pprof_runs_go_tool_pprof_http(folder, browser):
    env, record = browser
    env = {**go_environment(), **env}
    run = subprocess.Popen(
        [profiles_support.KPROF, "open", str(folder), "--pprof", "--type", "heap", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        said = json.loads(run.stdout.readline() + "".join(iter(lambda: run.stdout.readline(), "}\n")) + "}")
        assert said["how"] == "pprof" and said["command"][-1].endswith("/heap.pprof")
        url = said["opened"]
        assert url.startswith("http://127.0.0.1:")
        # pprof opens its UI through $BROWSER once it serves it (the first run may build pprof).
        deadline = time.monotonic() + 300
        while not (record.exists() and record.read_text().strip()) and time.monotonic() < deadline:
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.2)
        assert record.read_text().strip().rstrip("/") == url.rstrip("/")
        with urllib.request.urlopen(url + "ui/top", timeout=30) as answer:
            assert answer.status == 200 and b"main.allocateHeld" in answer.read()
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=30)
