"""Properties of reconcile over generated input: it raises nothing but SpecError/StateError, every
plan validates against plan.schema.json, and it is deterministic and leaves its input alone; with
spec.triggers, a capture's reason is the first of its reasons in the precedence order, and no
more captures start than the rate limit leaves."""

from __future__ import annotations

import copy

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kprof_lib import SpecError, StateError, reconcile
from kprof_lib.adapters.kube.informer import digest_pod
from kprof_lib.planning import triggers
from kprof_lib.planning.plan import PRECEDENCE
from kprof_lib.spec import schemas
from kprof_lib.spec.validation import validate_spec
from kprof_lib.state import cluster
from kprof_lib.state.podusage import usage_of

PLAN_VALIDATOR = jsonschema.Draft202012Validator(schemas.load("plan"))

json_scalars = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)

names = st.sampled_from(["a", "b", "web-1", "db-0"])
namespaces = st.sampled_from(["shop", "ops"])
quantities_cpu = st.sampled_from(["100m", "1", "250000000n", "0", "2.5", "1500m", "-1", "NaN", "x", "7u"])
quantities_mem = st.sampled_from(["64Mi", "1Gi", "123456Ki", "0", "1e3", "-5Mi", "Infinity", "12QQ"])
timestamps = st.sampled_from(
    ["2026-11-25T09:50:00Z", "2026-11-25T09:59:30+00:00", "2026-11-25T10:00:00Z", None, "soon", "2026-11-25"]
)


@st.composite
def resources(draw):
    out = {}
    for kind in ("requests", "limits"):
        if draw(st.booleans()):
            out[kind] = {
                k: draw(q) for k, q in (("cpu", quantities_cpu), ("memory", quantities_mem)) if draw(st.booleans())
            }
    return out


@st.composite
def pods(draw):
    annotations = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "profiling.io/enabled",
                    "profiling.io/port",
                    "profiling.io/path",
                    "profiling.io/scheme",
                    "profiling.io/other",
                    "profiling.io/capture-now",
                ]
            ),
            st.sampled_from(["true", "True", "6060", "0", "70000", "/debug/pprof", "x", "https", "ftp", ""]),
            max_size=6,
        )
    )
    containers = draw(
        st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["app", "side"]), "resources": resources()}), max_size=3
        )
    )
    init = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["init", "side"]),
                    "restartPolicy": st.sampled_from(["Always", "Never"]),
                    "resources": resources(),
                }
            ),
            max_size=2,
        )
    )
    return {
        "metadata": {
            "name": draw(names),
            "namespace": draw(namespaces),
            "labels": draw(
                st.dictionaries(
                    st.sampled_from(["tier", "app", "env"]), st.sampled_from(["web", "db", "x"]), max_size=3
                )
            ),
            "annotations": annotations,
        },
        "spec": {"containers": containers, "initContainers": init},
        "status": {
            "phase": draw(st.sampled_from(["Running", "Pending", "Succeeded"])),
            "podIP": draw(st.sampled_from(["10.0.0.1", "", None])),
        },
    }


