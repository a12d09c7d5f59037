"""Usage window stores (kprof_lib.adapters.windows, adapters.kube.windows): bounded per pod and in
pods, fed one check's samples at a time, and persisted where a restart must find them: the
sidecar's file beside its history, the operator's ConfigMap beside its history in the real control
plane (cut to its byte bound, written at most every persist interval and on flush, read back by a
new instance, a damaged one ignored, deleted with its config)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kprof_lib.adapters import windows
from kprof_lib.adapters.kube.history import configmap_name
from kprof_lib.adapters.kube.windows import ConfigMapWindows, windows_configmap_name
from kprof_lib.state import cluster

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return cluster.format_time(T0 + dt.timedelta(seconds=seconds))


def sample(seconds: float, memory: float | None = 100.0, cpu: float | None = 0.5, goroutines: int | None = 10):
    return {"time": at(seconds), "cpuCores": cpu, "memoryBytes": memory, "goroutines": goroutines}


def test_each_pod_keeps_its_newest_samples_oldest_first():
    store = windows.UsageWindows(limit=3)
    for second in range(0, 50, 10):
        store.append({"shop/a": sample(second, memory=second), "shop/b": sample(second, goroutines=None)})
    assert store.snapshot() == {
        "shop/a": [sample(20, memory=20), sample(30, memory=30), sample(40, memory=40)],
        "shop/b": [sample(20, goroutines=None), sample(30, goroutines=None), sample(40, goroutines=None)],
    }
    # A check for the same moment again, and one from before: nothing added.
    assert store.append({"shop/a": sample(40, memory=1), "shop/b": sample(5)}) == 0
    # A new bound (the spec's windowSamples changed) applies at once, and never above 120.
    store.append({"shop/a": sample(50)}, limit=2)
    assert [s["time"] for s in store.snapshot()["shop/a"]] == [at(40), at(50)]
    store.append({}, limit=10_000)
    assert store.limit == windows.MAX_SAMPLES


def test_pods_not_measured_for_longer_than_max_age_leave():
    store = windows.UsageWindows(limit=5, max_age=dt.timedelta(minutes=10))
    store.append({"shop/gone": sample(0), "shop/stays": sample(0)})
    store.append({"shop/stays": sample(300)})
    assert sorted(store.snapshot()) == ["shop/gone", "shop/stays"]
    store.append({"shop/stays": sample(601)})
    assert sorted(store.snapshot()) == ["shop/stays"]


@pytest.mark.parametrize(
    "bad",
    [
        {"time": "yesterday", "cpuCores": 1, "memoryBytes": 1, "goroutines": 1},
        {"cpuCores": 1},
        {"time": at(0), "cpuCores": -1, "memoryBytes": 1, "goroutines": 1},
        {"time": at(0), "cpuCores": 1, "memoryBytes": "1Gi", "goroutines": 1},
        {"time": at(0), "cpuCores": True, "memoryBytes": 1, "goroutines": 1},
    ],
)
def test_a_sample_that_is_not_one_is_left_out(bad):
    store = windows.UsageWindows()
    assert store.append({"shop/a": bad, "shop/b": sample(0)}) == 1
    assert list(store.snapshot()) == ["shop/b"]


def test_the_compact_form_round_trips_and_fits_its_bound():
    store = windows.UsageWindows()
    for second in range(0, 1200, 10):
        store.append({f"shop/pod-{i}": sample(second, memory=1e9 + second) for i in range(40)})
    full = store.rows()
    text = windows.dumps(full)
    assert windows.decode(json.loads(text)) == full
    assert len(text) < len(json.dumps(store.snapshot())) * 0.7
    cut = windows.fit(full, 64 * 1024)
    assert len(windows.dumps(cut)) <= 64 * 1024
    # Every pod keeps as many of its newest samples as all of them can.
    kept = {len(rows) for rows in cut.values()}
    assert sorted(cut) == sorted(full) and len(kept) == 1 and 5 <= kept.pop() < 120
    assert all(rows[-1] == full[key][-1] for key, rows in cut.items())
    tiny = windows.fit(full, 400)
    assert 0 < len(tiny) < 40 and len(windows.dumps(tiny)) <= 400
    with pytest.raises(ValueError, match="version 1"):
        windows.decode({"version": 2, "pods": {}})


def test_reconcile_is_given_a_view_that_makes_sample_objects_only_when_read():
    store = windows.UsageWindows(limit=3)
    store.append({"shop/a": sample(0), "shop/b": sample(0, memory=None)})
    view = store.view()
    assert sorted(view) == ["shop/a", "shop/b"] and len(view) == 2 and "shop/c" not in view
    read = view["shop/b"]
    assert read == [sample(0, memory=None)]
    store.append({"shop/b": sample(10)})
    assert read == [sample(0, memory=None)], "what was read is a copy"
    assert view.get("shop/b") == [sample(0, memory=None), sample(10)]
    assert view.get("shop/c") is None


def test_the_window_file_keeps_the_windows_for_the_next_process(tmp_path, caplog):
    path = tmp_path / "spool" / "kprof-usage-window.json"
    first = windows.WindowFile(path, limit=4)
    first.append({"shop/a": sample(0)})
    first.append({"shop/a": sample(10, memory=200)})
    assert json.loads(path.read_text())["pods"]["shop/a"][1] == [at(10), 0.5, 200, 10]
    again = windows.WindowFile(path, limit=4)
    assert again.snapshot() == {"shop/a": [sample(0), sample(10, memory=200)]}

    path.write_text("{not json")
    with caplog.at_level("WARNING", logger="kprof.windows"):
        assert windows.WindowFile(path).snapshot() == {}
    assert "cannot be read" in caplog.text and "starting without it" in caplog.text


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def stored(plane, namespace: str, config_key: str, node: str | None = None):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        configmap = client.CoreV1Api(plane.api()).read_namespaced_config_map(
            windows_configmap_name(config_key, node), namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return configmap


def test_the_operators_windows_live_in_a_configmap_beside_the_history(control_plane):
    namespace = control_plane.new_namespace("kprof-windows")
    key = "shop/leaks"
    clock = Clock()
    store = ConfigMapWindows(control_plane.api(), namespace, persist_every=30, monotonic=clock)
    assert store.snapshot(key) == {} and stored(control_plane, namespace, key) is None

    store.append(key, {"shop/a": sample(0)}, limit=5)  # the first write is due at once
    configmap = stored(control_plane, namespace, key)
    assert configmap.metadata.name == windows_configmap_name(key)
    assert configmap.metadata.name == "kprof-windows-" + configmap_name(key).removeprefix("kprof-history-")
    assert configmap.metadata.labels == {
        "app.kubernetes.io/managed-by": "kprof",
        "app.kubernetes.io/component": "usage-windows",
    }
    assert configmap.metadata.annotations == {"profiling.io/config": key}
    first_version = configmap.metadata.resource_version

    # Within the persist interval: kept in memory only.
    clock.now += 10
    store.append(key, {"shop/a": sample(10)}, limit=5)
    assert stored(control_plane, namespace, key).metadata.resource_version == first_version
    assert [s["time"] for s in store.snapshot(key)["shop/a"]] == [at(0), at(10)]
    clock.now += 25
    store.append(key, {"shop/a": sample(20)}, limit=5)
    written = json.loads(stored(control_plane, namespace, key).data["windows.json"])
    assert [row[0] for row in written["pods"]["shop/a"]] == [at(0), at(10), at(20)]

    # flush() (at stop) writes what is newer; a new operator reads it all back.
    store.append(key, {"shop/a": sample(30), "shop/b": sample(30)}, limit=5)
    store.flush()
    restarted = ConfigMapWindows(control_plane.api(), namespace)
    assert restarted.snapshot(key) == store.snapshot(key)
    assert [s["time"] for s in restarted.snapshot(key)["shop/a"]] == [at(0), at(10), at(20), at(30)]

    # Another writer meanwhile (a former leader): the last write wins, nothing fails.
    restarted.append(key, {"shop/c": sample(40)})
    clock.now += 60
    store.append(key, {"shop/a": sample(50)}, limit=5)
    assert sorted(ConfigMapWindows(control_plane.api(), namespace).snapshot(key)) == ["shop/a", "shop/b"]

    store.forget(key)
    assert stored(control_plane, namespace, key) is None
    assert ConfigMapWindows(control_plane.api(), namespace).snapshot(key) == {}


def test_node_agents_keep_their_windows_apart(control_plane):
    # Each node agent writes its own node's pods' windows: two agents of one config never
    # overwrite each other, and the operator's own ConfigMap is a third one.
    namespace = control_plane.new_namespace("kprof-windows")
    key = "shop/leaks"
    one = ConfigMapWindows(control_plane.api(), namespace, node="node-1")
    two = ConfigMapWindows(control_plane.api(), namespace, node="node-2")
    one.append(key, {"shop/a": sample(0)}, limit=5)
    two.append(key, {"shop/b": sample(0)}, limit=5)
    for node, pod in (("node-1", "shop/a"), ("node-2", "shop/b")):
        configmap = stored(control_plane, namespace, key, node)
        assert configmap.metadata.name == windows_configmap_name(key, node) != windows_configmap_name(key)
        assert configmap.metadata.labels["profiling.io/node"] == node
        assert list(json.loads(configmap.data["windows.json"])["pods"]) == [pod]
    assert stored(control_plane, namespace, key) is None
    assert list(ConfigMapWindows(control_plane.api(), namespace, node="node-1").snapshot(key)) == ["shop/a"]
    one.forget(key)
    assert stored(control_plane, namespace, key, "node-1") is None
    assert stored(control_plane, namespace, key, "node-2") is not None


def test_a_damaged_configmap_is_ignored_and_a_big_one_is_cut(control_plane, caplog):
    from kubernetes import client

    namespace = control_plane.new_namespace("kprof-windows")
    key = "shop/big"
    client.CoreV1Api(control_plane.api()).create_namespaced_config_map(
        namespace, {"metadata": {"name": windows_configmap_name(key)}, "data": {"windows.json": "[1, 2"}}
    )
    with caplog.at_level("WARNING", logger="kprof.operator.windows"):
        store = ConfigMapWindows(control_plane.api(), namespace, max_bytes=20_000)
        assert store.snapshot(key) == {}
    assert "is not a usage window document" in caplog.text
    store.append(key, {f"shop/pod-{i}": sample(0) for i in range(50)})
    for second in range(10, 1200, 10):
        store.append(key, {f"shop/pod-{i}": sample(second) for i in range(50)})
    store.flush()
    text = stored(control_plane, namespace, key).data["windows.json"]
    assert len(text) <= 20_000
    back = windows.decode(json.loads(text))
    assert sorted(back) == sorted(f"shop/pod-{i}" for i in range(50))
    assert all(rows[-1][0] == at(1190) for rows in back.values())
