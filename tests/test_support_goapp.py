"""Checks that the test suite's real parts behave as the capture tests rely on: the Go sample app
builds, serves real pprof profiles that go tool pprof reads and reacts to /load, and the
misbehaving server hangs, floods, refuses and fails in the ways it promises."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.badserver import BUSY_MESSAGE, GZIP_MAGIC, HTML_BODY, VALID_PROFILE_GZ, BadServer
from tests.support.goapp import (
    GoApp,
    GoAppFactory,
    GoToolchainMissingError,
    build_sample_app,
    go_executable,
    run_go_tool_pprof,
)
from tests.support.net import free_port

WAIT_LIMIT_SECONDS = 30.0


def wait_for(condition: Callable[[], bool], what: str, limit: float = WAIT_LIMIT_SECONDS) -> None:
    """Poll condition until it holds; fail naming `what` if it has not within limit."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_error(fetch: Callable[[], object]) -> tuple[int, bytes]:
    """Status and body of the HTTPError that fetch() must raise (the response is closed)."""
    with pytest.raises(urllib.error.HTTPError) as failure:
        fetch()
    with failure.value as error:
        return error.code, error.read()


# -- the Go sample app -----------------------------------------------------------------------


def test_build_is_cached_and_executable(sample_app_binary: Path) -> None:
    assert sample_app_binary.is_file()
    assert sample_app_binary.stat().st_mode & 0o111
    assert build_sample_app() == sample_app_binary


def test_missing_go_is_reported_with_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GoToolchainMissingError, match="install-go"):
        go_executable()


def test_app_reports_its_port_and_is_healthy(go_app: GoApp) -> None:
    assert go_app.port > 0
    assert go_app.url == f"http://127.0.0.1:{go_app.port}"
    assert go_app.get("/healthz") == b"ok"
    stats = go_app.stats()
    assert stats["pid"] == go_app.pid
    assert stats["loadActive"] == 0


def test_heap_profile_is_gzip(go_app: GoApp) -> None:
    profile = go_app.pprof("heap")
    assert profile[:2] == GZIP_MAGIC
    gzip.decompress(profile)


def test_cpu_profile_under_load_is_gzip_and_shows_the_burn(go_app: GoApp, tmp_path: Path) -> None:
    go_app.load(cpu_seconds=15, workers=2)
    profile = go_app.pprof("profile", seconds=1)
    assert profile[:2] == GZIP_MAGIC
    path = tmp_path / "cpu.pb.gz"
    path.write_bytes(profile)
    top = run_go_tool_pprof("-top", str(path))
    assert top.returncode == 0, top.stderr
    assert "main.burnCPU" in top.stdout


def test_go_tool_pprof_reads_heap_profile_with_held_memory(go_app: GoApp, tmp_path: Path) -> None:
    go_app.load(cpu_seconds=0.1, workers=1, mem_mib=64, hold=60)
    wait_for(lambda: go_app.stats()["heapAllocBytes"] >= 64 << 20, "64 MiB to be allocated")
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(go_app.pprof("heap"))
    top = run_go_tool_pprof("-top", str(path))
    assert top.returncode == 0, top.stderr
    assert "main.allocateHeld" in top.stdout


def test_load_raises_goroutines_and_is_reported_active(go_app: GoApp) -> None:
    before = go_app.stats()["goroutines"]
    started = go_app.load(cpu_seconds=30, workers=4)
    assert started["status"] == "started"
    assert started["workers"] == 4
    assert started["holdSeconds"] == 30
    wait_for(lambda: go_app.stats()["goroutines"] >= before + 4, "load goroutines to start")
    assert go_app.stats()["loadActive"] >= 1


def test_waited_load_finishes_and_leaves_mutex_contention(go_app: GoApp) -> None:
    finished = go_app.load(cpu_seconds=1, workers=2, wait=True)
    assert finished["status"] == "done"
    assert go_app.stats()["loadActive"] == 0
    contention = go_app.pprof("mutex", debug=1).decode()
    assert "main.burnCPU" in contention or "main.sampleProgress" in contention


def test_bad_load_parameters_are_rejected(go_app: GoApp) -> None:
    for query in ("cpu=abc", "cpu=601", "mem=4096", "workers=0"):
        status, _ = http_error(lambda query=query: go_app.get(f"/load?{query}"))
        assert status == 400, query


def test_a_leak_climbs_steadily_and_stop_lets_everything_go(go_app: GoApp) -> None:
    before_rss = go_app.resident_bytes()
    started = go_app.leak(mem_mib_per_second=20, goroutines_per_second=200, seconds=2)
    assert (started["status"], started["memMiBPerSecond"], started["seconds"]) == ("started", 20, 2)
    # Over its two seconds: about 40 MiB kept and resident, about 400 goroutines parked.
    wait_for(lambda: go_app.stats()["leakedGoroutines"] >= 380, "the leaked goroutines")
    time.sleep(0.5)  # the leak's time is over: nothing more is taken
    stats = go_app.stats()
    assert 36 * 2**20 <= stats["leakedBytes"] <= 42 * 2**20, stats
    assert 380 <= stats["leakedGoroutines"] <= 420 and stats["goroutines"] >= stats["leakedGoroutines"], stats
    assert go_app.resident_bytes() - before_rss >= 30 * 2**20
    first_line = go_app.pprof("goroutine", debug=1).split(b"\n", 1)[0].decode()
    assert first_line == f"goroutine profile: total {int(first_line.rsplit(' ', 1)[1])}"
    assert int(first_line.rsplit(" ", 1)[1]) >= stats["leakedGoroutines"]
    assert b"main.leakedGoroutine" in go_app.pprof("goroutine", debug=1)
    assert go_app.stats()["leakedBytes"] == stats["leakedBytes"]

    assert go_app.stop_leak()["status"] == "stopped"
    wait_for(lambda: go_app.stats()["leakedGoroutines"] == 0, "the leaked goroutines to end")
    assert go_app.stats()["leakedBytes"] == 0