@st.composite
def states(draw):
    pod_list = draw(st.lists(pods(), max_size=6))
    metrics = [
        {
            "metadata": {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"]},
            # Mostly every container with both figures, as metrics-server reports them; also fewer,
            # more, reordered or repeated containers and figures left out.
            "containers": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": st.sampled_from(["app", "side", "init"]),
                            "usage": st.fixed_dictionaries({"cpu": quantities_cpu, "memory": quantities_mem})
                            | st.fixed_dictionaries({}, optional={"cpu": quantities_cpu, "memory": quantities_mem}),
                        }
                    ),
                    min_size=1,
                    max_size=3,
                )
            ),
        }
        for p in pod_list
        if draw(st.booleans())
    ]
    keys = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pod_list]
    history = {
        key: {
            "lastThresholdCapture": draw(timestamps),
            "lastOnDemandCapture": draw(timestamps),
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "lastSpikeCapture": timestamps,
                        "lastOomCapture": timestamps,
                        "lastAlertCapture": timestamps,
                        "lastFailedCapture": timestamps,
                        "failingSince": timestamps,
                        "captureNowValue": st.sampled_from(["x", "true", ""]),
                        "alertFingerprints": st.lists(st.sampled_from(["f1", "f2"]), max_size=2),
                    },
                )
            ),
        }
        for key in keys
        if draw(st.booleans())
    }
    samples = st.fixed_dictionaries(
        {"time": st.sampled_from(["2026-11-25T09:58:00Z", "2026-11-25T09:59:00Z", "2026-11-25T10:00:00Z"])},
        optional={
            "cpuCores": st.none() | st.floats(0, 8),
            "memoryBytes": st.none() | st.floats(0, 2**31),
            "goroutines": st.none() | st.integers(0, 5000),
        },
    )
    return {
        "now": draw(st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00+02:00", "noon"])),
        "pods": pod_list,
        "podMetrics": metrics,
        "history": history,
        "usageWindow": {key: draw(st.lists(samples, max_size=5)) for key in keys if draw(st.booleans())},
        "goroutines": {key: draw(st.integers(0, 5000)) for key in keys if draw(st.booleans())},
        "alerts": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "fingerprint": st.sampled_from(["f1", "f2", "f3"]),
                        "alertname": st.just("A"),
                        "namespace": namespaces,
                        "startsAt": st.just("2026-11-25T09:00:00Z"),
                    },
                    optional={"pod": names, "matchLabels": st.dictionaries(st.just("tier"), st.just("web"))},
                ),
                max_size=3,
            )
        ),
    }


specs = st.fixed_dictionaries(
    {},
    optional={
        "selector": st.fixed_dictionaries(
            {},
            optional={
                "namespace": namespaces,
                "labelSelector": st.fixed_dictionaries(
                    {},
                    optional={
                        "matchLabels": st.dictionaries(
                            st.sampled_from(["tier", "env"]), st.sampled_from(["web", "db"]), max_size=2
                        ),
                        "matchExpressions": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "key": st.sampled_from(["tier", "env"]),
                                    "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
                                },
                                optional={"values": st.lists(st.sampled_from(["web", "db"]), max_size=2)},
                            ),
                            max_size=2,
                        ),
                    },
                ),
            },
        ),
        "thresholds": st.fixed_dictionaries(
            {},
            optional={
                "cpuThresholdPercent": st.integers(0, 1200) | st.floats(1, 1000),
                "memoryThresholdPercent": st.integers(1, 1000),
                "cooldownSeconds": st.integers(50, 1000),
            },
        ),
        "onDemand": st.fixed_dictionaries(
            {}, optional={"enabled": st.booleans(), "intervalSeconds": st.integers(20, 1000)}
        ),
        "profileTypes": st.lists(st.sampled_from(["heap", "cpu", "goroutine", "bogus"]), max_size=3),
        "triggers": st.fixed_dictionaries(
            {},
            optional={
                "windowSamples": st.integers(2, 6),
                "maxCapturesPerMinute": st.integers(0, 4),
                "spike": st.fixed_dictionaries(
                    {},
                    optional={
                        "cpuDiffPercent": st.integers(1, 200),
                        "memoryDiffPercent": st.integers(1, 200),
                        "cpuFloorPercent": st.integers(0, 50),
                        "minSamples": st.integers(2, 4),
                    },
                ),
                "oom": st.fixed_dictionaries(
                    {}, optional={"minSamples": st.integers(2, 4), "oomHorizonSeconds": st.integers(30, 100000)}
                ),
                "goroutines": st.fixed_dictionaries(
                    {},
                    optional={
                        "goroutineThreshold": st.integers(1, 3000),
                        "spikeDiffPercent": st.integers(1, 200),
                        "floor": st.integers(0, 100),
                        "minSamples": st.integers(2, 4),
                    },
                ),
                "captureNow": st.fixed_dictionaries({}, optional={"enabled": st.booleans()}),
                "alerts": st.fixed_dictionaries({}, optional={"enabled": st.booleans()}),
            },
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, state=states())
def test_plans_validate_and_only_input_errors_are_raised(spec, state):
    spec_before, state_before = copy.deepcopy(spec), copy.deepcopy(state)
    try:
        plan = reconcile(spec, state).to_dict()
    except (SpecError, StateError) as error:
        assert error.errors and all(set(p) == {"path", "message"} for p in error.errors)
        return
    finally:
        assert spec == spec_before and state == state_before
    PLAN_VALIDATOR.validate(plan)
    assert len(plan["results"]) == len(state["pods"])
    keys = [(r["namespace"], r["pod"]) for r in plan["results"]]
    assert keys == sorted(keys)
    assert reconcile(spec, state).to_dict() == plan
    # The same pods as the operator's pod cache holds them (digests), and as their JSON form.
    digests = [digest_pod(copy.deepcopy(pod)) for pod in state["pods"]]
    assert reconcile(spec, {**state, "pods": digests}).to_dict() == plan
    # Those digests beside the PodMetrics as the operator's reader gives them (PodUsage records,
    # most pods measured from their sums).
    records = [usage_of(copy.deepcopy(item)) for item in state["podMetrics"]]
    assert reconcile(spec, {**state, "pods": digests, "podMetrics": records}).to_dict() == plan
    if all(d.source is None for d in digests):  # the JSON form has numbers: no quantity that does not parse
        assert reconcile(spec, {**state, "pods": [d.to_json() for d in digests]}).to_dict() == plan
    for result in plan["results"]:
        if result["action"] == "capture":
            assert result["reasons"] == sorted(result["reasons"], key=PRECEDENCE.index)
            assert result["reason"] == result["reasons"][0]
    limit = validate_spec(spec).triggers.max_captures_per_minute
    if limit is not None:
        recent = triggers.recent_captures(cluster.read(state).history, cluster.parse_time(state["now"]))
        assert plan["summary"]["byAction"].get("capture", 0) <= max(0, limit - recent)


