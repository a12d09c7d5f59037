"""A stand-in for one Node's kubelet, serving only what metrics-server scrapes: `GET
/metrics/resource` in Prometheus text with the kubelet's metric names, figures read from /proc.

Tests give it the real processes behind their pods (`agent.add(namespace, pod, container, pid)`);
each scrape reports those processes' CPU seconds (utime + stime), resident memory and start time,
and the machine's own CPU and memory as the node's. Plain HTTP on 127.0.0.1 (metrics-server runs
with --deprecated-kubelet-completely-insecure): nothing here is reachable from outside.

With `api` (an admin ApiClient) and `node`, it authorizes each request as a kubelet does with
`--authentication-token-webhook --authorization-mode=Webhook`: the bearer token through a
TokenReview (401 without one, or when it is not valid), then a SubjectAccessReview of `get` on
`nodes/metrics` of its node (403 with the kubelet's own wording when not allowed). `authorized`
lists who was let in, as (user, verb, resource) — the kubelet's side of an RBAC test's audit.
"""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _boot_time() -> float:
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime")


def _process(pid: int) -> tuple[float, int, float] | None:
    """(CPU seconds, resident bytes, start time as a Unix time) of a live process, else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name may hold spaces and parentheses: split after its closing one.
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    utime, stime, start_ticks = int(fields[11]), int(fields[12]), int(fields[19])
    return (utime + stime) / _TICKS, resident_pages * _PAGE, _boot_time() + start_ticks / _TICKS


def _node_cpu_seconds() -> float:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: busy time is everything but idle and iowait.
    return (sum(values[:8]) - values[3] - values[4]) / _TICKS


def _node_working_set() -> int:
    info: dict[str, int] = {}
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            name, value = line.split(":", 1)
            info[name] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


class NodeAgent:
    """`/metrics/resource` for one fake Node on 127.0.0.1:`port`."""

    def __init__(self, api: Any = None, node: str | None = None) -> None:
        self._containers: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self.scrapes = 0
        self._api = api
        self.node = node
        self.authorized: list[tuple[str, str, str]] = []
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics/resource":
                    self.send_error(404)
                    return
                refusal = agent.refusal(self.headers.get("Authorization"))
                if refusal is not None:
                    self._answer(refusal[0], refusal[1].encode())
                    return
                self._answer(200, agent.exposition().encode())

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="node-agent", daemon=True)
        self._thread.start()

    def refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """(status, body) when the request may not read the metrics, None when it may."""
        if self._api is None:
            return None
        from kubernetes import client

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 401, "Unauthorized"
        review = client.AuthenticationV1Api(self._api).create_token_review({"spec": {"token": token}})
        if not review.status.authenticated:
            return 401, "Unauthorized"
        user = review.status.user
        attributes = {"verb": "get", "resource": "nodes", "subresource": "metrics", "name": self.node}
        access = client.AuthorizationV1Api(self._api).create_subject_access_review(
            {
                "spec": {
                    "user": user.username,
                    "groups": user.groups,
                    "uid": user.uid,
                    "extra": user.extra,
                    "resourceAttributes": attributes,
                }
            }
        )
        if not access.status.allowed:
            # The kubelet's words (pkg/kubelet/server/auth.go).
            return 403, f"Forbidden (user={user.username}, verb=get, resource=nodes, subresource(s)=[metrics])"
        with self._lock:
            self.authorized.append((user.username, "get", "nodes/metrics"))
        return None

    def add(self, namespace: str, pod: str, container: str, pid: int) -> None:
        with self._lock:
            self._containers[(namespace, pod, container)] = pid

    def remove(self, namespace: str, pod: str) -> None:
        with self._lock:
            for key in [k for k in self._containers if k[:2] == (namespace, pod)]:
                del self._containers[key]

    def exposition(self) -> str:
        """The kubelet's resource metrics now, with millisecond timestamps as the kubelet writes them."""
        self.scrapes += 1
        now_ms = int(time.time() * 1000)
        lines = [
            "# TYPE node_cpu_usage_seconds_total counter",
            f"node_cpu_usage_seconds_total {_node_cpu_seconds():.6f} {now_ms}",
            "# TYPE node_memory_working_set_bytes gauge",
            f"node_memory_working_set_bytes {_node_working_set()} {now_ms}",
        ]
        with self._lock:
            containers = dict(self._containers)
        series: dict[str, list[str]] = {
            "container_cpu_usage_seconds_total": [],
            "container_memory_working_set_bytes": [],
            "container_start_time_seconds": [],
        }
        for (namespace, pod, container), pid in sorted(containers.items()):
            figures = _process(pid)
            if figures is None:
                continue
            cpu, memory, started = figures
            labels = f'container="{container}",namespace="{namespace}",pod="{pod}"'
            series["container_cpu_usage_seconds_total"].append(f"{{{labels}}} {cpu:.6f} {now_ms}")
            series["container_memory_working_set_bytes"].append(f"{{{labels}}} {memory} {now_ms}")
            series["container_start_time_seconds"].append(f"{{{labels}}} {started:.3f} {now_ms}")
        for name, samples in series.items():
            lines.append(f"# TYPE {name} {'gauge' if 'memory' in name or 'start' in name else 'counter'}")
            lines.extend(name + sample for sample in samples)
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
