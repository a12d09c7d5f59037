"""The names of kprof's spans and span attributes, shared by the executor that records them, the
tracing set-up that documents them (`kprof_lib.adapters.tracing`) and the tests that read them
back. Constants only: no tracer is made here.

Span tree of one cycle: `kprof.check` (one reconcile), under it `kprof.metrics` (reading pod
metrics) and one `kprof.capture` per profile, each with its `kprof.upload`; then one
`kprof.summary` per captured pod (its summary.json and index.html, `execution.summaries`).
`kprof capture` has no check: its capture and upload spans sit under one `kprof.oneshot` span.
"""

from __future__ import annotations

TRACER_NAME = "kprof"

# Spans
SPAN_CHECK = "kprof.check"
SPAN_METRICS = "kprof.metrics"
SPAN_CAPTURE = "kprof.capture"
SPAN_UPLOAD = "kprof.upload"
SPAN_SUMMARY = "kprof.summary"
SPAN_ONESHOT = "kprof.oneshot"  # `kprof capture`: one capture of one target, now

# kprof.check
ATTR_CONFIG = "kprof.config"  # namespace/name of the ProfilingConfig
ATTR_PODS_SEEN = "kprof.pods.seen"  # int
ATTR_CAPTURES_PLANNED = "kprof.captures.planned"  # int

# kprof.capture (OpenTelemetry's semantic-convention names where one exists)
ATTR_K8S_NAMESPACE = "k8s.namespace.name"
ATTR_K8S_POD = "k8s.pod.name"
ATTR_PROFILE_TYPE = "profile.type"  # heap, cpu, goroutine, ...
ATTR_TRANSPORT = "kprof.transport"  # the Transport's name: direct, proxy, port-forward
ATTR_BYTES = "kprof.bytes"  # int, size of the profile (also on kprof.upload)
ATTR_RESULT = "kprof.result"  # the capture's outcome in the executor's words

# kprof.upload
ATTR_STORE = "kprof.store"  # the store's description: s3://bucket or a directory
ATTR_BUCKET = "kprof.bucket"  # S3 only
ATTR_OBJECT_KEY = "kprof.object.key"
ATTR_URL_FULL = "url.full"  # s3://bucket/key or file:///path
ATTR_ATTEMPTS = "kprof.attempts"  # int, tries the store made, 1 without retries

# Also recorded by the executor and the check cycle
ATTR_CAPTURE_REASON = "kprof.reason"  # why the pod is captured: cpu-threshold, memory-threshold, on-demand
ATTR_PODS_ACTIVE = "kprof.pods.active"  # int, pods that pass selection (status.activePods)
ATTR_CAPTURES_FAILED = "kprof.captures.failed"  # int, pods due for a capture that produced no profile
ATTR_METRICS_PODS = "kprof.metrics.pods"  # int, PodMetrics read by the metrics check
