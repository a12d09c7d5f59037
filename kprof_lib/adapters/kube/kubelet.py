"""Pod usage from one node's kubelet, the node agent's `MetricsSource`: `GET /metrics/resource` on
the kubelet (the endpoint metrics-server scrapes; no metrics-server needed), read as Prometheus
text. CPU is a rate between two scrapes of `container_cpu_usage_seconds_total`, memory the
latest `container_memory_working_set_bytes`; the answer has the shape metrics-server gives
(PodMetrics items), so reconcile reads it unchanged.

The kubelet authorizes the request as `get` on the `nodes/metrics` subresource of its Node
(SubjectAccessReview of the bearer token, as for every `/metrics/*` path): the agent sends the
token of its ServiceAccount, read afresh from the API client each time (bound tokens rotate). A
container is served once it has two samples at least `min_window` seconds apart, and a pod only
when every container the kubelet reports for it is (as metrics-server does: a pod with a part of
its usage missing would look idle). A counter that went down (the container restarted) starts
over. Failures come out as `MetricsUnavailable` naming the URL and the kubelet's answer.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client import ApiClient

from kprof_lib.adapters.kube.metrics import MetricsUnavailable
from kprof_lib.state import cluster

PATH = "/metrics/resource"
CPU = "container_cpu_usage_seconds_total"
MEMORY = "container_memory_working_set_bytes"
# A node's resource metrics are a few hundred bytes per container; more than this is not a kubelet.
MAX_BODY_BYTES = 32 * 1024 * 1024

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Container = tuple[str, str, str]  # namespace, pod, container


@dataclass(frozen=True)
class Sample:
    """One container's figures at `time` (seconds since the epoch): CPU seconds used so far, bytes."""

    cpu_seconds: float | None
    memory_bytes: float | None
    time: float


def parse(text: str, now: float) -> dict[Container, Sample]:
    """The container samples in a `/metrics/resource` exposition (other series are skipped); a
    sample without a timestamp is taken at `now`."""
    cpu: dict[Container, tuple[float, float]] = {}
    memory: dict[Container, tuple[float, float]] = {}
    for line in text.splitlines():
        if not line.startswith(("container_cpu", "container_memory")):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in (CPU, MEMORY):
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(match.group(2))}
        key = (labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", ""))
        if not all(key):
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        stamp = int(match.group(4)) / 1000 if match.group(4) else now
        (cpu if match.group(1) == CPU else memory)[key] = (value, stamp)
    samples = {}
    for key in cpu.keys() | memory.keys():
        used, mem = cpu.get(key), memory.get(key)
        stamp = max(t for _, t in (x for x in (used, mem) if x is not None))
        samples[key] = Sample(used[0] if used else None, mem[0] if mem else None, stamp)
    return samples


def _unescape(value: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], value) if "\\" in value else value


class Rates:
    """CPU rates between scrapes: keeps each container's earlier sample (the one a rate is taken
    from) until a later one is at least `min_window` seconds after it, and each container's latest
    usage, so a scrape too soon after the last one (two checks at once) still serves it."""

    def __init__(self, min_window: float = 1.0) -> None:
        self._min_window = min_window
        self._base: dict[Container, Sample] = {}
        self._usage: dict[Container, tuple[float, float, float]] = {}

    def update(self, samples: dict[Container, Sample]) -> dict[Container, tuple[float, float, float]]:
        """(cores, memory bytes, window seconds) of every container with a rate now."""
        for key, sample in samples.items():
            base = self._base.get(key)
            if sample.cpu_seconds is None or sample.memory_bytes is None:
                self._usage.pop(key, None)
                continue
            if base is None or base.cpu_seconds is None or sample.cpu_seconds < base.cpu_seconds:
                self._base[key] = sample  # first seen, or restarted: its counter starts over
                self._usage.pop(key, None)
                continue
            window = sample.time - base.time
            if window < self._min_window:
                if key in self._usage:  # the rate stands; the memory is the latest
                    cores, _, last_window = self._usage[key]
                    self._usage[key] = (cores, sample.memory_bytes, last_window)
                continue
            self._usage[key] = ((sample.cpu_seconds - base.cpu_seconds) / window, sample.memory_bytes, window)
            self._base[key] = sample
        # Containers gone from the node are forgotten: the maps stay the size of the node.
        for gone in self._base.keys() - samples.keys():
            del self._base[gone]
        for gone in self._usage.keys() - samples.keys():
            del self._usage[gone]
        return dict(self._usage)


