"""What kube-apiserver checks on every object before storing it, as far as the emulator goes: the
name's format (DNS subdomain, or DNS label for namespaces), label keys and values, string-valued
annotations, and a CustomResourceDefinition's name and names. Used by the store on every write."""

from __future__ import annotations

import re
from typing import Any

from . import status as st
from .resources import ResourceType

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def validate(rt: ResourceType, obj: dict[str, Any]) -> None:
    """422 Invalid (or 400 for values of the wrong type) unless the object's metadata is well-formed."""
    meta = obj["metadata"]
    name = meta.get("name", "")
    causes: list[tuple[str, str, str]] = []
    pattern, limit = (_DNS_LABEL, 63) if rt.plural == "namespaces" and not rt.group else (_DNS_SUBDOMAIN, 253)
    if not isinstance(name, str) or not pattern.match(name) or len(name) > limit:
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character",
            )
        )
    for field_name in ("labels", "annotations"):
        values = meta.get(field_name)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise st.bad_request(
                f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field_name} of type string"
            )
        for key, value in values.items():
            if not _QUALIFIED_NAME.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"metadata.{field_name}",
                        f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.'",
                    )
                )
            if field_name == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                causes.append(
                    (
                        "FieldValueInvalid",
                        "metadata.labels",
                        f'Invalid value: "{value}": a valid '
                        "label must be an empty string or consist of alphanumeric characters, '-', "
                        "'_' or '.', and must be no more than 63 characters",
                    )
                )
    if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind") or not spec.get("versions"):
            causes.append(("FieldValueRequired", "spec", "Required value: group, names and versions"))
        elif name != f"{names['plural']}.{spec['group']}":
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
    if causes:
        raise st.invalid(rt.kind, rt.group, str(name), causes)
