"""The node agents' parts that need no control plane: the kubelet's resource metrics read and turned
into PodMetrics (against the kubelet stand-in serving real processes over HTTP), the fold of node
reports into a status, the reports' merge patch, the chart with mode=node, and `kprof node`'s flags."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest

from kprof_lib import reconcile
from kprof_lib.adapters.kube import kubelet
from kprof_lib.adapters.kube.metrics import MetricsUnavailable
from kprof_lib.adapters.kube.nodereports import merge_patch
from kprof_lib.planning import folding
from kprof_lib.runtimes import cli, rbac
from tests.support.manifests import REPO, check_pod_wiring, env_of, find, helm, helm_template, one, validate_object
from tests.support.net import free_port
from tests.support.nodeagent import NodeAgent

CHART = REPO / "helm/kprof-operator"

EXPOSITION = """# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="shop",pod="checkout-1"} 12.5 1764660000000
container_cpu_usage_seconds_total{container="sidecar",namespace="shop",pod="checkout-1"} 1.0 1764660000000
container_cpu_usage_seconds_total{container="app",namespace="we\\"ird",pod="p\\\\1"} 3 1764660000000
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="shop",pod="checkout-1"} 1.048576e+08 1764660000000
container_memory_working_set_bytes{container="sidecar",namespace="shop",pod="checkout-1"} 2097152 1764660000000
container_memory_working_set_bytes{container="app",namespace="we\\"ird",pod="p\\\\1"} 4096
container_start_time_seconds{container="app",namespace="shop",pod="checkout-1"} 1764650000 1764660000000
node_cpu_usage_seconds_total 999 1764660000000
pod_cpu_usage_seconds_total{namespace="shop",pod="checkout-1"} 13.5 1764660000000
"""


def later(text: str, seconds: float, cpu_added: float) -> str:
    """The same exposition `seconds` later, each CPU counter `cpu_added` higher."""
    lines = []
    for line in text.splitlines():
        if line.startswith("container_cpu_usage_seconds_total{"):
            head, value, stamp = line.rsplit(" ", 2)
            line = f"{head} {float(value) + cpu_added} {int(stamp) + int(seconds * 1000)}"
        elif line.startswith("container_memory") and line.count(" ") == 2:
            head, value, stamp = line.rsplit(" ", 2)
            line = f"{head} {value} {int(stamp) + int(seconds * 1000)}"
        lines.append(line)
    return "\n".join(lines)


# The exposition ---------------------------------------------------------------------------------


def test_only_container_cpu_and_memory_are_read_with_their_labels_and_times():
    samples = kubelet.parse(EXPOSITION, now=1764660005.0)
    assert set(samples) == {("shop", "checkout-1", "app"), ("shop", "checkout-1", "sidecar"), ('we"ird', "p\\1", "app")}
    app = samples[("shop", "checkout-1", "app")]
    assert (app.cpu_seconds, app.memory_bytes, app.time) == (12.5, 104857600.0, 1764660000.0)
    # A sample without a timestamp is taken at the scrape's time.
    assert samples[('we"ird', "p\\1", "app")].time == 1764660005.0


def test_a_cpu_rate_needs_two_samples_a_window_apart_and_a_restart_starts_over():
    rates = kubelet.Rates(min_window=1.0)
    key = ("shop", "checkout-1", "app")
    assert rates.update(kubelet.parse(EXPOSITION, 0)) == {}  # one sample: no rate yet
    usage = rates.update(kubelet.parse(later(EXPOSITION, 10, 2.5), 0))
    assert usage[key] == pytest.approx((0.25, 104857600.0, 10.0))
    # Too soon after: the rate stands (two checks at once read the kubelet twice).
    assert rates.update(kubelet.parse(later(EXPOSITION, 10.5, 2.6), 0))[key][0] == pytest.approx(0.25)
    usage = rates.update(kubelet.parse(later(EXPOSITION, 20, 5.5), 0))
    assert usage[key][0] == pytest.approx(0.3)
    # The counter went down: the container restarted; no rate until a second sample after it.
    assert key not in rates.update(kubelet.parse(later(EXPOSITION, 30, -10), 0))
    # Gone from the node: forgotten.
    assert rates.update({}) == {}


def test_podmetrics_serve_a_pod_only_when_every_container_has_usage_and_reconcile_reads_them():
    rates = kubelet.Rates()
    first, second = kubelet.parse(EXPOSITION, 0), kubelet.parse(later(EXPOSITION, 10, 1.0), 0)
    rates.update(first)
    usage = rates.update(second)
    items = kubelet.pod_metrics(second, usage, "shop")
    assert items == [
        {
            "metadata": {"name": "checkout-1", "namespace": "shop"},
            "timestamp": "2025-12-02T07:20:10Z",
            "window": "10.000s",
            "containers": [
                {"name": "app", "usage": {"cpu": "100000000n", "memory": "104857600"}},
                {"name": "sidecar", "usage": {"cpu": "100000000n", "memory": "2097152"}},
            ],
        }
    ]
    # Without the sidecar's usage the pod would look idle: it is not served at all.
    del usage[("shop", "checkout-1", "sidecar")]
    assert [i["metadata"]["name"] for i in kubelet.pod_metrics(second, usage, None)] == ["p\\1"]
    # The shape is metrics-server's: reconcile reads it as it reads PodMetrics.
    spec = {"thresholds": {"cpuThresholdPercent": 80}, "profileTypes": ["heap"]}
    pod = {
        "metadata": {"name": "checkout-1", "namespace": "shop", "annotations": {"profiling.io/enabled": "true"}},
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }
    state = {"now": "2025-12-02T07:21:00Z", "pods": [pod], "podMetrics": items}
    [decision] = reconcile(spec, state).results
    assert (decision.action, decision.reason) == ("capture", "cpu-threshold")


# Against the kubelet stand-in ---------------------------------------------------------------------


@pytest.fixture
def busy_process():
    process = subprocess.Popen([sys.executable, "-c", "while True: sum(range(10000))"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_usage_is_read_from_a_kubelet_over_http(busy_process):
    stand_in = NodeAgent()
    try:
        stand_in.add("shop", "checkout-1", "app", busy_process.pid)
        metrics = kubelet.KubeletMetrics(f"http://127.0.0.1:{stand_in.port}", min_window=0.5)
        assert metrics.pod_metrics(None, None) == []  # one scrape: no rate yet
        time.sleep(1.2)
        [item] = metrics.pod_metrics("shop", "app=ignored")
        [container] = item["containers"]
        cores = int(container["usage"]["cpu"].rstrip("n")) / 1e9
        # A process spinning on one core, of two shared with other work: some share, never more than one.
        assert 0.01 < cores <= 1.2, container
        assert int(container["usage"]["memory"]) > 1024 * 1024
        assert metrics.scrapes == 2 and stand_in.scrapes == 2
        # A second check at once shares the scrape.
        metrics.pod_metrics("shop", None)
        assert stand_in.scrapes == 2
    finally:
        stand_in.close()


def test_a_kubelet_that_does_not_answer_is_named():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MetricsUnavailable, match=rf"GET {url}/metrics/resource: .*(Refused|refused)"):
        kubelet.KubeletMetrics(url, timeout=2).pod_metrics(None, None)


def test_a_kubelet_refusal_says_what_the_agent_needs():
    stand_in = NodeAgent()
    try:
        metrics = kubelet.KubeletMetrics(f"http://127.0.0.1:{stand_in.port}/nothing-here")
        with pytest.raises(MetricsUnavailable) as raised:
            metrics.pod_metrics(None, None)
        assert raised.value.status == 404
    finally:
        stand_in.close()


# Folding --------------------------------------------------------------------------------------------


NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def report(
    checked: str,
    active: int,
    profiles: int,
    *,
    ready: bool = True,
    valid: bool = True,
    generation: int = 3,
    capture=None,
):
    conds = [
        {
            "type": "Valid",
            "status": "True" if valid else "False",
            "reason": "r",
            "message": "spec.x: bad" if not valid else "ok",
        },
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "Checked" if ready else "CheckFailed",
            "message": "kubelet down" if not ready else "fine",
        },
    ]
    out = {
        "activePods": active,
        "totalProfiles": profiles,
        "totalUploads": profiles,
        "lastCheckTime": checked,
        "observedGeneration": generation,
        "conditions": conds,
    }
    if capture:
        out["lastCapture"] = capture
    return out


def fold(reports, base=None, generation=3):
    return folding.fold(
        reports,
        base or {},
        generation=generation,
        now="2026-12-02T10:00:00Z",
        fresh_since=NOW - dt.timedelta(minutes=10),
    )


def test_totals_add_up_over_every_node_and_active_pods_over_the_live_ones():
    status = fold(
        {
            "a": report("2026-12-02T09:59:50Z", 4, 2),
            "b": report("2026-12-02T09:59:40Z", 3, 5),
            "gone": report("2026-12-02T08:00:00Z", 9, 1),
        }
    )
    assert (status["activePods"], status["totalProfiles"], status["totalUploads"]) == (7, 8, 8)
    assert status["lastCheckTime"] == "2026-12-02T09:59:50Z"
    assert status["observedGeneration"] == 3
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["message"]) == ("True", "7 active pod(s) on 2 node(s)")


def test_one_node_not_ready_makes_the_config_not_ready_naming_it():
    status = fold({"a": report("2026-12-02T09:59:50Z", 1, 0), "b": report("2026-12-02T09:59:50Z", 1, 0, ready=False)})
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CheckFailed")
    assert ready["message"] == "1 of 2 node(s) not ready; b: kubelet down"


def test_an_invalid_spec_at_the_current_generation_is_invalid_and_an_older_one_does_not_count():
    status = fold({"a": report("2026-12-02T09:59:50Z", 0, 0, valid=False)})
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert (valid["status"], valid["message"]) == ("False", "spec.x: bad")
    status = fold(
        {
            "a": report("2026-12-02T09:59:50Z", 0, 0, valid=False, generation=2),
            "b": report("2026-12-02T09:59:50Z", 0, 0),
        }
    )
    assert next(c for c in status["conditions"] if c["type"] == "Valid")["status"] == "True"
    assert status["observedGeneration"] == 2  # not every node has seen generation 3 yet


def test_the_latest_capture_of_any_node_replaces_the_previous_one_whole():
    old = {"time": "2026-12-02T09:00:00Z", "pod": "shop/a-1", "topGrower": {"function": "f"}}
    new = {"time": "2026-12-02T09:58:00Z", "pod": "shop/b-1"}
    status = fold(
        {
            "a": report("2026-12-02T09:59:50Z", 1, 1, capture=old),
            "b": report("2026-12-02T09:59:50Z", 1, 1, capture=new),
        },
        base={"lastCapture": old},
    )
    assert status["lastCapture"] == {"time": new["time"], "pod": "shop/b-1", "topGrower": None}


def test_no_reports_no_status_and_only_stale_ones_not_ready():
    assert fold({}) is None
    status = fold({"gone": report("2026-12-02T08:00:00Z", 9, 1)})
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoNodeReports")
    assert status["totalProfiles"] == 1 and status["activePods"] == 0


def test_a_merge_patch_removes_nulls_and_merges_objects():
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    assert merge_patch(target, {"a": None, "b": {"c": None, "x": 4}, "e": [2]}) == {"b": {"d": 3, "x": 4}, "e": [2]}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}


# The chart with mode=node, and the command --------------------------------------------------------


@pytest.fixture(scope="module")
def node_chart():
    return helm_template(CHART, ["mode=node"])


def test_mode_node_installs_a_daemonset_of_node_agents_instead_of_the_deployment(node_chart):
    assert find(node_chart, "Deployment") == []
    daemonset = one(node_chart, "DaemonSet", "kprof-operator")
    for obj in node_chart:
        validate_object(obj)
    check_pod_wiring(node_chart)
    [container] = daemonset["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["NODE_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    args = cli.build_parser().parse_args(container["args"])
    assert args.command == "node"
    assert args.node_name == "$(NODE_NAME)" and args.kubelet_url == "https://$(NODE_IP):10250"
    assert args.kubelet_ca_file == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" and args.kubelet_tls_verify
    assert args.lease_name == "kprof-node-status"
    service = one(node_chart, "Service")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def test_mode_node_rbac_is_exactly_the_node_agent_rules(node_chart):
    assert rbac.permissions(one(node_chart, "ClusterRole")["rules"]) == rbac.permissions(
        rbac.NODE_AGENT_RULES[rbac.CLUSTER_ROLE]
    )
    assert rbac.permissions(one(node_chart, "Role")["rules"]) == rbac.permissions(
        rbac.NODE_AGENT_RULES[rbac.NAMESPACE_ROLE]
    )


def test_node_values_reach_the_agents():
    objects = helm_template(
        CHART,
        [
            "mode=node",
            "node.kubeletInsecureTLS=true",
            "node.foldIntervalSeconds=5",
            "node.tolerations[0].operator=Exists",
        ],
    )
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    args = cli.build_parser().parse_args(pod["containers"][0]["args"])
    assert not args.kubelet_tls_verify and args.fold_interval == 5
    assert pod["tolerations"] == [{"operator": "Exists"}]


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("mode=nodes", "mode"),
        ("node.kubeletPort=0", "kubeletPort"),
    ],
)
def test_bad_node_values_are_refused_naming_the_field(assignment, words):
    result = helm("template", "kprof", CHART, "--set", assignment, check=False)
    assert result.returncode != 0 and words in result.stderr


def test_persistence_is_refused_for_node_agents():
    result = helm(
        "template", "kprof", CHART, "--set", "mode=node", "--set", "storage.persistence.enabled=true", check=False
    )
    assert result.returncode != 0 and "node agents keep their spool on an emptyDir" in result.stderr


def test_kprof_node_without_a_node_name_says_so(monkeypatch, capsys):
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert cli.main(["node", "--kubelet-url", "http://127.0.0.1:1"]) == 2
    assert "--node-name (or $NODE_NAME) is required" in capsys.readouterr().err
