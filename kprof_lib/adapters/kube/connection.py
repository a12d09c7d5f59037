"""Connecting to the Kubernetes API: a kubeconfig when one is named or found, else the in-cluster
service account. Every runtime that talks to the API starts here."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ConnectionError(RuntimeError):
    """No way to reach the API: the message says what was tried."""


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for `kubeconfig` (or $KUBECONFIG, ~/.kube/config), else in-cluster."""
    configuration = client.Configuration()
    candidates = [kubeconfig] if kubeconfig else [os.environ.get("KUBECONFIG"), str(Path.home() / ".kube" / "config")]
    for path in candidates:
        if path and Path(path.split(os.pathsep)[0]).is_file():
            try:
                config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
            except config.ConfigException as error:
                raise ConnectionError(f"kubeconfig {path}: {error}") from None
            return client.ApiClient(configuration)
        if kubeconfig:
            raise ConnectionError(f"kubeconfig {kubeconfig} does not exist")
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as error:
        raise ConnectionError(
            f"no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster: {error}"
        ) from None
    return client.ApiClient(configuration)


def own_namespace(default: str = "kprof-system") -> str:
    """The namespace this process runs in: $POD_NAMESPACE, the service account's, or `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        return default
