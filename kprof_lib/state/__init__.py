"""The cluster state reconcile is given: pods, PodMetrics, capture history and the time, read from
the plain JSON the Kubernetes API and metrics-server return. Pure: no I/O SDK is imported here."""
