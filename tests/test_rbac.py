"""kprof_lib.runtimes.rbac: the operator's permissions as data, and the flattening that compares
rule sets however they are written."""

from __future__ import annotations

import pytest

from kprof_lib.runtimes import rbac


def test_the_cluster_role_grants_what_the_operator_reads_and_writes():
    granted = rbac.permissions(rbac.REQUIRED_RULES[rbac.CLUSTER_ROLE])
    assert ("", "pods", "watch") in granted
    assert ("metrics.k8s.io", "pods", "list") in granted
    assert ("profiling.io", "profilingconfigs/status", "patch") in granted
    assert ("", "events", "create") in granted
    # Pods are never changed, only read.
    assert {verb for group, resource, verb in granted if resource == "pods" and group == ""} == {"list", "watch"}


def test_leases_and_history_are_namespaced_only():
    cluster = rbac.permissions(rbac.REQUIRED_RULES[rbac.CLUSTER_ROLE])
    namespaced = rbac.permissions(rbac.REQUIRED_RULES[rbac.NAMESPACE_ROLE])
    assert {resource for _, resource, _ in namespaced} == {"leases", "configmaps"}
    assert not {resource for _, resource, _ in cluster} & {"leases", "configmaps"}


def test_no_secrets_and_no_wildcards_anywhere():
    everything = rbac.rules_for(rbac.TRANSPORTS)
    for rules in everything.values():
        for group, resource, verb in rbac.permissions(rules):
            assert "*" not in (group, resource, verb)
            assert resource != "secrets"


@pytest.mark.parametrize(
    ("transports", "extra"),
    [
        (["direct"], set()),
        (["proxy"], {("", "pods/proxy", "get")}),
        (["portforward"], {("", "pods/portforward", "create"), ("", "pods/portforward", "get")}),
        (["direct", "proxy", "proxy"], {("", "pods/proxy", "get")}),
    ],
)
def test_each_transport_adds_its_own_permission(transports, extra):
    base = rbac.permissions(rbac.REQUIRED_RULES[rbac.CLUSTER_ROLE])
    assert rbac.permissions(rbac.rules_for(transports)[rbac.CLUSTER_ROLE]) == base | extra


def test_an_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="unknown transport 'ssh'"):
        rbac.rules_for(["ssh"])


def test_rules_written_differently_compare_equal():
    merged = [{"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get"]}]
    split = [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    ]
    assert rbac.permissions(merged) == rbac.permissions(split) == {("", "pods", "get"), ("", "events", "get")}
    assert rbac.permissions([rbac.Rule("", ("pods",), ("get",))]) == {("", "pods", "get")}


def test_rules_the_triples_cannot_express_are_refused():
    with pytest.raises(ValueError, match="resourceNames"):
        rbac.permissions([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["x"], "verbs": ["get"]}])


def test_policy_rules_round_trip():
    for rules in rbac.rules_for(rbac.TRANSPORTS).values():
        assert rbac.permissions(rule.to_policy_rule() for rule in rules) == rbac.permissions(rules)