def test_bad_leak_parameters_are_rejected(go_app: GoApp) -> None:
    for query in ("memMiBPerSecond=x", "memMiBPerSecond=257", "goroutinesPerSecond=-1", "seconds=3601"):
        status, body = http_error(lambda query=query: go_app.get(f"/leak?{query}"))
        assert status == 400 and query.split("=")[0].encode() in body, query


def test_factory_starts_separate_apps_that_stop_cleanly(go_app_factory: GoAppFactory) -> None:
    apps = go_app_factory.start_many(2)
    assert len({app.port for app in apps}) == 2
    assert len({app.stats()["pid"] for app in apps}) == 2
    apps[0].load(cpu_seconds=30, workers=1)
    assert apps[0].stop() == 0  # SIGTERM cancels the load and exits gracefully
    assert apps[1].get("/healthz") == b"ok"


# -- the misbehaving server ----------------------------------------------------------------


def test_ok_mode_serves_a_profile_go_tool_pprof_reads(bad_server: BadServer, tmp_path: Path) -> None:
    with urllib.request.urlopen(bad_server.url + "/debug/pprof/profile?seconds=1", timeout=10) as response:
        body = response.read()
    assert body == VALID_PROFILE_GZ
    path = tmp_path / "min.pb.gz"
    path.write_bytes(body)
    top = run_go_tool_pprof("-top", str(path))
    assert top.returncode == 0, top.stderr
    assert "main.busy" in top.stdout
    assert bad_server.requests == ["/debug/pprof/profile?seconds=1"]


def test_hang_triggers_client_timeout_and_does_not_block_stop() -> None:
    server = BadServer(mode="hang")
    try:
        with pytest.raises(TimeoutError):
            urllib.request.urlopen(server.url + "/debug/pprof/profile?seconds=5", timeout=0.5)
        assert server.requests == ["/debug/pprof/profile?seconds=5"]
    finally:
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(WAIT_LIMIT_SECONDS)
    assert not stopper.is_alive(), "stop() was held up by a hanging request"


def test_slow_prefix_hangs_and_stall_cuts_off_the_body(bad_server: BadServer) -> None:
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(bad_server.url_for("slow") + "/debug/pprof/heap", timeout=0.5)
    with urllib.request.urlopen(bad_server.url_for("stall") + "/debug/pprof/heap", timeout=0.5) as response:
        assert response.status == 200
        assert response.read(2) == GZIP_MAGIC
        with pytest.raises(TimeoutError):
            response.read()


def test_huge_streams_more_than_ten_megabytes(bad_server: BadServer) -> None:
    wanted = 10 * 1024 * 1024 + 1
    received = bytearray()
    with urllib.request.urlopen(bad_server.url_for("huge") + "/debug/pprof/heap", timeout=10) as response:
        assert response.headers.get("Content-Length") is None
        while len(received) < wanted:
            chunk = response.read(1024 * 1024)
            assert chunk, "stream ended early"
            received += chunk
    assert received[:2] == GZIP_MAGIC
    # After the client hung up the server still answers others.
    with urllib.request.urlopen(bad_server.url + "/x", timeout=10) as response:
        assert response.read() == VALID_PROFILE_GZ


def test_huge_stops_at_its_configured_size() -> None:
    with (
        BadServer(mode="huge", huge_bytes=300_000) as server,
        urllib.request.urlopen(server.url + "/debug/pprof/heap", timeout=10) as response,
    ):
        assert len(response.read()) == 300_000


def test_busy_answers_500_then_a_profile() -> None:
    with BadServer(mode="busy", busy_count=2) as server:
        for _ in range(2):
            status, body = http_error(
                lambda: urllib.request.urlopen(server.url + "/debug/pprof/profile?seconds=1", timeout=10)
            )
            assert (status, body) == (500, BUSY_MESSAGE)
        with urllib.request.urlopen(server.url + "/debug/pprof/profile?seconds=1", timeout=10) as response:
            assert response.status == 200
            assert gzip.decompress(response.read())
        assert len(server.requests) == 3


def test_html_mode_answers_html(bad_server: BadServer) -> None:
    with urllib.request.urlopen(bad_server.url_for("html") + "/debug/pprof/heap", timeout=10) as response:
        assert response.status == 200
        assert response.read() == HTML_BODY


def test_status_from_path_and_from_configuration(bad_server: BadServer) -> None:
    status, body = http_error(
        lambda: urllib.request.urlopen(bad_server.url_for("status/404") + "/debug/pprof/heap", timeout=10)
    )
    assert (status, body) == (404, b"404 Not Found\n")
    bad_server.configure("status", status=503, body=b"unavailable\n")
    heap_url = bad_server.url + "/debug/pprof/heap"
    status, body = http_error(lambda: urllib.request.urlopen(heap_url, timeout=10))
    assert (status, body) == (503, b"unavailable\n")
    assert bad_server.requests == ["/status/404/debug/pprof/heap", "/debug/pprof/heap"]


def test_free_port_can_be_bound() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
