"""The kinds the emulator serves and how each behaves: a `ResourceType` records what differs between
kube-apiserver's registries (scope, status subresource, create-on-update, unconditional update,
what a delete returns, field selector labels), and `ResourceRegistry` holds them, answers discovery
(/api, /apis, /apis/{group}/{version}) and turns CustomResourceDefinitions into new types. Used by
the store, the HTTP server and `KubeEmulator.register_resource`."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_METADATA_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    list_kind: str = ""
    status_subresource: bool = False
    # Custom resources: list items keep apiVersion/kind, metadata.generation is tracked, strategic
    # merge patch is refused (kube answers 415 for them).
    custom: bool = False
    # Whether PUT on a missing object creates it (kube: leases and events yes, most kinds no).
    create_on_update: bool = False
    # Whether PUT without metadata.resourceVersion is accepted (kube: no for leases and custom resources).
    unconditional_update: bool = True
    # Whether DELETE answers with the object (pods, namespaces) or with a Status (everything else).
    return_deleted_object: bool = False
    # Read-only kinds (metrics.k8s.io) serve get and list only.
    read_only: bool = False
    # Versioned kinds carry metadata.resourceVersion and produce watch events; metrics do not.
    versioned: bool = True
    extra_subresources: tuple[Subresource, ...] = ()
    field_labels: tuple[str, ...] = ()
    field_aliases: tuple[tuple[str, str], ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def tracks_generation(self) -> bool:
        return self.custom or self.plural == "customresourcedefinitions"

    @property
    def verbs(self) -> tuple[str, ...]:
        return ("get", "list") if self.read_only else _ALL_VERBS

    @property
    def supported_field_labels(self) -> tuple[str, ...]:
        return _METADATA_FIELDS + self.field_labels

    @property
    def subresources(self) -> tuple[Subresource, ...]:
        status = (Subresource("status", self.kind, ("get", "patch", "update")),) if self.status_subresource else ()
        return status + self.extra_subresources


POD_FIELD_LABELS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
EVENT_FIELD_LABELS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType(
            "",
            "v1",
            "pods",
            "Pod",
            short_names=("po",),
            categories=("all",),
            status_subresource=True,
            return_deleted_object=True,
            field_labels=POD_FIELD_LABELS,
            extra_subresources=(
                Subresource("proxy", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
                Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
            ),
        ),
        ResourceType(
            "",
            "v1",
            "events",
            "Event",
            short_names=("ev",),
            create_on_update=True,
            field_labels=EVENT_FIELD_LABELS,
            field_aliases=(("source", "source.component"),),
        ),
        ResourceType(
            "",
            "v1",
            "namespaces",
            "Namespace",
            namespaced=False,
            short_names=("ns",),
            status_subresource=True,
            return_deleted_object=True,
            field_labels=("status.phase",),
        ),
        ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
        ResourceType("", "v1", "secrets", "Secret", field_labels=("type",)),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", create_on_update=True, unconditional_update=False),
        ResourceType(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            short_names=("ev",),
            create_on_update=True,
            field_labels=("reason", "regarding.kind", "regarding.name", "regarding.namespace", "type"),
        ),
        ResourceType("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", read_only=True, versioned=False),
        ResourceType(
            "metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", namespaced=False, read_only=True, versioned=False
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=("crd", "crds"),
            status_subresource=True,
            unconditional_update=False,
        ),
    ]


def custom_type(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    status_subresource: bool = True,
    singular: str = "",
    short_names: tuple[str, ...] = (),
    list_kind: str = "",
    categories: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group,
        version,
        plural,
        kind,
        namespaced=namespaced,
        singular=singular or kind.lower(),
        short_names=tuple(short_names),
        list_kind=list_kind or f"{kind}List",
        status_subresource=status_subresource,
        custom=True,
        unconditional_update=False,
        categories=tuple(categories),
    )


def crd_for(rt: ResourceType) -> dict[str, Any]:
    """The CustomResourceDefinition object kube would hold for a registered custom type."""
    version: dict[str, Any] = {
        "name": rt.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if rt.status_subresource:
        version["subresources"] = {"status": {}}
    names: dict[str, Any] = {
        "plural": rt.plural,
        "singular": rt.singular_name,
        "kind": rt.kind,
        "listKind": rt.list_kind_name,
    }
    if rt.short_names:
        names["shortNames"] = list(rt.short_names)
    if rt.categories:
        names["categories"] = list(rt.categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{rt.plural}.{rt.group}"},
        "spec": {
            "group": rt.group,
            "names": names,
            "scope": "Namespaced" if rt.namespaced else "Cluster",
            "versions": [version],
        },
    }


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    types = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        types.append(
            custom_type(
                spec["group"],
                version["name"],
                names["plural"],
                names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                status_subresource="status" in (version.get("subresources") or {}),
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames") or ()),
                list_kind=names.get("listKind", ""),
                categories=tuple(names.get("categories") or ()),
            )
        )
    return types


class ResourceRegistry:
    """The served kinds, looked up by URL parts or by (apiVersion, kind-or-plural). Registration is
    copy-on-write so request threads read without locking."""

    def __init__(self, types: list[ResourceType] | None = None) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in types or []:
            self.register(rt)

    def register(self, rt: ResourceType) -> ResourceType:
        with self._lock:
            types = dict(self._types)
            types[rt.key] = rt
            self._types = types
        return rt

    def unregister(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            types = dict(self._types)
            types.pop(key, None)
            self._types = types

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def resolve(self, api_version: str, kind_or_plural: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for rt in self._types.values():
            if (
                rt.group == group
                and rt.version == version
                and kind_or_plural in (rt.kind, rt.plural, rt.singular_name, *rt.short_names)
            ):
                return rt
        raise KeyError(f"no kind or resource {kind_or_plural!r} served in {api_version!r}")

    def group_versions(self) -> dict[str, list[str]]:
        versions: dict[str, list[str]] = {}
        for rt in self._types.values():
            served = versions.setdefault(rt.group, [])
            if rt.version not in served:
                served.append(rt.version)
        return versions

    def api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def _group(self, name: str, versions: list[str]) -> dict[str, Any]:
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": listed, "preferredVersion": listed[0]}

    def api_group_list(self) -> dict[str, Any]:
        groups = [self._group(g, v) for g, v in self.group_versions().items() if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, name: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(name)
        if not name or not versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group(name, versions)}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        served = [rt for rt in self._types.values() if rt.group == group and rt.version == version]
        if not served:
            return None
        resources: list[dict[str, Any]] = []
        for rt in served:
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular_name,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                resources.append(
                    {
                        "name": f"{rt.plural}/{sub.name}",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": sub.kind,
                        "verbs": list(sub.verbs),
                    }
                )
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
