"""Connecting to the Kubernetes API: a kubeconfig when one is named or found, else the in-cluster
service account. Every runtime that talks to the API starts here."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ClientConfigError(RuntimeError):
    """No way to reach the API: the message says what was tried."""


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient, found in controller-runtime's order: `kubeconfig`, then $KUBECONFIG, then the
    in-cluster service account, then ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig and not Path(kubeconfig).is_file():
        raise ClientConfigError(f"kubeconfig {kubeconfig} does not exist")
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if explicit:
        return _from_kubeconfig(explicit, context, configuration)
    try:
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except config.ConfigException as in_cluster_error:
        home = Path.home() / ".kube" / "config"
        if home.is_file():
            return _from_kubeconfig(str(home), context, configuration)
        raise ClientConfigError(
            f"no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster: {in_cluster_error}"
        ) from None


def _from_kubeconfig(path: str, context: str | None, configuration: client.Configuration) -> client.ApiClient:
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        raise ClientConfigError(f"kubeconfig {path}: {error}") from None
    return client.ApiClient(configuration)


def own_namespace(default: str = "kprof-system") -> str:
    """The namespace this process runs in: $POD_NAMESPACE, the service account's, or `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        return default