@settings(max_examples=300, deadline=None)
@given(spec=json_values, state=json_values)
def test_arbitrary_input_raises_only_input_errors(spec, state):
    try:
        reconcile(spec, state)
    except (SpecError, StateError):
        pass


@settings(max_examples=200, deadline=None)
@given(
    state=st.fixed_dictionaries(
        {
            "now": st.just("2026-11-25T10:00:00Z"),
            "pods": st.lists(
                st.fixed_dictionaries(
                    {
                        "metadata": st.fixed_dictionaries(
                            {
                                "name": names,
                                "namespace": namespaces,
                                "annotations": st.just({"profiling.io/enabled": "true"}),
                            }
                        ),
                        "spec": json_values,
                        "status": json_values,
                    }
                ),
                max_size=3,
                unique_by=lambda p: p["metadata"]["name"],
            ),
            "podMetrics": st.lists(
                st.fixed_dictionaries(
                    {
                        "metadata": st.fixed_dictionaries({"name": names, "namespace": namespaces}),
                        "containers": json_values,
                    }
                ),
                max_size=3,
            ),
        }
    )
)
def test_malformed_pod_bodies_raise_only_state_errors(state):
    try:
        PLAN_VALIDATOR.validate(reconcile({"thresholds": {}}, state).to_dict())
    except StateError:
        pass


MINUTES = [f"2026-11-25T09:{m:02d}:00Z" for m in range(50, 60)]


