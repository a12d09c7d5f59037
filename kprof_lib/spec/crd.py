"""Builds the ProfilingConfig CustomResourceDefinition from schemas/profilingconfig.schema.json.

The JSON Schema is the one source of the ProfilingConfig's shape; the CRD's openAPIV3Schema is
derived from it here so the two never drift. Kubernetes accepts only *structural* schemas, a
subset of JSON Schema, so a few keywords are dropped or rewritten on the way (see `DROPPED` and
`_convert`). Dropping them is safe because the API server is not the only gate: the operator and
the sidecar validate every spec with the full schema (`spec.validation`) before acting on it, and
`kprof validate` does the same for users before they apply a file. The API server keeps every
check it can express (types, enums, bounds, patterns, defaults, CEL rules, list types).

Used by `kprof crd` (which prints the CRD) and by the tests that keep the committed copies in the
Helm chart and the kustomize base equal to what this module builds. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from kprof_lib.spec.schemas import API_VERSION, KIND

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "profilingconfigs"
SINGULAR = "profilingconfig"
# Not "pc": every cluster's PriorityClass already has that short name, and kubectl resolves it to the
# built-in kind first, so `kubectl get pc` would list PriorityClasses (seen on a real API server).
SHORT_NAMES = ("pcfg",)
CATEGORIES = ("profiling",)
NAME = f"{PLURAL}.{GROUP}"

# `kubectl get pcfg` columns. The selector's namespace is not called "Namespace": with `-A` kubectl
# prints the object's own NAMESPACE column first and a second one of the same name would mislead.
PRINTER_COLUMNS = (
    {
        "name": "Target-Namespace",
        "type": "string",
        "jsonPath": ".spec.selector.namespace",
        "description": "Namespace whose pods are selected; empty: every namespace.",
    },
    {
        "name": "CPU%",
        "type": "number",
        "jsonPath": ".spec.thresholds.cpuThresholdPercent",
        "description": "CPU threshold, percent of requests.",
    },
    {
        "name": "Memory%",
        "type": "number",
        "jsonPath": ".spec.thresholds.memoryThresholdPercent",
        "description": "Memory threshold, percent of requests.",
    },
    {"name": "Active", "type": "integer", "jsonPath": ".status.activePods", "description": "Pods selected now."},
    {"name": "Profiles", "type": "integer", "jsonPath": ".status.totalProfiles", "description": "Profiles captured."},
    {"name": "Uploads", "type": "integer", "jsonPath": ".status.totalUploads", "description": "Profiles stored."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

# Keywords a structural schema may carry, copied as they are (values are converted recursively
# where they hold schemas).
KEPT = frozenset(
    {
        "type", "description", "properties", "items", "required", "enum", "default", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "minItems",
        "maxItems", "minProperties", "maxProperties", "format", "nullable", "example", "x-kubernetes-validations",
        "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource"
    }
)

# Keywords dropped, each with the reason the API server can do without it. All of them remain in
# force wherever the full schema is applied (operator, sidecar, `kprof validate`).
DROPPED = {
    "$schema": "document metadata of the JSON Schema file, meaningless inside a CRD",
    "$id": "document metadata of the JSON Schema file, meaningless inside a CRD",
    "$comment": "a note for schema authors",
    "title": "the CRD's names already say what the object is",
    "if": "conditionals are not structural; the same rules are CEL x-kubernetes-validations where "
    "the API server should enforce them",
    "then": "see if",
    "else": "see if",
    "uniqueItems": "CRDs forbid uniqueItems: true; x-kubernetes-list-type: set gives the same guarantee",
    "propertyNames": "not supported by CRDs; only constrains map keys",
}

# Formats the API server knows (k8s.io/kube-openapi strfmt); others would be ignored with a warning.
SUPPORTED_FORMATS = frozenset(
    {
        "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4", "uuid5",
        "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password", "date",
        "duration", "datetime", "date-time", "int32", "int64", "float", "double"
    }
)


class UnsupportedSchemaError(ValueError):
    """The JSON Schema uses a keyword this generator cannot turn into a structural schema. Raised
    rather than silently dropping it, so that a new rule in the schema is either mapped or
    consciously listed in DROPPED."""


def build_crd(schema: dict[str, Any]) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CRD for ProfilingConfig whose openAPIV3Schema is `schema` made
    structural. `schema` is the parsed profilingconfig.schema.json; it is not modified."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": structural_schema(schema)},
                }
            ],
        },
    }


def structural_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The root of the openAPIV3Schema: the document's properties made structural, with the
    envelope fields in the only shape the API server accepts for them."""
    root = _convert(schema, "")
    properties = root.setdefault("properties", {})
    # The API server owns metadata's schema; a CRD may only say it is an object. apiVersion and
    # kind are checked by the API server's routing before the schema is ever consulted.
    properties["metadata"] = {"type": "object"}
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    root["type"] = "object"
    return root


def _convert(node: Any, path: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise UnsupportedSchemaError(f"{path or '(root)'}: expected a schema object, found {type(node).__name__}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if key in DROPPED or key.startswith("x-kprof-"):
            # x-kprof-* are kprof's own annotations (custom error messages) read by spec.validation.
            continue
        if key == "allOf":
            _check_only_conditionals(value, where)
            continue
        if key == "const":
            # A single-value enum is the structural spelling of const; the constraint is kept.
            out["enum"] = [value]
        elif key == "additionalProperties":
            if value is False:
                # Structural schemas forbid additionalProperties beside properties; the API server
                # prunes unknown fields instead of rejecting them (and the full schema rejects them).
                continue
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[key] = _convert(value, where)
        elif key == "properties":
            out[key] = {name: _convert(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, where)
        elif key == "type":
            out.update(_convert_type(value, where))
        elif key == "format":
            if value in SUPPORTED_FORMATS:
                out[key] = value
        elif key in KEPT:
            out[key] = value
        else:
            raise UnsupportedSchemaError(
                f"{where}: keyword {key!r} has no structural equivalent; map it in kprof_lib/spec/crd.py "
                "or list it in DROPPED with the reason the API server can do without it"
            )
    return out


def _convert_type(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, list):
        kinds = [kind for kind in value if kind != "null"]
        if len(kinds) == 1:
            return {"type": kinds[0], "nullable": True} if "null" in value else {"type": kinds[0]}
    raise UnsupportedSchemaError(f"{where}: a CRD field has exactly one type (plus null), not {value!r}")


def _check_only_conditionals(value: Any, where: str) -> None:
    """allOf is dropped only when it holds nothing but if/then conditionals and kprof messages."""
    conditional = {"if", "then", "else"}
    for index, member in enumerate(value if isinstance(value, list) else [value]):
        keys = {key for key in member if not key.startswith("x-kprof-")} if isinstance(member, dict) else {None}
        if not keys <= conditional:
            raise UnsupportedSchemaError(
                f"{where}[{index}]: only if/then/else conditionals can be dropped from allOf, "
                f"found {sorted(map(str, keys))}"
            )
