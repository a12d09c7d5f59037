"""A real Jaeger v2 (built from its Go module by tools/jaeger/build, linked at .tools/bin/jaeger by
scripts/build-tools) for tests: in-memory storage, an OTLP/HTTP receiver and the query API, every
port on 127.0.0.1 and chosen free, so concurrent suites do not collide. The all-in-one default
listens on fixed ports (4317, 4318, 13133, 8888, ...), which is why a config of our own is used."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY = REPO_ROOT / ".tools" / "bin" / "jaeger"

_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class Jaeger:
    """One Jaeger process; `otlp_endpoint` for OTEL_EXPORTER_OTLP_ENDPOINT, `query_url` for the API."""

    def __init__(self, folder: Path, binary: Path = BINARY) -> None:
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run scripts/build-tools jaeger")
        ports = {name: free_port() for name in ("query", "query_grpc", "health", "otlp")}
        self.otlp_endpoint = f"http://127.0.0.1:{ports['otlp']}"
        self.query_url = f"http://127.0.0.1:{ports['query']}"
        config = folder / "jaeger.yaml"
        config.write_text(_CONFIG.format(**ports))
        self.log = folder / "jaeger.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([str(binary), f"--config={config}"], stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(f"http://127.0.0.1:{ports['health']}/status")

    def _wait_ready(self, health: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jaeger exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jaeger not healthy within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str, **query: Any) -> Any:
        url = f"{self.query_url}{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def traces(self, service: str) -> list[dict[str, Any]]:
        return self.get("/api/traces", service=service, limit=20)["data"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def span_tree(trace: dict[str, Any]) -> list[tuple[int, str]]:
    """(depth, operation name) of each span of a /api/traces trace, parents first, siblings by start."""
    spans = {s["spanID"]: s for s in trace["spans"]}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        parents = [
            r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF" and r["spanID"] in spans
        ]
        children.setdefault(parents[0] if parents else None, []).append(span)
    out: list[tuple[int, str]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s["startTime"], s["operationName"])):
            out.append((depth, span["operationName"]))
            walk(span["spanID"], depth + 1)

    walk(None, 0)
    return out


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}