def pod_metrics(
    samples: dict[Container, Sample],
    usage: dict[Container, tuple[float, float, float]],
    namespace: str | None,
    wanted: Callable[[tuple[str, str]], bool] | None = None,
) -> list[dict[str, Any]]:
    """PodMetrics items (metrics.k8s.io/v1beta1 shape) for the pods of `namespace` (None: all),
    `wanted` when given, whose every container has usage."""
    pods: dict[tuple[str, str], list[Container]] = {}
    for key in samples:
        if (namespace is None or key[0] == namespace) and (wanted is None or wanted(key[:2])):
            pods.setdefault(key[:2], []).append(key)
    items = []
    for (ns, name), containers in sorted(pods.items()):
        if not all(c in usage for c in containers):
            continue
        latest = max(samples[c].time for c in containers)
        window = min(usage[c][2] for c in containers)
        items.append(
            {
                "metadata": {"name": name, "namespace": ns},
                "timestamp": cluster.format_time(dt.datetime.fromtimestamp(latest, dt.UTC)),
                "window": f"{window:.3f}s",
                "containers": [
                    {
                        "name": c[2],
                        "usage": {"cpu": f"{round(usage[c][0] * 1e9)}n", "memory": str(round(usage[c][1]))},
                    }
                    for c in sorted(containers)
                ],
            }
        )
    return items


class KubeletMetrics:
    """Reads `base_url` + /metrics/resource (e.g. https://10.0.0.5:10250) with the API client's
    bearer token. `ca_file` verifies the kubelet's serving certificate; `tls_verify=False` accepts
    any (kubelets often serve a self-signed one)."""

    def __init__(
        self,
        base_url: str,
        api_client: ApiClient | None = None,
        *,
        ca_file: str | None = None,
        tls_verify: bool = True,
        timeout: float = 10.0,
        min_window: float = 1.0,
    ) -> None:
        self.url = base_url.rstrip("/") + PATH
        self._api = api_client
        self._timeout = timeout
        self._pool = urllib3.PoolManager(
            num_pools=1,
            maxsize=2,
            retries=False,
            cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE",
            ca_certs=ca_file,
            # A kubelet is reached by the node's IP, which its certificate may not name.
            assert_hostname=None if tls_verify else False,
        )
        self._rates = Rates(min_window)
        self._min_window = min_window
        self._scraped = float("-inf")
        self._samples: dict[Container, Sample] = {}
        self._usage: dict[Container, tuple[float, float, float]] = {}
        self._lock = threading.Lock()
        self.scrapes = 0

    def scrape(self) -> None:
        """Read the kubelet now and keep the samples (called at start so the first check has a rate)."""
        text = self._get()
        with self._lock:
            self._samples = parse(text, time.time())
            self._usage = self._rates.update(self._samples)
            self._scraped = time.monotonic()
            self.scrapes += 1

    def pod_metrics(
        self,
        namespace: str | None,
        label_selector: str | None,
        wanted: Callable[[tuple[str, str]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """PodMetrics of the node's pods in `namespace` (None: all), `wanted` when given. `label_selector` is not
        applied: reconcile selects pods itself, and usage of pods it does not select is unused.
        Checks of several configs at once share one scrape (one younger than `min_window`)."""
        with self._lock:
            fresh = time.monotonic() - self._scraped < self._min_window
        if not fresh:
            self.scrape()
        with self._lock:
            return pod_metrics(self._samples, self._usage, namespace, wanted)

    def _get(self) -> str:
        headers = {"Accept": "text/plain"}
        token = _bearer(self._api)
        if token:
            headers["Authorization"] = token
        try:
            response = self._pool.request(
                "GET", self.url, headers=headers, timeout=self._timeout, preload_content=False, redirect=False
            )
        except urllib3.exceptions.HTTPError as exc:
            raise MetricsUnavailable(f"GET {self.url}: {type(exc).__name__}: {exc}", path=self.url, status=0) from None
        try:
            body = b"".join(_bounded(response.stream(65536), MAX_BODY_BYTES, self.url))
        finally:
            response.release_conn()
        if response.status != 200:
            detail = body[:300].decode(errors="replace").strip()
            hint = ": the node agent needs get on nodes/metrics" if response.status in (401, 403) else ""
            message = f"GET {self.url}: {response.status} {detail}{hint}"
            raise MetricsUnavailable(message, path=self.url, status=response.status)
        return body.decode(errors="replace")


def _bounded(chunks: Iterable[bytes], limit: int, url: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise MetricsUnavailable(f"GET {url}: the answer is over {limit} bytes", path=url, status=200)
        yield chunk


def _bearer(api: ApiClient | None) -> str | None:
    """The API client's Authorization header value ("Bearer ..."), refreshed if it rotates."""
    if api is None:
        return None
    setting = api.configuration.auth_settings().get("BearerToken")
    return setting.get("value") if setting else None