@st.composite
def trigger_states(draw):
    """Well-formed states where every pod is selected, running and measured now and then: what the
    triggers decide over, rather than what selection refuses."""
    pod_list, metrics, window, counts, history = [], [], {}, {}, {}
    for index in range(draw(st.integers(1, 6))):
        name, key = f"p{index}", f"n/p{index}"
        annotations = {"profiling.io/enabled": "true"}
        if draw(st.booleans()):
            annotations["profiling.io/capture-now"] = draw(st.sampled_from(["v1", "v2"]))
        limits = {"memory": "200Mi"} if draw(st.booleans()) else {}
        pod_list.append(
            {
                "metadata": {"name": name, "namespace": "n", "labels": {"tier": "web"}, "annotations": annotations},
                "spec": {
                    "containers": [
                        {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}, "limits": limits}}
                    ]
                },
                "status": {"phase": "Running", "podIP": "10.0.0.1"},
            }
        )
        if draw(st.booleans()):
            cpu, memory = draw(st.integers(0, 2000)), draw(st.integers(0, 200))
            metrics.append(
                {
                    "metadata": {"name": name, "namespace": "n"},
                    "containers": [{"name": "app", "usage": {"cpu": f"{cpu}m", "memory": f"{memory}Mi"}}],
                }
            )
        if draw(st.booleans()):
            counts[key] = draw(st.integers(0, 3000))
        window[key] = [
            {
                "time": moment,
                "cpuCores": draw(st.none() | st.floats(0, 2)),
                "memoryBytes": draw(st.none() | st.integers(0, 200 * 2**20)),
                "goroutines": draw(st.none() | st.integers(0, 3000)),
            }
            for moment in sorted(draw(st.sets(st.sampled_from(MINUTES), max_size=6)))
        ]
        history[key] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    name: st.sampled_from(MINUTES)
                    for name in (
                        "lastThresholdCapture",
                        "lastSpikeCapture",
                        "lastOomCapture",
                        "lastAlertCapture",
                        "lastOnDemandCapture",
                        "lastRequestedCapture",
                    )
                }
                | {"captureNowValue": st.sampled_from(["v1", "v2"]), "alertFingerprints": st.just(["f1"])},
            )
        )
    alerts = [
        {"fingerprint": f"f{i}", "alertname": f"A{i}", "namespace": "n", "startsAt": MINUTES[i], **target}
        for i, target in enumerate(
            draw(
                st.lists(st.sampled_from([{"pod": "p0"}, {"pod": "p1"}, {"matchLabels": {"tier": "web"}}]), max_size=3)
            )
        )
    ]
    return {
        "now": "2026-11-25T10:00:00Z",
        "pods": pod_list,
        "podMetrics": metrics,
        "usageWindow": window,
        "goroutines": counts,
        "alerts": alerts,
        "history": history,
    }


trigger_specs = st.fixed_dictionaries(
    {
        "triggers": st.fixed_dictionaries(
            {
                "spike": st.fixed_dictionaries(
                    {
                        "cpuDiffPercent": st.integers(1, 100),
                        "memoryDiffPercent": st.integers(1, 100),
                        "minSamples": st.integers(2, 3),
                    }
                ),
                "oom": st.fixed_dictionaries(
                    {"minSamples": st.integers(2, 3), "oomHorizonSeconds": st.integers(30, 86400)}
                ),
                "goroutines": st.fixed_dictionaries(
                    {
                        "goroutineThreshold": st.integers(1, 3000),
                        "spikeDiffPercent": st.integers(1, 100),
                        "minSamples": st.just(2),
                    }
                ),
                "alerts": st.just({"enabled": True}),
            },
            optional={"maxCapturesPerMinute": st.integers(1, 4), "windowSamples": st.integers(3, 6)},
        )
    },
    optional={"thresholds": st.just({}), "onDemand": st.just({"enabled": True})},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=trigger_specs, state=trigger_states())
def test_trigger_plans_are_valid_in_precedence_order_and_within_the_rate_limit(spec, state):
    state_before = copy.deepcopy(state)
    plan = reconcile(spec, state)
    data = plan.to_dict()
    PLAN_VALIDATOR.validate(data)
    assert state == state_before and reconcile(spec, state).to_dict() == data
    history = cluster.read(state).history
    due = 0
    for decision in plan.results:
        entry = history.get(decision.key) or cluster.History()
        annotation = state["pods"][int(decision.pod[1:])]["metadata"]["annotations"].get("profiling.io/capture-now")
        if decision.captures:
            due += 1
            assert list(decision.reasons) == sorted(decision.reasons, key=PRECEDENCE.index)
            assert decision.reason == decision.reasons[0]
            if "oom-risk" in decision.reasons:
                assert decision.profile_types[0] == "heap"
        # A request is served once per value; alerts once per fingerprint.
        if "requested" in decision.reasons:
            assert annotation is not None and annotation != entry.capture_now_value
            assert decision.request_value == annotation
        if "alert" in decision.reasons:
            assert set(decision.alert_fingerprints) - set(entry.alert_fingerprints)
        # Every measured pod carries this check's sample (these specs read the window).
        assert (decision.sample is not None) == (
            any(m["metadata"]["name"] == decision.pod for m in state["podMetrics"])
            or decision.key in state["goroutines"]
        )
    limit = spec["triggers"].get("maxCapturesPerMinute")
    if limit is not None:
        assert due <= max(0, limit - triggers.recent_captures(history, cluster.parse_time(state["now"])))
