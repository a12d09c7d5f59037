"""Nothing stored is ever overwritten: every key layout and template is unique per pod and capture,
the schema and `kprof validate` refuse templates that are not, and both stores refuse a put under a
key that is taken (S3 with `If-None-Match: *` against moto, the local store by exclusive create)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from kprof_lib.adapters.s3 import S3Store
from kprof_lib.execution import keys
from kprof_lib.execution.ports import PPROF_CONTENT_TYPE, StoreError
from kprof_lib.spec import crd, schemas
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.validation import validate_spec
from tests.operator_support import kprof_command

CAPTURED = dt.datetime(2026, 11, 25, 10, 0, 0, 250_000, tzinfo=dt.UTC)


def key_for(layout: str, namespace: str, pod: str) -> str:
    return keys.object_key(
        layout=layout, namespace=namespace, pod=pod, service="checkout", profile_type="heap",
        reason="on-demand", captured_at=CAPTURED,
    )


@pytest.mark.parametrize("layout", sorted(keys.LAYOUTS))
def test_replicas_and_namesakes_in_other_namespaces_get_distinct_keys(layout):
    # Same service, same millisecond: two replicas, and a pod of another namespace with the same app label.
    made = {key_for(layout, "shop", "checkout-1"), key_for(layout, "shop", "checkout-2"),
            key_for(layout, "attacker", "checkout-1")}
    assert len(made) == 3, made


@pytest.mark.parametrize(
    "template",
    [
        "{prefix}/{date}/{service}/{timestamp}-{type}.pprof",
        "{prefix}/{namespace}/{timestamp}-{type}.pprof",
        "{prefix}/{pod}/{timestamp}-{type}.pprof",
        "{prefix}/{namespace}/{pod}/{date}-{type}.pprof",
    ],
)
def test_a_template_that_is_not_unique_per_pod_and_capture_is_refused(template, tmp_path):
    spec = {"onDemand": {"enabled": True}, "s3Config": {"bucket": "profiles", "keyTemplate": template}}
    with pytest.raises(SpecError, match=r"spec.s3Config.keyTemplate: .*must contain"):
        validate_spec(spec)

    document = {"apiVersion": "profiling.io/v1alpha1", "kind": "ProfilingConfig", "metadata": {"name": "c"},
                "spec": spec}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    result = subprocess.run([*kprof_command(), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "spec.s3Config.keyTemplate" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "template",
    [
        "{prefix}/{namespace}-{pod}/{timestamp}-{type}.pprof",
        "{prefix}/{service}.{namespace}/{pod}/{timestamp}-{type}.pprof",
        "{prefix}-{namespace}/{pod}/{timestamp}-{type}.pprof",
        "{namespace}/{pod}{service}/{timestamp}-{type}.pprof",
    ],
)
def test_namespace_and_pod_sharing_a_segment_with_free_text_is_refused(template):
    # ("a-b", "c") and ("a", "b-c") would give the same key.
    with pytest.raises(SpecError, match=r"spec.s3Config.keyTemplate: .*in one path segment"):
        validate_spec({"onDemand": {"enabled": True}, "s3Config": {"bucket": "profiles", "keyTemplate": template}})


def test_the_crd_refuses_such_a_template_too():
    generated = crd.build_crd(schemas.load("profilingconfig"))
    template_schema = generated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["s3Config"]["properties"]["keyTemplate"]
    [rule] = template_schema["x-kubernetes-validations"]
    for field in ("{namespace}", "{pod}", "{timestamp}", "{type}"):
        assert f"self.contains('{field}')" in rule["rule"]


def test_s3_never_overwrites_an_object(s3, s3_bucket):
    store = S3Store(s3_bucket, endpoint=s3.endpoint_url, max_attempts=2)
    store.put("shop/a/k.pprof", b"victim's profile", metadata={"pod": "a"}, tags={}, content_type=PPROF_CONTENT_TYPE)

    with pytest.raises(StoreError, match="an object is stored under that key already; not overwritten") as raised:
        store.put("shop/a/k.pprof", b"attacker's bytes", metadata={"pod": "x"}, tags={},
                  content_type=PPROF_CONTENT_TYPE)

    assert raised.value.retryable is False
    [obj] = s3.objects(s3_bucket, "shop/a/")
    assert obj["metadata"]["pod"] == "a"
    body = s3.client().get_object(Bucket=s3_bucket, Key="shop/a/k.pprof")["Body"].read()
    assert body == b"victim's profile"


def test_s3_put_of_the_same_profile_again_counts_as_stored(s3, s3_bucket):
    # An earlier attempt got through and its answer was lost (a retry, or a spool flush after a
    # crash): the object there is this very profile.
    store = S3Store(s3_bucket, endpoint=s3.endpoint_url, max_attempts=2)
    first = store.put("shop/a/k.pprof", b"same", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    again = store.put("shop/a/k.pprof", b"same", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert (first.uri, again.uri) == (f"s3://{s3_bucket}/shop/a/k.pprof",) * 2
