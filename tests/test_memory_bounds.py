"""Memory stays bounded: one copy of a profile per capture (fetching it, and spooling it), a global
in-flight byte budget shared by every capture of the process, and the start-up check that
`concurrency` profiles at the cap fit that budget (`kprof run` and the chart). The figure against
the chart's memory limit is benchmarks/bench_memory.py's; these tests pin the mechanisms."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import os
import subprocess
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.spool import SpoolingStore
from kprof_lib.execution.budget import BudgetExhausted, ByteBudget
from kprof_lib.execution.capture import fetch_profile
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import PPROF_CONTENT_TYPE, ProfileRequest, Response
from kprof_lib.planning.reconcile import reconcile
from kprof_lib.runtimes import cli
from kprof_lib.runtimes.commands import run as run_command
from tests.operator_support import kprof_command
from tests.support.manifests import helm
from tests.support.pods import ENABLED, pod
from tests.support.stores import UnreachableStore

MiB = 1 << 20
BODY = gzip.compress(os.urandom(16 * MiB), compresslevel=0)
OPERATOR_CHART = Path(__file__).resolve().parent.parent / "helm/kprof-operator"


@pytest.fixture(scope="module")
def big_server():
    """Serves BODY, chunked, from memory views of it (no per-request copy in this process)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            view = memoryview(BODY)
            for start in range(0, len(view), 256 * 1024):
                piece = view[start : start + 256 * 1024]
                self.wfile.write(b"%x\r\n" % len(piece))
                self.wfile.write(piece)
                self.wfile.write(b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def request_for(port: int) -> ProfileRequest:
    return ProfileRequest(namespace="shop", pod="big-1", pod_ip="127.0.0.1", scheme="http", port=port,
                          base_path="/debug/pprof", profile_type="heap")


def peak_allocated(action) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_capture_holds_one_copy_of_its_profile(big_server):
    transport = DirectTransport()
    fetch_profile(transport, request_for(big_server), timeout=30)  # warm the pool and imports

    data, peak = peak_allocated(lambda: fetch_profile(transport, request_for(big_server), timeout=30, max_bytes=64 * MiB))

    assert data == BODY
    # One copy, plus what urllib3 holds for a chunk or two; a list of chunks joined needs 2x.
    assert peak < 1.25 * len(BODY), f"peak {peak / MiB:.1f} MiB for a {len(BODY) / MiB:.1f} MiB profile"


def test_spooling_a_profile_does_not_copy_it(tmp_path):
    store = SpoolingStore(UnreachableStore(), tmp_path / "spool", max_bytes=64 * MiB)
    stored, peak = peak_allocated(
        lambda: store.put("shop/big-1/k.pprof", BODY, metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    )
    assert stored.spooled
    # The header and the profile are written one after the other; joining them copies the profile.
    assert peak < 0.25 * len(BODY), f"peak {peak / MiB:.1f} MiB spooling a {len(BODY) / MiB:.1f} MiB profile"


# -- the in-flight byte budget ------------------------------------------------------------------


def test_the_budget_makes_a_capture_wait_until_bytes_are_given_back():
    budget = ByteBudget(100)
    with budget.holding() as first:
        first.reserve(80, time.monotonic() + 1)
        waited = []

        def second():
            with budget.holding() as held:
                started = time.monotonic()
                held.reserve(40, time.monotonic() + 10)
                waited.append(time.monotonic() - started)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert budget.used == 80 and not waited, "the second capture waits while the budget is spent"
    thread.join(10)
    assert waited and waited[0] >= 0.25
    assert budget.used == 0 and budget.peak == 80


def test_the_budget_gives_up_at_the_deadline_and_refuses_what_can_never_fit():
    budget = ByteBudget(100)
    with budget.holding() as first:
        first.reserve(100, time.monotonic() + 1)
        with budget.holding() as second, pytest.raises(BudgetExhausted, match="stayed spent by other captures"):
            second.reserve(1, time.monotonic() + 0.2)
    with budget.holding() as alone, pytest.raises(BudgetExhausted, match="needs more than the in-flight byte budget"):
        alone.reserve(101, time.monotonic() + 5)
    assert budget.used == 0


class Sized:
    """A pprof endpoint stand-in answering `size` bytes (gzip magic first) in 64 KiB chunks."""

    name = "sized"

    def __init__(self, size: int) -> None:
        self.size = size

    @contextlib.contextmanager
    def open(self, request, timeout):
        body = b"\x1f\x8b" + b"\0" * (self.size - 2)
        yield Response(200, "OK", {}, iter(body[i : i + 65536] for i in range(0, len(body), 65536)))


class SlowStore:
    """Holds each profile a moment before it is stored, as an upload does."""

    description = "slow"
    bucket = None

    def __init__(self) -> None:
        self.stored = []

    def uri_for(self, key):
        return f"slow://{key}"

    def put(self, key, data, **kwargs):
        from kprof_lib.execution.ports import StoredObject

        time.sleep(0.2)
        self.stored.append(key)
        return StoredObject(uri=self.uri_for(key), key=key, size=len(data))


def test_checks_running_at_once_share_one_budget():
    # The operator's shape: one executor, several checks at once (one per config), each with its
    # own pool of workers. Profiles of 1 MiB, room for two at a time in all.
    executor = Executor(concurrency=2, max_bytes=MiB, byte_budget=ByteBudget(2 * MiB))
    spec = {"onDemand": {"enabled": True}, "profileTypes": ["heap"]}
    plans = [
        reconcile(spec, {"now": "2026-11-25T10:00:00Z",
                         "pods": [pod(f"p{c}-{i}", f"ns{c}", annotations=ENABLED) for i in range(3)]})
        for c in range(3)
    ]
    store = SlowStore()

    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda plan: executor.execute(plan, store=store, transport=Sized(MiB)), plans))

    assert [r.status for report in reports for r in report.results] == ["captured"] * 9
    assert len(store.stored) == 9
    assert executor.byte_budget.peak <= 2 * MiB
    assert executor.byte_budget.used == 0


