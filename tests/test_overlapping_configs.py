"""Overlapping configs never starve each other: two ProfilingConfigs selecting the same pod on the
same schedule both get their profile every cycle (the second waits for the first capture of the
pod to end, then runs), each with its own history update and keys that never collide."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import time
from concurrent.futures import ThreadPoolExecutor

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.execution.executor import Executor, PodLocks
from kprof_lib.execution.ports import Response
from kprof_lib.planning.reconcile import reconcile
from tests.support.pods import ENABLED, pod

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
INTERVAL = 300


class SlowEndpoint:
    """A pprof endpoint that takes a moment to answer, so the two configs' captures overlap."""

    name = "slow"

    @contextlib.contextmanager
    def open(self, request, timeout):
        time.sleep(0.3)
        body = gzip.compress(f"{request.pod} {request.profile_type} {time.monotonic()}".encode())
        yield Response(200, "OK", {}, iter([body]))


def spec(prefix: str) -> dict:
    return {"onDemand": {"enabled": True, "intervalSeconds": INTERVAL}, "profileTypes": ["heap"],
            "s3Config": {"bucket": "unused", "prefix": prefix}}


def test_two_configs_on_the_same_schedule_both_capture_the_pod_every_cycle(tmp_path):
    executor = Executor(concurrency=2, pod_locks=PodLocks())
    store = LocalStore(tmp_path)
    target = pod("api-1", "shop", annotations=ENABLED)
    # Same prefix too: the keys of the two captures must still differ.
    configs = {"shop/team-a": spec("shared"), "shop/team-b": spec("shared")}
    history: dict[str, dict] = {name: {} for name in configs}

    for cycle in range(3):
        now = (T0 + dt.timedelta(seconds=cycle * INTERVAL)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def check(name: str, now: str = now):
            plan = reconcile(configs[name], {"now": now, "pods": [target], "history": history[name]})
            return name, executor.execute(plan, store=store, transport=SlowEndpoint(), config_name=name)

        with ThreadPoolExecutor(2) as pool:
            reports = dict(pool.map(check, configs))

        for name, report in reports.items():
            [result] = report.results
            assert (result.status, result.reason) == ("captured", "on-demand"), (cycle, name, result)
            assert report.history_updates == {"shop/api-1": {"lastOnDemandCapture": now}}
            history[name] = report.history_updates

    stored = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.pprof"))
    assert len(stored) == 6, stored
