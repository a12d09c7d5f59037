"""The operator's settings: what `kprof run`'s flags set, and their defaults, stated once (the flags
take their defaults from here). Light to import, so `kprof run --help` needs no client library.
"""

from __future__ import annotations

from dataclasses import dataclass

from kprof_lib.adapters import spool
from kprof_lib.execution.capture import DEFAULT_CPU_CONCURRENCY, DEFAULT_MAX_BYTES
from kprof_lib.runtimes.operator import alertstore
from kprof_lib.runtimes.operator.alertreceiver import DEFAULT_MAX_BODY_BYTES


@dataclass
class Settings:
    """What `kprof run`'s flags set (see docs/OPERATOR.md for each)."""

    kubeconfig: str | None = None
    namespace: str = "kprof-system"
    leader_elect: bool = True
    lease_name: str = "kprof-operator"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    health_addr: str = ":8081"
    metrics_addr: str = ":8080"
    transport: str = "direct"
    concurrency: int = 4  # byte-bound profiles (heap, goroutine, ...) fetched at once
    cpu_concurrency: int = DEFAULT_CPU_CONCURRENCY  # CPU profiles fetched at once (mostly waiting)
    # Goroutine counts read at once (configs with triggers.goroutines), apart from those two.
    goroutine_concurrency: int = 16
    max_profile_bytes: int = DEFAULT_MAX_BYTES
    # Bytes of profiles in memory at once, streaming or waiting for the store (execution.budget).
    # With the defaults, 4 x 64 MiB: the chart's 512 Mi limit keeps room for the process itself.
    max_inflight_bytes: int = 256 * 1024 * 1024
    tls_verify: bool = True  # false: accept any certificate from https pod endpoints
    local_dir: str = "/var/lib/kprof/profiles"
    spool_dir: str = "/var/lib/kprof/spool"
    spool_max_bytes: int = spool.DEFAULT_MAX_BYTES
    grace_period: float = 30.0
    identity: str | None = None  # the Lease holder's name; default: $POD_NAME or the host name, plus a suffix
    # Namespaces whose ProfilingConfigs may select other namespaces (planning.tenancy).
    cluster_wide_namespaces: tuple[str, ...] = ()
    # Where profiles may go: local, s3://BUCKET, ENDPOINT/BUCKET or * (planning.tenancy).
    allowed_destinations: tuple[str, ...] = ("local",)
    # The Alertmanager webhook receiver (operator.alertreceiver): off unless given an address; it
    # then needs the bearer token's file, and serves HTTPS when given a certificate and its key.
    alerts_addr: str | None = None
    alerts_token_file: str | None = None
    alerts_tls_cert_file: str | None = None
    alerts_tls_key_file: str | None = None
    # Which alert labels name the pod (adapters.alertmanager.LabelMapping); the workload pairs are
    # (alert label, pod label).
    alerts_namespace_label: str = "namespace"
    alerts_pod_label: str = "pod"
    alerts_match_labels: tuple[tuple[str, str], ...] = ()
    alerts_max: int = alertstore.DEFAULT_MAX_ALERTS
    alerts_expiry: float = alertstore.DEFAULT_EXPIRY_SECONDS
    alerts_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


DEFAULTS = Settings()
