"""The triggers carried out: captures of the real Go pprof app for a capture-now request, an alert and
a time-to-OOM trend, into the local store; what the history records of each, and that the next
check with that history does not capture the same request or alert again; the check cycle's
save_samples hook."""

from __future__ import annotations

import json

from kprof_lib import reconcile
from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.execution import cycle
from kprof_lib.execution.executor import Executor
from tests.support.net import free_port
from tests.support.pods import ENABLED, pod, pod_metrics

NOW = "2026-11-25T10:00:00Z"
LATER = "2026-11-25T11:00:00Z"  # past every cooldown


def target(port: int, name: str = "api-0", **annotations: str) -> dict:
    return pod(
        name,
        "shop",
        app="api",
        annotations={**ENABLED, "profiling.io/port": str(port), **annotations},
        pod_ip="127.0.0.1",
    )


def merged(history: dict, updates: dict) -> dict:
    """The history as a runtime keeps it: each pod's fields updated by the report's."""
    out = {key: dict(entry) for key, entry in history.items()}
    for key, update in updates.items():
        out.setdefault(key, {}).update(update)
    return out


def sidecar(store: LocalStore, key: str) -> dict:
    """What the local store keeps beside a profile: its metadata, as S3 would."""
    path = store.path_for(key)
    return json.loads(path.with_name(path.name + ".json").read_text())


def test_one_capture_per_capture_now_value_and_the_value_in_the_metadata(go_app, tmp_path):
    store, transport, run = LocalStore(tmp_path), DirectTransport(), Executor()
    spec = {"profileTypes": ["heap"]}
    asked = target(go_app.port, **{"profiling.io/capture-now": "incident-42"})

    report = run.execute(reconcile(spec, {"now": NOW, "pods": [asked]}), store=store, transport=transport)
    [result] = report.results
    assert (result.status, result.reason, result.request_value) == ("captured", "requested", "incident-42")
    assert report.history_updates == {"shop/api-0": {"lastRequestedCapture": NOW, "captureNowValue": "incident-42"}}
    metadata = sidecar(store, result.profiles[0].key)["metadata"]
    assert (metadata["reason"], metadata["capture-now"]) == ("requested", "incident-42")
    assert "alert" not in metadata

    # The next check (another replica, or after a restart) reads the history: nothing more.
    history = merged({}, report.history_updates)
    again = reconcile(spec, {"now": LATER, "pods": [asked], "history": history})
    assert [(d.action, d.reason) for d in again.results] == [("none", "not-due")]
    # A new value is a new request.
    renewed = target(go_app.port, **{"profiling.io/capture-now": "incident-43"})
    plan = reconcile(spec, {"now": LATER, "pods": [renewed], "history": history})
    assert [(d.reason, d.request_value) for d in plan.results] == [("requested", "incident-43")]


def test_a_failed_request_is_served_too_and_not_retried(tmp_path):
    closed = free_port()
    asked = target(closed, **{"profiling.io/capture-now": "v1"})
    report = Executor().execute(
        reconcile({"profileTypes": ["heap"]}, {"now": NOW, "pods": [asked]}),
        store=LocalStore(tmp_path),
        transport=DirectTransport(),
    )
    [result] = report.results
    assert result.status == "failed" and result.request_value == "v1"
    assert report.history_updates == {
        "shop/api-0": {"lastFailedCapture": NOW, "failingSince": NOW, "captureNowValue": "v1"}
    }
    plan = reconcile({}, {"now": LATER, "pods": [asked], "history": merged({}, report.history_updates)})
    assert [(d.action, d.reason) for d in plan.results] == [("none", "not-due")]


