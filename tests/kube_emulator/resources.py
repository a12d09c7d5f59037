"""The kinds the emulator serves and how each behaves: a `ResourceType` records what differs between
kube-apiserver's registries (scope, status subresource, create-on-update, unconditional update,
what a delete returns, field selector labels), and `ResourceRegistry` holds them. Used by the store,
the HTTP server and `KubeEmulator`. No discovery documents and no CustomResourceDefinitions: the
clients that need those run against the real control plane (tests.support.controlplane)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

_METADATA_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
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
    field_labels: tuple[str, ...] = ()
    field_aliases: tuple[tuple[str, str], ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def list_kind_name(self) -> str:
        return f"{self.kind}List"

    @property
    def tracks_generation(self) -> bool:
        return self.custom

    @property
    def supported_field_labels(self) -> tuple[str, ...]:
        return _METADATA_FIELDS + self.field_labels


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
            status_subresource=True,
            return_deleted_object=True,
            field_labels=POD_FIELD_LABELS,
        ),
        ResourceType(
            "",
            "v1",
            "events",
            "Event",
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
            status_subresource=True,
            return_deleted_object=True,
            field_labels=("status.phase",),
        ),
        ResourceType("", "v1", "configmaps", "ConfigMap"),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", create_on_update=True, unconditional_update=False),
        ResourceType("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", read_only=True, versioned=False),
    ]


def custom_type(group: str, version: str, plural: str, kind: str) -> ResourceType:
    """A namespaced custom resource with a status subresource, as the CRDs kprof uses declare."""
    return ResourceType(
        group, version, plural, kind, status_subresource=True, custom=True, unconditional_update=False
    )


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
                and kind_or_plural in (rt.kind, rt.plural)
            ):
                return rt
        raise KeyError(f"no kind or resource {kind_or_plural!r} served in {api_version!r}")
