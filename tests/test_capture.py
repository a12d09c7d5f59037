"""Capturing profiles straight from a pod's address: `fetch_profile` over `DirectTransport` against
the real Go sample app (every profile type, a CPU profile under load, Go's own "profiler busy"),
against `bad_server` (hang, huge, HTML, busy, error status) and against scripted raw-socket
servers for what no ordinary server does (trickling bodies, truncation, chunks, TLS)."""

from __future__ import annotations

import dataclasses
import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kprof_lib.adapters.pprof import make_transport
from kprof_lib.adapters.pprof.deadlines import Watchdog
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.pprof.streaming import CHUNK_BYTES
from kprof_lib.execution.capture import fetch_profile, timeout_for
from kprof_lib.execution.ports import (
    CaptureFailed,
    CaptureTimeout,
    CaptureTooLarge,
    ProfileRequest,
    Response,
    TargetBusy,
)
from tests.support.badserver import VALID_PROFILE_GZ, BadServer
from tests.support.goapp import GoApp, run_go_tool_pprof
from tests.support.net import free_port
from tests.support.rawhttp import ScriptedServer, reset_connection, respond, server_tls_context

# Each profile type and the sample type `go tool pprof` shows for it by default.
PROFILE_TYPES = {
    "heap": "inuse_space",
    "cpu": "cpu",
    "goroutine": "goroutine",
    "mutex": "delay",
    "block": "delay",
    "allocs": "alloc_space",
    "threadcreate": "threadcreate",
}
MiB = 1024 * 1024
# Far above every timeout used here, far below the servers' own hang: proves a timeout was bounded.
BOUND_SECONDS = 30.0


def pod_request(port: int, profile_type: str, *, base_path: str = "/debug/pprof", scheme: str = "http",
                cpu_seconds: int = 1) -> ProfileRequest:
    return ProfileRequest(
        namespace="default", pod="app-7d9f-x2x", pod_ip="127.0.0.1", scheme=scheme, port=port,
        base_path=base_path, profile_type=profile_type, cpu_seconds=cpu_seconds,
    )


