"""One bad pod or value never stops the check for the others: per-pod problems are that pod's
result, spec problems are found by validation before any pod is profiled, and the executor lets no
job's error escape."""

from __future__ import annotations

import contextlib
import gzip
import re

import pytest

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import Response
from kprof_lib.planning.plan import Plan
from kprof_lib.planning.reconcile import reconcile
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.spec.validation import validate_spec
from tests.support.pods import ENABLED, pod
from tests.test_operator_units import ON_DEMAND, Harness

ON_DEMAND_SPEC = {"onDemand": {"enabled": True, "intervalSeconds": 300}, "profileTypes": ["heap", "goroutine"]}
NOW = "2026-11-25T10:00:00Z"


class Canned:
    """A pprof endpoint stand-in: a small gzip body for every request."""

    name = "canned"

    @contextlib.contextmanager
    def open(self, request, timeout):
        body = gzip.compress(f"{request.pod} {request.profile_type}".encode())
        yield Response(200, "OK", {"Content-Length": str(len(body))}, iter([body]))


def test_a_huge_port_annotation_leaves_the_other_pods_checked(tmp_path):
    bad = pod("bad-1", "shop", annotations={**ENABLED, "profiling.io/port": "9" * 5000})
    good = pod("good-1", "shop", annotations=ENABLED)
    h = Harness(tmp_path, ON_DEMAND_SPEC, [bad, good], [])

    outcome = h.run(ON_DEMAND)

    assert outcome.result == "ok", outcome.message
    by_pod = {r.pod: (r.status, r.reason) for r in outcome.report.execution.results}
    assert by_pod == {"bad-1": ("skipped", "invalid-annotation"), "good-1": ("captured", "on-demand")}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{namespace}/{pod}/{node}/{timestamp}-{type}", r"\{node\} is unknown"),
        ("{namespace}/{pod:>9}/{timestamp}-{type}", "no format spec or conversion"),
        ("{namespace}/{pod!r}/{timestamp}-{type}", "no format spec or conversion"),
        ("{namespace}/{pod}/{timestamp}-{type}/" + "x" * 300, "segments longer than 255"),
        ("/".join(["y" * 240] * 4) + "/{namespace}/{pod}/{timestamp}-{type}", "longer than 1024 bytes"),
        ("{namespace}/{pod/{timestamp}-{type}", "malformed"),
    ],
)
def test_a_key_template_no_key_can_be_built_from_is_a_spec_error(template, message):
    with pytest.raises(SpecError) as error:
        validate_spec({**ON_DEMAND_SPEC, "s3Config": {"bucket": "profiles", "keyTemplate": template}})

    [problem] = error.value.errors
    assert problem["path"] == "spec.s3Config.keyTemplate"
    assert re.search(message, problem["message"]), problem["message"]


def test_a_prefix_too_long_for_the_template_is_a_spec_error():
    template = "{prefix}/" + "z" * 500 + "/{namespace}/{pod}/{timestamp}-{type}"
    with pytest.raises(SpecError, match=r"spec.s3Config.keyTemplate: .*longer than 1024 bytes"):
        validate_spec({**ON_DEMAND_SPEC, "s3Config": {"bucket": "profiles", "prefix": "p/" * 250, "keyTemplate": template}})


def test_a_plan_with_a_bad_template_fails_each_pod_and_the_executor_still_reports(tmp_path):
    spec = validate_spec(ON_DEMAND_SPEC)
    good = reconcile(spec, {"now": NOW, "pods": [pod("a-1", "shop", annotations=ENABLED),
                                                 pod("b-1", "shop", annotations=ENABLED)]})
    # A library caller can hand the executor any plan: a template object_key refuses.
    bad_spec = Spec({**spec.data, "s3Config": {"bucket": "profiles", "keyTemplate": "{pod}/{bogus}/{type}"}})
    plan = Plan(good.now, bad_spec, good.results, good.active_pods)

    report = Executor(concurrency=2).execute(plan, store=LocalStore(tmp_path), transport=Canned())

    assert [(r.pod, r.status) for r in report.results] == [("a-1", "failed"), ("b-1", "failed")]
    assert all("{bogus} is unknown" in p.error for r in report.results for p in r.profiles)
    # No capture time (no cooldown); the failures, so both pods back off.
    failed = {"lastFailedCapture": good.now, "failingSince": good.now}
    assert report.history_updates == {"shop/a-1": failed, "shop/b-1": failed}


class Flaky(LocalStore):
    """A store that breaks in an unexpected way (not a StoreError) for one pod."""

    def put(self, key, data, **kwargs):
        if "/broken-1/" in key:
            raise RuntimeError("disk controller on fire")
        return super().put(key, data, **kwargs)


def test_an_unexpected_store_error_is_that_profiles_failure(tmp_path):
    state = {"now": NOW, "pods": [pod("broken-1", "shop", annotations=ENABLED), pod("fine-1", "shop", annotations=ENABLED)]}

    report = Executor(concurrency=2).execute(
        reconcile(ON_DEMAND_SPEC, state), store=Flaky(tmp_path), transport=Canned()
    )

    outcome = {r.pod: r for r in report.results}
    assert outcome["fine-1"].status == "captured"
    assert outcome["broken-1"].status == "failed"
    assert "internal error: RuntimeError: disk controller on fire" in outcome["broken-1"].message
    assert report.history_updates == {
        "shop/broken-1": {"lastFailedCapture": NOW, "failingSince": NOW},
        "shop/fine-1": {"lastOnDemandCapture": NOW},
    }
