"""The ProfilingConfig CRD: generated from the JSON Schema, structural, valid for Kubernetes 1.33, and
the committed copies (Helm chart, kustomize base) equal to what the generator builds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from kprof_lib import SpecError, validate_document
from kprof_lib.runtimes import cli
from kprof_lib.spec import crd, schemas

REPO = Path(__file__).resolve().parent.parent
COMMITTED_COPIES = [REPO / "helm/kprof-operator/files/crd.yaml", REPO / "kustomize/base/crd.yaml"]
EXAMPLE_CONFIGS = sorted((REPO / "examples/profilingconfigs").glob("*.yaml"))


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return crd.build_crd(schemas.load("profilingconfig"))


@pytest.fixture(scope="module")
def open_api(built) -> dict[str, Any]:
    return built["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = ""):
    """(path, schema) of every subschema reached through properties, items and additionalProperties."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_the_crd_is_valid_for_kubernetes_1_33(built):
    kubernetes_validate.validate(built, "1.33", strict=True)


def test_names_scope_columns_and_subresources_follow_the_contract(built):
    assert built["metadata"]["name"] == "profilingconfigs.profiling.io"
    spec = built["spec"]
    assert spec["group"] == "profiling.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ProfilingConfig",
        "listKind": "ProfilingConfigList",
        "plural": "profilingconfigs",
        "singular": "profilingconfig",
        "shortNames": ["pcfg"],
        "categories": ["profiling"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["jsonPath"]: (c["name"], c["type"]) for c in version["additionalPrinterColumns"]}
    assert columns == {
        ".spec.selector.namespace": ("Target-Namespace", "string"),
        ".spec.thresholds.cpuThresholdPercent": ("CPU%", "number"),
        ".spec.thresholds.memoryThresholdPercent": ("Memory%", "number"),
        ".status.activePods": ("Active", "integer"),
        ".status.totalProfiles": ("Profiles", "integer"),
        ".status.totalUploads": ("Uploads", "integer"),
        ".metadata.creationTimestamp": ("Age", "date"),
    }