def test_an_executor_whose_concurrency_does_not_fit_its_budget_is_refused():
    with pytest.raises(ValueError, match=r"concurrency \(8\) x size cap \(67108864 bytes\) = 536870912 bytes does not fit"):
        Executor(concurrency=8, byte_budget=ByteBudget(256 * MiB))


def test_kprof_run_checks_concurrency_times_cap_against_the_budget_at_start():
    result = subprocess.run(
        [*kprof_command(), "run", "--concurrency", "8", "--kubeconfig", "/nonexistent", "--log-format", "text"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--concurrency (8) x --max-profile-bytes (67108864) = 536870912 does not fit --max-inflight-bytes " \
           "(268435456)" in result.stderr


def test_the_chart_refuses_a_concurrency_that_does_not_fit_the_budget():
    result = helm("template", "kprof", OPERATOR_CHART, "--set", "concurrency=8", check=False)
    assert result.returncode != 0
    assert "concurrency (8) x maxProfileBytes (67108864) does not fit maxInflightBytes (268435456)" in result.stderr
    ok = helm("template", "kprof", OPERATOR_CHART, "--set", "concurrency=8,maxInflightBytes=536870912")
    assert "--max-inflight-bytes=536870912" in ok.stdout


@pytest.mark.parametrize(
    ("contents", "expected"),
    [(["536870912\n"], 536870912), (["max\n"], None), ([None, "9223372036854771712\n"], None),
     ([None, "268435456\n"], 268435456), ([None, None], None)],
)
def test_the_container_memory_limit_is_read_from_cgroup_v2_then_v1(tmp_path, contents, expected):
    paths = []
    for index, text in enumerate(contents):
        path = tmp_path / f"limit-{index}"
        if text is not None:
            path.write_text(text)
        paths.append(str(path))
    assert run_command.memory_limit(tuple(paths)) == expected


def test_a_budget_over_half_the_memory_limit_is_warned_about_at_start():
    args = cli.build_parser().parse_args(["run"])
    assert run_command._memory_warning(args, 512 * MiB) is None, "the defaults fit the chart's 512Mi"
    assert "more than half of this container's memory limit" in run_command._memory_warning(args, 384 * MiB)
    assert run_command._memory_warning(args, None) is None