class CountingTransport:
    """Wraps a transport and counts the body bytes the caller pulled through it."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.bytes_read = 0

    @contextmanager
    def open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        with self.inner.open(request, timeout) as response:
            yield dataclasses.replace(response, chunks=self._count(response.chunks))

    def _count(self, chunks):
        for chunk in chunks:
            self.bytes_read += len(chunk)
            yield chunk


@pytest.fixture(scope="module")
def shared_app(sample_app_binary):
    """One idle Go app for the tests that only read from it."""
    with GoApp(sample_app_binary) as app:
        yield app


@pytest.fixture
def direct():
    transport = DirectTransport()
    yield transport
    transport.close()


# -- the real Go app ----------------------------------------------------------------------------


@pytest.mark.parametrize(("profile_type", "sample_type"), PROFILE_TYPES.items())
def test_every_profile_type_is_a_gzipped_pprof_profile(shared_app, direct, tmp_path, profile_type, sample_type):
    request = pod_request(shared_app.port, profile_type)

    data = fetch_profile(direct, request, timeout=timeout_for(request))

    assert gzip.decompress(data)
    path = tmp_path / f"{profile_type}.pb.gz"
    path.write_bytes(data)
    top = run_go_tool_pprof("-top", str(path))
    assert top.returncode == 0, top.stderr
    assert f"\nType: {sample_type}\n" in top.stdout, top.stdout


def test_cpu_profile_taken_under_load_has_samples_of_the_load(go_app, direct, tmp_path):
    go_app.load(cpu_seconds=4, workers=2)
    request = pod_request(go_app.port, "cpu", cpu_seconds=2)

    loaded = fetch_profile(direct, request, timeout=timeout_for(request))

    (tmp_path / "loaded.pb.gz").write_bytes(loaded)
    top = run_go_tool_pprof("-top", "-cum", str(tmp_path / "loaded.pb.gz"))
    assert top.returncode == 0, top.stderr
    assert "main.burnCPU" in top.stdout, top.stdout


def test_overlapping_cpu_captures_one_gets_the_profile_the_other_target_busy(go_app, direct):
    outcomes: list[bytes | Exception] = []

    def capture(seconds: int) -> None:
        request = pod_request(go_app.port, "cpu", cpu_seconds=seconds)
        try:
            outcomes.append(fetch_profile(direct, request, timeout=timeout_for(request)))
        except TargetBusy as error:
            outcomes.append(error)

    # A 1 s capture started 0.2 s into a 3 s one overlaps it, whichever reaches Go's profiler
    # first; on a starved machine the 3 s one may not have started yet, so try a few times.
    for _ in range(3):
        outcomes.clear()
        long_capture = threading.Thread(target=capture, args=(3,))
        long_capture.start()
        time.sleep(0.2)
        capture(1)
        long_capture.join(BOUND_SECONDS)
        if any(isinstance(outcome, TargetBusy) for outcome in outcomes):
            break

    busy = [outcome for outcome in outcomes if isinstance(outcome, TargetBusy)]
    profiles = [outcome for outcome in outcomes if isinstance(outcome, bytes)]
    assert len(busy) == 1 and len(profiles) == 1, outcomes
    assert busy[0].retryable
    assert "cpu profiling already in use" in str(busy[0])
    assert gzip.decompress(profiles[0])


def test_unknown_profile_is_http_404_naming_the_target(shared_app, direct):
    request = pod_request(shared_app.port, "no-such-profile")

    with pytest.raises(CaptureFailed) as failure:
        fetch_profile(direct, request, timeout=10)

    assert str(failure.value).startswith(f"HTTP 404 Not Found from {request.target} (Content-Type text/plain")
    assert "Unknown profile" not in str(failure.value), "messages never quote what the target answered"


def test_closed_port_is_connection_refused(direct):
    port = free_port()

    with pytest.raises(CaptureFailed, match=f"connection refused by 127.0.0.1:{port}"):
        fetch_profile(direct, pod_request(port, "heap"), timeout=5)


def test_connections_are_reused_between_captures(shared_app, direct):
    for _ in range(5):
        fetch_profile(direct, pod_request(shared_app.port, "goroutine"), timeout=10)
    pool = direct._pool.connection_from_url(shared_app.url)
    # All five went over one kept-alive connection that is back in the pool, idle.
    assert pool.num_connections == 1
    assert pool.num_requests == 5


# -- a misbehaving server -----------------------------------------------------------------------


def test_server_that_never_answers_times_out(bad_server, direct):
    request = pod_request(bad_server.port, "heap", base_path="/hang/debug/pprof")
    started = time.monotonic()

    with pytest.raises(CaptureTimeout) as failure:
        fetch_profile(direct, request, timeout=1.0)

    assert time.monotonic() - started < BOUND_SECONDS
    assert str(failure.value) == f"timed out after 1 s waiting for {request.target}"


def test_body_that_stalls_times_out(bad_server, direct):
    request = pod_request(bad_server.port, "cpu", base_path="/stall/debug/pprof")
    started = time.monotonic()

    with pytest.raises(CaptureTimeout, match=r"timed out after 1.5 s reading the profile .* \(10 bytes received\)"):
        fetch_profile(direct, request, timeout=1.5)

    assert time.monotonic() - started < BOUND_SECONDS


def test_huge_body_stops_at_the_cap(bad_server, direct):
    counting = CountingTransport(direct)
    request = pod_request(bad_server.port, "heap", base_path="/huge/debug/pprof")

    with pytest.raises(CaptureTooLarge, match="profile exceeded 1 MiB cap"):
        fetch_profile(counting, request, timeout=10, max_bytes=MiB)

    assert MiB < counting.bytes_read <= MiB + CHUNK_BYTES


def test_html_is_not_a_profile_and_the_message_says_its_type_and_size_not_its_bytes(bad_server, direct):
    request = pod_request(bad_server.port, "heap", base_path="/html/debug/pprof")

    with pytest.raises(CaptureFailed) as failure:
        fetch_profile(direct, request, timeout=5)

    assert str(failure.value) == (
        "target returned non-pprof content (Content-Type text/html; charset=utf-8, first 22 bytes not gzip; "
        f"expected a gzip-compressed pprof profile) from {request.target}"
    )


def test_busy_profiler_is_target_busy_then_the_retry_succeeds(bad_server, direct):
    bad_server.configure("busy", busy_count=1)
    request = pod_request(bad_server.port, "cpu")

    with pytest.raises(TargetBusy, match="cpu profiling already in use"):
        fetch_profile(direct, request, timeout=5)
    assert fetch_profile(direct, request, timeout=5) == VALID_PROFILE_GZ


@pytest.mark.parametrize(("code", "text"), [(404, "404 Not Found"), (503, "503 Service Unavailable")])
def test_error_status_is_capture_failed_naming_it(bad_server, direct, code, text):
    request = pod_request(bad_server.port, "heap", base_path=f"/status/{code}/debug/pprof")

    with pytest.raises(CaptureFailed) as failure:
        fetch_profile(direct, request, timeout=5)

    assert str(failure.value) == (
        f"HTTP {text} from {request.target} (Content-Type text/plain; charset=utf-8, {len(text) + 1} bytes; "
        "expected a gzip-compressed pprof profile)"
    )


def test_500_that_is_not_about_the_profiler_is_a_failure_not_busy(bad_server, direct):
    bad_server.configure("status", status=500, body=b"panic: runtime error: index out of range\n")

    with pytest.raises(CaptureFailed, match=r"HTTP 500 Internal Server Error .*\(.*, 41 bytes;") as failure:
        fetch_profile(direct, pod_request(bad_server.port, "cpu"), timeout=5)
    assert not isinstance(failure.value, TargetBusy)
    assert "panic" not in str(failure.value)


def test_long_error_body_is_named_by_its_size_only(bad_server, direct):
    bad_server.configure("status", status=502, body=b"x" * 100_000)

    with pytest.raises(CaptureFailed) as failure:
        fetch_profile(direct, pod_request(bad_server.port, "heap"), timeout=5)

    assert "100000 bytes" in str(failure.value) and "xxx" not in str(failure.value)


# -- scripted raw answers -----------------------------------------------------------------------


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(scripts, **kwargs) -> ScriptedServer:
        server = ScriptedServer(scripts, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_trickling_body_hits_the_total_deadline(scripted, direct):
    """One byte every 50 ms never trips a per-read timeout; only a total deadline stops it."""

    def trickle(connection, _path):
        connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n\x1f\x8b")
        for _ in range(2400):  # two minutes at most
            if server.stopping.wait(0.05):
                return
            connection.sendall(b"\x00")

    server = scripted({"/debug/pprof/heap": trickle})
    started = time.monotonic()

    with pytest.raises(CaptureTimeout, match=r"timed out after 1.5 s reading the profile"):
        fetch_profile(direct, pod_request(server.port, "heap"), timeout=1.5)

    assert time.monotonic() - started < BOUND_SECONDS


def test_endless_chunk_size_line_hits_the_total_deadline(scripted, direct):
    """A chunk-size line that never ends is read in one blocking call that per-read timeouts and
    checks between chunks cannot interrupt; the deadline watchdog must cut it."""

    def endless_size_line(connection, _path):
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6000):  # two minutes at most
            if server.stopping.wait(0.02):
                return
            connection.sendall(b"0")

    server = scripted({"/debug/pprof/heap": endless_size_line})
    started = time.monotonic()

    with pytest.raises(CaptureTimeout, match=r"timed out after 1.5 s reading the profile .* \(0 bytes received\)"):
        fetch_profile(direct, pod_request(server.port, "heap"), timeout=1.5)

    assert time.monotonic() - started < BOUND_SECONDS


def test_chunked_body_arriving_in_pieces_is_reassembled(scripted, direct):
    def chunked(connection, _path):
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(VALID_PROFILE_GZ), 7):
            piece = VALID_PROFILE_GZ[start : start + 7]
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.005)
        connection.sendall(b"0\r\n\r\n")

    server = scripted({"/debug/pprof/heap": chunked})

    assert fetch_profile(direct, pod_request(server.port, "heap"), timeout=5) == VALID_PROFILE_GZ


def test_empty_body_is_a_failure(scripted, direct):
    server = scripted({"/debug/pprof/heap": respond(b"")})

    with pytest.raises(CaptureFailed, match="target returned an empty body"):
        fetch_profile(direct, pod_request(server.port, "heap"), timeout=5)


def test_one_byte_body_is_not_a_profile(scripted, direct):
    server = scripted({"/debug/pprof/heap": respond(b"\x1f")})

    with pytest.raises(CaptureFailed, match=r"non-pprof content \(no Content-Type, first 1 bytes not gzip;"):
        fetch_profile(direct, pod_request(server.port, "heap"), timeout=5)


def test_body_cut_short_of_its_length_is_a_lost_connection(scripted, direct):
    def truncated(connection, _path):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + VALID_PROFILE_GZ[:50])

    server = scripted({"/debug/pprof/heap": truncated})

    with pytest.raises(CaptureFailed, match=r"connection lost while reading the profile .* after 50 bytes"):
        fetch_profile(direct, pod_request(server.port, "heap"), timeout=5)


def test_announced_length_over_the_cap_is_refused_unread(scripted, direct):
    def announced(connection, _path):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n\x1f\x8b")
        server.stopping.wait(BOUND_SECONDS)

    server = scripted({"/debug/pprof/heap": announced})
    counting = CountingTransport(direct)

    with pytest.raises(CaptureTooLarge, match=r"profile exceeded 1 MiB cap: .* announced 104857600 bytes"):
        fetch_profile(counting, pod_request(server.port, "heap"), timeout=5, max_bytes=MiB)
    assert counting.bytes_read == 0


def test_reset_before_any_answer_is_a_lost_connection(scripted, direct):
    server = scripted({"/debug/pprof/heap": reset_connection})

    with pytest.raises(CaptureFailed, match=r"connection to 127.0.0.1:.* lost before a response"):
        fetch_profile(direct, pod_request(server.port, "heap"), timeout=5)


def test_https_with_verification_off_accepts_a_self_signed_pod(scripted, tmp_path):
    server = scripted({"/debug/pprof/heap": respond(VALID_PROFILE_GZ)}, tls=server_tls_context(tmp_path))
    transport = DirectTransport(tls_verify=False)

    with pytest.warns(Warning, match="Unverified HTTPS request"):
        data = fetch_profile(transport, pod_request(server.port, "heap", scheme="https"), timeout=5)

    assert data == VALID_PROFILE_GZ


def test_https_with_verification_on_refuses_a_self_signed_pod_and_says_what_to_do(scripted, tmp_path):
    server = scripted({"/debug/pprof/heap": respond(VALID_PROFILE_GZ)}, tls=server_tls_context(tmp_path))

    with pytest.raises(CaptureFailed) as failure:
        fetch_profile(DirectTransport(), pod_request(server.port, "heap", scheme="https"), timeout=5)

    message = str(failure.value)
    assert "certificate verify failed" in message
    assert "tls_verify=False" in message


# -- the deadline watchdog ----------------------------------------------------------------------


def test_watchdog_fires_an_earlier_deadline_registered_after_a_later_one():
    watchdog = Watchdog(idle_exit=0.2)
    late, early = threading.Event(), threading.Event()
    late_watch = watchdog.watch(time.monotonic() + 3600, late.set)

    early_watch = watchdog.watch(time.monotonic() + 0.1, early.set)

    assert early.wait(BOUND_SECONDS)
    assert early_watch.cancel() is True  # it had fired
    assert not late.is_set()
    assert late_watch.cancel() is False


def test_watchdog_never_cuts_a_cancelled_watch_and_its_thread_ends_when_idle():
    watchdog = Watchdog(idle_exit=0.2)
    cut = threading.Event()
    watch = watchdog.watch(time.monotonic() + 0.3, cut.set)
    assert watchdog.running

    assert watch.cancel() is False
    deadline = time.monotonic() + BOUND_SECONDS
    while watchdog.running and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not watchdog.running
    assert not cut.is_set()
    assert not watch.fired


# -- budgets and construction -------------------------------------------------------------------


def test_timeout_for_gives_cpu_profiles_their_seconds_plus_a_margin():
    assert timeout_for(pod_request(1, "cpu", cpu_seconds=30)) == 45.0
    assert timeout_for(pod_request(1, "cpu", cpu_seconds=5), base_timeout=10, cpu_margin=2) == 7.0
    assert timeout_for(pod_request(1, "heap", cpu_seconds=30)) == 30.0
    assert timeout_for(pod_request(1, "goroutine"), base_timeout=12.5) == 12.5


def test_make_transport_builds_each_transport_by_name():
    from kubernetes.client import ApiClient, Configuration

    configuration = Configuration(host="http://127.0.0.1:1")
    api_client = ApiClient(configuration)
    assert make_transport("direct").name == "direct"
    assert make_transport("proxy", api_client=api_client).name == "proxy"
    assert make_transport("portforward", api_client=api_client).name == "portforward"
    assert make_transport("direct", tls_verify=False).tls_verify is False


def test_make_transport_refuses_unknown_names_and_missing_api_clients():
    with pytest.raises(ValueError, match="unknown transport 'ssh': expected one of direct, proxy, portforward"):
        make_transport("ssh")
    for name in ("proxy", "portforward"):
        with pytest.raises(ValueError, match=f"the '{name}' transport .* needs an api_client"):
            make_transport(name)


def test_stopped_server_mid_body_does_not_leave_the_capture_hanging(direct):
    """A BadServer stopped while a capture streams from it: the capture ends, with a failure."""
    server = BadServer("stall")
    outcome: dict[str, BaseException] = {}

    def capture():
        try:
            fetch_profile(direct, pod_request(server.port, "heap"), timeout=BOUND_SECONDS)
        except BaseException as error:  # inspected below
            outcome["error"] = error

    runner = threading.Thread(target=capture)
    runner.start()
    try:
        waited = time.monotonic() + BOUND_SECONDS
        while not server.requests and time.monotonic() < waited:
            time.sleep(0.02)
        time.sleep(0.1)  # let the first bytes of the body reach the client
    finally:
        server.stop()
    runner.join(BOUND_SECONDS)
    assert not runner.is_alive()
    assert isinstance(outcome.get("error"), CaptureFailed), outcome