def test_an_alert_is_served_once_per_fingerprint(go_app, tmp_path):
    store, transport, run = LocalStore(tmp_path), DirectTransport(), Executor()
    spec = {"profileTypes": ["goroutine"], "triggers": {"alerts": {"enabled": True, "cooldownSeconds": 60}}}
    labelled = pod(
        "api-0",
        "shop",
        app="api",
        labels={"team": "core"},
        pod_ip="127.0.0.1",
        annotations={**ENABLED, "profiling.io/port": str(go_app.port)},
    )
    firing = {
        "fingerprint": "4f1c2ab9e0d3c711",
        "alertname": "HighLatency",
        "namespace": "shop",
        "matchLabels": {"team": "core"},
        "startsAt": "2026-11-25T09:59:00Z",
    }
    history = {"shop/api-0": {"alertFingerprints": ["0000000000000001"], "lastAlertCapture": "2026-11-25T08:00:00Z"}}
    state = {"now": NOW, "pods": [labelled], "alerts": [firing], "history": history}

    report = run.execute(reconcile(spec, state), store=store, transport=transport)
    [result] = report.results
    assert (result.status, result.reason, result.alert) == ("captured", "alert", "HighLatency")
    assert report.history_updates == {
        "shop/api-0": {"lastAlertCapture": NOW, "alertFingerprints": ["0000000000000001", "4f1c2ab9e0d3c711"]}
    }
    assert sidecar(store, result.profiles[0].key)["metadata"]["alert"] == "HighLatency"

    # Still firing an hour later, past the cooldown: served already. A new fingerprint is captured.
    history = merged(history, report.history_updates)
    later = {"now": LATER, "pods": [labelled], "alerts": [firing], "history": history}
    assert [d.reason for d in reconcile(spec, later).results] == ["not-due"]
    second = {**firing, "fingerprint": "9a9a9a9a9a9a9a9a", "alertname": "ErrorBudget"}
    plan = reconcile(spec, {**later, "alerts": [firing, second]})
    assert [(d.reason, d.alert) for d in plan.results] == [("alert", "ErrorBudget")]


def test_an_oom_risk_capture_takes_heap_first_and_starts_its_cooldown(go_app, tmp_path):
    spec = {"profileTypes": ["goroutine"], "triggers": {"oom": {"minSamples": 2}}}
    rising = target(go_app.port)  # limit 256Mi
    window = [
        {"time": "2026-11-25T09:58:00Z", "memoryBytes": 150 * 2**20},
        {"time": "2026-11-25T09:59:00Z", "memoryBytes": 180 * 2**20},
    ]
    state = {
        "now": NOW,
        "pods": [rising],
        "podMetrics": [pod_metrics("api-0", "shop", {"app": {"cpu": "100m", "memory": "210Mi"}})],
        "usageWindow": {"shop/api-0": window},
    }
    plan = reconcile(spec, state)
    [decision] = plan.results
    assert (decision.reason, decision.profile_types) == ("oom-risk", ("heap", "goroutine"))
    assert decision.message == "memory 82% of limit, rising 11.7%/min, limit reached in ~92 s"
    report = Executor().execute(plan, store=LocalStore(tmp_path), transport=DirectTransport())
    assert [p.type for p in report.results[0].profiles if p.status == "stored"] == ["heap", "goroutine"]
    assert report.history_updates == {"shop/api-0": {"lastOomCapture": NOW}}
    cooling = reconcile(spec, {**state, "history": merged({}, report.history_updates)})
    assert [d.reason for d in cooling.results] == ["cooldown"]


def test_run_check_hands_this_checks_samples_to_save_samples(tmp_path):
    saved: list[dict] = []
    spec = {"triggers": {"spike": {"cpuDiffPercent": 50}}}
    measured, unmeasured = target(free_port(), "api-0"), target(free_port(), "api-1")
    state = {
        "now": NOW,
        "pods": [measured, unmeasured],
        "podMetrics": [pod_metrics("api-0", "shop", {"app": {"cpu": "100m", "memory": "64Mi"}})],
    }

    def run(save_samples=saved.append, **extra) -> cycle.CheckReport:
        return cycle.run_check(
            config_name="shop/cfg",
            spec=spec,
            gather=lambda: state,
            executor=Executor(),
            store=LocalStore(tmp_path),
            transport=DirectTransport(),
            save_samples=save_samples,
            **extra,
        )

    report = run()
    # Nothing was due (no window yet), the sample is saved all the same; the unmeasured pod has none.
    assert [d.reason for d in report.plan.results] == ["no-window", "no-metrics"]
    assert saved == [{"shop/api-0": {"time": NOW, "cpuCores": 0.1, "memoryBytes": 64.0 * 2**20, "goroutines": None}}]
    run(check_mode=True)
    assert len(saved) == 1, "check mode saved samples"

    def broken(samples):
        raise OSError("disk full")

    failing = run(save_samples=broken)
    assert failing.history_error is None and [d.reason for d in failing.plan.results] == ["no-window", "no-metrics"]


def test_without_a_window_trigger_no_samples_are_made(tmp_path):
    saved: list[dict] = []
    state = {
        "now": NOW,
        "pods": [target(free_port())],
        "podMetrics": [pod_metrics("api-0", "shop", {"app": {"cpu": "100m", "memory": "64Mi"}})],
    }
    report = cycle.run_check(
        config_name="shop/cfg",
        spec={"thresholds": {}},
        gather=lambda: state,
        executor=Executor(),
        store=LocalStore(tmp_path),
        transport=DirectTransport(),
        save_samples=saved.append,
    )
    assert [d.sample for d in report.plan.results] == [None] and saved == []
