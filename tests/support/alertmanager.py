"""A real Alertmanager (v0.31.1, built from its Go module by tools/alertmanager/build, linked at
.tools/bin/alertmanager by scripts/build-tools) for tests: one receiver, kprof's webhook with a
bearer token read from a file (`http_config.authorization.credentials_file`, as a mounted Secret
would be) and, for an HTTPS receiver, the CA that signed its certificate. It listens on a free
port of 127.0.0.1, without HA gossip (`--cluster.listen-address=`: no settling wait), groups by
alert name, namespace and pod with 1 s group_wait and group_interval, and repeats a firing group
every `repeat_interval`, so a test sees the same fingerprint delivered again within seconds.

`start_alertmanager` (a module-scoped fixture) starts them and stops every one at teardown. A
missing binary is an error naming the command that builds it, never a skip.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY = REPO_ROOT / ".tools" / "bin" / "alertmanager"
START_TIMEOUT = 30.0


class Alertmanager:
    """One Alertmanager process delivering to `receiver_url`; `url` is its own API."""

    def __init__(
        self,
        folder: Path,
        receiver_url: str,
        token_file: Path,
        *,
        ca_file: Path | None = None,
        repeat_interval: str = "2s",
        config: Mapping[str, Any] | None = None,
        binary: Path = BINARY,
    ) -> None:
        """With `config`, that configuration as it is (the receiver arguments are then unused)."""
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run scripts/build-tools alertmanager (make test does)")
        folder.mkdir(parents=True, exist_ok=True)
        http_config: dict[str, Any] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
        if ca_file is not None:
            http_config["tls_config"] = {"ca_file": str(ca_file)}
        config = config or {
            "route": {
                "receiver": "kprof",
                "group_by": ["alertname", "namespace", "pod"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": repeat_interval,
            },
            "receivers": [
                {
                    "name": "kprof",
                    "webhook_configs": [{"url": receiver_url, "send_resolved": True, "http_config": http_config}],
                }
            ],
        }
        config_file = folder / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "alertmanager.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={config_file}",
                    f"--storage.path={folder / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"alertmanager not ready within {START_TIMEOUT}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- last lines of {self.log} ---\n" + "\n".join(text[-lines:])

    def post_alerts(self, *alerts: Mapping[str, Any]) -> None:
        """`POST /api/v2/alerts`, as Prometheus sends them."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.read()

    def fire(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None) -> None:
        self.post_alerts({"labels": dict(labels), "annotations": dict(annotations or {})})

    def resolve(self, labels: Mapping[str, str]) -> None:
        """The same alert, ended now: Alertmanager sends it as resolved."""
        ended = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.post_alerts({"labels": dict(labels), "endsAt": ended})

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as response:
            return json.loads(response.read())

    def webhook_deliveries(self) -> tuple[float, float]:
        """(notifications sent, failed) by its webhook integration, from its own /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        sent = failed = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("integration") != "webhook":
                    continue
                if sample.name == "alertmanager_notifications_total":
                    sent += sample.value
                elif sample.name == "alertmanager_notifications_failed_total":
                    failed += sample.value
        return sent, failed

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="module")
def start_alertmanager() -> Iterator[Callable[..., Alertmanager]]:
    """`start_alertmanager(folder, receiver_url, token_file, ...)`: an Alertmanager, stopped at the
    end of the module with every other one it started."""
    started: list[Alertmanager] = []

    def start(*args: Any, **options: Any) -> Alertmanager:
        manager = Alertmanager(*args, **options)
        started.append(manager)
        return manager

    try:
        yield start
    finally:
        for manager in started:
            manager.stop()
