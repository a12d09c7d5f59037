"""What kprof would do in a live cluster right now (check mode): reads the pods and their
PodMetrics with the `kubernetes` client, hands them to `kprof_lib.reconcile` with a ProfilingConfig,
and prints each pod's action and reason. Nothing is captured and nothing in the cluster changes.

    python examples/scripts/plan_live.py --config examples/profilingconfigs/threshold.yaml
    python examples/scripts/plan_live.py --kubeconfig ~/.kube/staging --config my-config.yaml -o json

Needs read access to pods and metrics.k8s.io pods (metrics-server). Without metrics-server the
plan still runs: thresholds then say so for each pod. Capture history is not read, so cooldowns
and intervals count as elapsed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kprof_lib import SpecError, StateError, reconcile
from kprof_lib.runtimes.commands.plan import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, metavar="FILE", help="a ProfilingConfig (YAML or JSON)")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, or in-cluster")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)

    with open(args.config, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    spec = document.get("spec", document) if isinstance(document, dict) else document

    api = connect(args.kubeconfig, args.context)
    namespace = (spec.get("selector") or {}).get("namespace") if isinstance(spec, dict) else None
    try:
        state = {
            "now": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pods": list_pods(api, namespace),
            "podMetrics": list_pod_metrics(api, namespace),
        }
        plan = reconcile(spec, state)
    except ApiException as error:
        print(f"the Kubernetes API answered {error.status} {error.reason}: {error.body}", file=sys.stderr)
        return 1
    except (SpecError, StateError) as error:
        print(f"{args.config}: {error}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(render(plan))
    return 0


def connect(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """An ApiClient from the kubeconfig, or the in-cluster service account when there is none."""
    try:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except config.ConfigException:
        if kubeconfig:
            raise
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def list_pods(api: client.ApiClient, namespace: str | None) -> list[dict[str, Any]]:
    """Pods as the API returns them (raw JSON, as reconcile expects), one namespace or all."""
    core = client.CoreV1Api(api)
    if namespace:
        response = core.list_namespaced_pod(namespace, _preload_content=False)
    else:
        response = core.list_pod_for_all_namespaces(_preload_content=False)
    return json.loads(response.data)["items"]


def list_pod_metrics(api: client.ApiClient, namespace: str | None) -> list[dict[str, Any]]:
    """PodMetrics from metrics-server; none (with a warning) when it is not installed."""
    custom = client.CustomObjectsApi(api)
    try:
        if namespace:
            listing = custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", namespace, "pods")
        else:
            listing = custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "pods")
    except ApiException as error:
        if error.status in (404, 503):
            print("metrics.k8s.io is not served (is metrics-server installed?): no usage", file=sys.stderr)
            return []
        raise
    return listing.get("items", [])


if __name__ == "__main__":
    sys.exit(main())