def test_every_printer_column_points_at_a_field_of_the_schema(built, open_api):
    paths = {path for path, _ in walk(open_api)}
    for column in built["spec"]["versions"][0]["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".metadata."):
            continue
        assert column["jsonPath"] in paths, column


def test_the_schema_is_structural(open_api):
    assert open_api["type"] == "object"
    assert open_api["properties"]["metadata"] == {"type": "object"}
    assert open_api["properties"]["apiVersion"] == {"type": "string"}
    assert open_api["properties"]["kind"] == {"type": "string"}
    for path, node in walk(open_api):
        assert set(node) <= crd.KEPT | {"additionalProperties"}, f"{path}: {sorted(set(node) - crd.KEPT)}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert not isinstance(node.get("additionalProperties"), bool), path
        if "format" in node:
            assert node["format"] in crd.SUPPORTED_FORMATS, path


def test_every_default_is_valid_where_it_stands(open_api):
    defaults = [(path, node) for path, node in walk(open_api) if "default" in node]
    assert defaults, "the schema has defaults; none were found"
    for path, node in defaults:
        errors = [e.message for e in jsonschema.Draft4Validator(node).iter_errors(node["default"])]
        assert errors == [], f"default of {path}: {errors}"


def test_no_field_and_no_kubernetes_rule_is_lost():
    source = schemas.load("profilingconfig")
    generated = crd.structural_schema(source)

    def fields(node):
        return {path for path, _ in walk(node)}

    def kubernetes_keywords(node):
        return {
            (path, key, json.dumps(value, sort_keys=True))
            for path, sub in walk(node)
            for key, value in sub.items()
            if key.startswith("x-kubernetes-")
        }

    assert fields(source) == fields(generated)
    assert kubernetes_keywords(source) == kubernetes_keywords(generated)
    assert any(key == "x-kubernetes-validations" for _, key, _ in kubernetes_keywords(generated))


def test_the_source_schema_is_not_modified():
    source = schemas.load("profilingconfig")
    before = copy.deepcopy(source)
    crd.build_crd(source)
    assert source == before


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: p.name)
def test_the_crd_schema_accepts_every_example(open_api, path):
    for document in yaml.safe_load_all(path.read_text()):
        jsonschema.Draft4Validator(open_api, format_checker=jsonschema.FormatChecker()).validate(document)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"thresholds": {"cpuThresholdPercent": 5000}}, "cpuThresholdPercent"),
        ({"transport": "ssh"}, "transport"),
        ({"profileTypes": ["heap", "bogus"]}, "profileTypes"),
        ({"s3Config": {"bucket": "Not_A_Bucket"}}, "bucket"),
        ({"onDemand": {"intervalSeconds": "often"}}, "intervalSeconds"),
    ],
)
def test_the_api_server_keeps_the_checks_it_can_express(open_api, spec, field):
    document = {
        "apiVersion": "profiling.io/v1alpha1",
        "kind": "ProfilingConfig",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    with pytest.raises(jsonschema.ValidationError) as error:
        jsonschema.Draft4Validator(open_api).validate(document)
    assert field in "/".join(map(str, error.value.absolute_path))
    with pytest.raises(SpecError):
        validate_document(document)


def test_what_the_crd_drops_is_still_rejected_by_the_full_schema(open_api):
    # The API server prunes an unknown field and cannot express if/then; kprof validate and the
    # operator reject both.
    unknown = {"selector": {"namespaces": ["shop"]}}
    conditional = {"selector": {"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}}
    for spec in (unknown, conditional):
        document = {
            "apiVersion": "profiling.io/v1alpha1",
            "kind": "ProfilingConfig",
            "metadata": {"name": "x"},
            "spec": spec,
        }
        jsonschema.Draft4Validator(open_api).validate(document)
        with pytest.raises(SpecError):
            validate_document(document)


def test_conversions_of_keywords_crds_spell_differently():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "mode": {"const": "fixed", "type": "string"},
            "when": {"type": ["string", "null"], "format": "date-time"},
            "link": {"type": "string", "format": "iri-reference"},
            "extra": {"type": "object", "additionalProperties": True},
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "x-kubernetes-list-type": "set",
            },
        },
        "additionalProperties": False,
    }
    converted = crd.structural_schema(schema)["properties"]
    assert converted["mode"] == {"enum": ["fixed"], "type": "string"}
    assert converted["when"] == {"type": "string", "nullable": True, "format": "date-time"}
    assert converted["link"] == {"type": "string"}
    assert converted["extra"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert converted["tags"] == {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}}, "'$ref'"),
        ({"type": "object", "properties": {"a": {"type": ["string", "integer"]}}}, "exactly one type"),
        ({"type": "object", "allOf": [{"required": ["a"]}]}, "only if/then/else"),
        ({"type": "object", "properties": {"a": {"type": "string", "oneOf": [{"minLength": 1}]}}}, "'oneOf'"),
    ],
)
def test_keywords_without_a_structural_equivalent_are_refused(schema, message):
    with pytest.raises(crd.UnsupportedSchemaError, match=message.replace("$", r"\$")):
        crd.structural_schema(schema)


@pytest.mark.parametrize("path", COMMITTED_COPIES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_committed_copy_equals_the_generated_crd(built, path):
    committed = yaml.safe_load(path.read_text())
    assert committed == built, (
        f"{path.relative_to(REPO)} differs from the CRD generated from schemas/profilingconfig.schema.json: "
        "run `make crds` and commit the result"
    )


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_kprof_crd_prints_the_generated_crd(built, capsys, output):
    assert cli.main(["crd", "-o", output]) == 0
    printed = capsys.readouterr().out
    assert (json.loads(printed) if output == "json" else yaml.safe_load(printed)) == built
