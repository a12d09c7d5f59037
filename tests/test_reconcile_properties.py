"""Properties of reconcile over generated input: it raises nothing but SpecError/StateError, every
plan validates against plan.schema.json, and it is deterministic and leaves its input alone."""

from __future__ import annotations

import copy

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kprof_lib import SpecError, StateError, reconcile
from kprof_lib.spec import schemas

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
                ]
            ),
            st.sampled_from(["true", "True", "6060", "0", "70000", "/debug/pprof", "x", "https", "ftp", ""]),
            max_size=5,
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
            "containers": [
                {
                    "name": draw(st.sampled_from(["app", "side", "init"])),
                    "usage": {"cpu": draw(quantities_cpu), "memory": draw(quantities_mem)},
                }
            ],
        }
        for p in pod_list
        if draw(st.booleans())
    ]
    history = {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}": {
            "lastThresholdCapture": draw(timestamps),
            "lastOnDemandCapture": draw(timestamps),
        }
        for p in pod_list
        if draw(st.booleans())
    }
    return {
        "now": draw(st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00+02:00", "noon"])),
        "pods": pod_list,
        "podMetrics": metrics,
        "history": history,
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
