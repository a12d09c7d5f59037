"""The Kubernetes permissions the operator needs, as data: exactly the API calls it makes, no more.

One source for every place that grants or checks permissions: the Helm chart's and the kustomize
base's ClusterRole and Role are compared with `REQUIRED_RULES` (plus `TRANSPORT_RULES` for the
transports they enable) by the tests, and the API calls the operator makes against a real API
server (its audit log) are compared with the same rules; `NODE_AGENT_RULES` are the node agents'.
The sidecar needs none of these: it makes no Kubernetes API calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Which object a set of rules goes into.
CLUSTER_ROLE = "ClusterRole"
# Granted in the operator's own namespace only (the Lease and the capture-history ConfigMaps).
NAMESPACE_ROLE = "Role"

TRANSPORTS = ("direct", "proxy", "portforward")


@dataclass(frozen=True)
class Rule:
    """One RBAC PolicyRule: verbs on resources of one API group ("" is the core group)."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def to_policy_rule(self) -> dict[str, list[str]]:
        """The rule as it is written in a Role or ClusterRole."""
        return {"apiGroups": [self.api_group], "resources": list(self.resources), "verbs": list(self.verbs)}


# Each grant is shown to be needed against a real API server (tests/test_cluster_operator.py: its
# audit log has exactly these calls, and the scenario fails, naming the permission, without any
# one of them). Nothing reads single pods, single PodMetrics or single configs (watch caches and
# one LIST per check do), and status is written by merge patch only: no get, no update.
REQUIRED_RULES: Mapping[str, tuple[Rule, ...]] = {
    CLUSTER_ROLE: (
        # Selection: the operator lists and watches pods in every namespace.
        Rule("", ("pods",), ("list", "watch")),
        # Events on pods (capture taken or failed) and on ProfilingConfigs (invalid spec); patch
        # raises the count of an Event seen again.
        Rule("", ("events",), ("create", "patch")),
        Rule("profiling.io", ("profilingconfigs",), ("list", "watch")),
        Rule("profiling.io", ("profilingconfigs/status",), ("patch",)),
        # Usage for thresholds comes from metrics-server, one LIST per check.
        Rule("metrics.k8s.io", ("pods",), ("list",)),
    ),
    NAMESPACE_ROLE: (
        # Leader election.
        Rule("coordination.k8s.io", ("leases",), ("get", "create", "update")),
        # Capture history, one ConfigMap per ProfilingConfig (kprof-history-<hash>).
        Rule("", ("configmaps",), ("get", "create", "update", "delete")),
    ),
}

# Added to the ClusterRole for each transport profiles may be fetched through. "direct" connects to
# the pod IP and needs no permission.
TRANSPORT_RULES: Mapping[str, tuple[Rule, ...]] = {
    "direct": (),
    "proxy": (Rule("", ("pods/proxy",), ("get",)),),
    "portforward": (Rule("", ("pods/portforward",), ("create", "get")),),
}


# The node agents' (`kprof node`, the chart with mode=node), each shown to be needed the same way
# (tests/test_cluster_nodes.py). The pods watch is cut to the agent's node by a field selector,
# which RBAC cannot require: the grant is cluster-wide, the requests are not. `nodes/metrics` is
# what a kubelet asks the API server about (SubjectAccessReview) before it serves /metrics/resource
# (direct to the kubelet; `nodes/proxy` would be needed only through the API server's node proxy,
# and grants far more: the kubelet's whole API). Profiles are fetched from the pod IPs (direct).
# In the agents' namespace: the Lease electing the agent that folds, and ConfigMaps: each agent's
# history and report per config (get, create, update, delete), the folder's LIST of the reports.
NODE_AGENT_RULES: Mapping[str, tuple[Rule, ...]] = {
    CLUSTER_ROLE: (
        Rule("", ("pods",), ("list", "watch")),
        Rule("", ("events",), ("create", "patch")),
        Rule("profiling.io", ("profilingconfigs",), ("list", "watch")),
        Rule("profiling.io", ("profilingconfigs/status",), ("patch",)),
        Rule("", ("nodes/metrics",), ("get",)),
    ),
    NAMESPACE_ROLE: (
        Rule("coordination.k8s.io", ("leases",), ("get", "create", "update")),
        Rule("", ("configmaps",), ("get", "list", "create", "update", "delete")),
    ),
}


def rules_for(transports: Iterable[str]) -> dict[str, tuple[Rule, ...]]:
    """The rules of the ClusterRole and the Role when the given transports are enabled."""
    extra: list[Rule] = []
    for transport in dict.fromkeys(transports):
        if transport not in TRANSPORT_RULES:
            raise ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
        extra.extend(TRANSPORT_RULES[transport])
    return {CLUSTER_ROLE: REQUIRED_RULES[CLUSTER_ROLE] + tuple(extra), NAMESPACE_ROLE: REQUIRED_RULES[NAMESPACE_ROLE]}


def permissions(rules: Iterable[Rule | Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """Rules flattened to (apiGroup, resource, verb) triples, so that rule sets written differently
    (split, merged, reordered) compare equal when they grant the same. Accepts Rule objects and
    PolicyRule dicts as found in rendered manifests; a dict with resourceNames or nonResourceURLs
    is refused since the triples could not express it."""
    granted: set[tuple[str, str, str]] = set()
    for rule in rules:
        if isinstance(rule, Rule):
            groups, resources, verbs = [rule.api_group], rule.resources, rule.verbs
        else:
            unexpected = set(rule) - {"apiGroups", "resources", "verbs"}
            if unexpected:
                raise ValueError(f"rule {dict(rule)} uses {sorted(unexpected)}, which kprof never grants")
            groups, resources, verbs = rule.get("apiGroups", []), rule.get("resources", []), rule.get("verbs", [])
        granted.update((group, resource, verb) for group in groups for resource in resources for verb in verbs)
    return granted
