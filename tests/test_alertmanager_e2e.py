"""A real Alertmanager (v0.31.1, tests.support.alertmanager) delivering to kprof's webhook receiver.

First the receiver alone, in this process: Alertmanager delivers over HTTPS with the bearer token
from a file, repeats the firing group, sends the resolution; one with a wrong token is refused.

Then the whole way: `kprof run` with the Helm chart's ServiceAccount and RBAC against the real
control plane, its receiver on HTTPS, pods backed by the real Go sample app, profiles into moto's
S3. An alert fired through Alertmanager's API names one opted-in pod: that pod is captured with
reason `alert`, the alert's name in the object metadata and in the Event, within seconds although
the config's checks are an hour apart (the delivery wakes the check). Alertmanager delivers the same
fingerprint again: nothing more is captured. Deliveries without the token (401) and malformed
ones (400), sent before the alert and naming the other opted-in pod, change nothing: the woken
check captures only the alert's pod.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kprof_lib.runtimes.endpoints import Address
from kprof_lib.runtimes.operator import alertreceiver
from kprof_lib.runtimes.operator.alertstore import AlertStore
from tests.operator_support import (
    OperatorProcess,
    allow_s3,
    aws_environment,
    create_config,
    delete_config,
    events_about,
    history_of,
    metric_value,
    s3_config,
    wait_until,
)
from tests.support import pki
from tests.support.alertmanager import Alertmanager
from tests.support.goapp import GoApp

REPO = Path(__file__).resolve().parent.parent
TOKEN = "kprof-alerts-test-token"
ALERT_NAME = "KprofCheckoutLatency"


@dataclass
class Tls:
    authority: pki.Authority
    pair: pki.Pair

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.authority.cert))


def make_tls(folder: Path) -> Tls:
    authority = pki.Authority(folder, "alerts")
    return Tls(authority, authority.issue("receiver", "kprof-alerts", server=True))


def token_file(folder: Path, token: str = TOKEN) -> Path:
    path = folder / f"token-{uuid.uuid4().hex[:6]}"
    path.write_text(token + "\n")
    return path


# The receiver alone ------------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path) -> Iterator[tuple[AlertStore, list[int], str, Tls]]:
    """The receiver on HTTPS in this process: its store, the wake-ups, its URL, its certificates."""
    tls = make_tls(tmp_path)
    store = AlertStore()
    wakes: list[int] = []
    route = alertreceiver.AlertReceiver(
        store, alertreceiver.TokenFile(str(token_file(tmp_path))), on_firing=lambda: wakes.append(1)
    )
    server = alertreceiver.serve(
        Address("127.0.0.1", 0), route, alertreceiver.tls_context(str(tls.pair.cert), str(tls.pair.key))
    )
    server.start()
    try:
        yield store, wakes, f"https://127.0.0.1:{server.address.port}{alertreceiver.PATH}", tls
    finally:
        server.stop()


def test_alertmanager_delivers_over_https_repeats_and_resolves(receiver, start_alertmanager, tmp_path):
    store, wakes, url, tls = receiver
    manager = start_alertmanager(tmp_path / "am", url, token_file(tmp_path), ca_file=tls.authority.cert)
    try:
        _delivers_repeats_and_resolves(store, wakes, manager)
    finally:
        manager.stop()


def _delivers_repeats_and_resolves(store: AlertStore, wakes: list[int], manager: Alertmanager) -> None:
    labels = {"alertname": ALERT_NAME, "namespace": "shop", "pod": "api-1", "severity": "page"}
    manager.fire(labels, {"summary": "p99 over 2 s"})
    [held] = wait_until(store.firing, 30, lambda: f"no alert reached the receiver\n{manager.tail()}")
    [fired] = manager.alerts()
    assert held == {
        "fingerprint": fired["fingerprint"],
        "alertname": ALERT_NAME,
        "namespace": "shop",
        "pod": "api-1",
        "startsAt": held["startsAt"],
    }
    assert held["startsAt"][:16] == fired["startsAt"][:16] and held["startsAt"].endswith("Z")
    # The group is delivered again every repeat_interval: the same fingerprint, held once.
    wait_until(lambda: len(wakes) >= 3, 30, lambda: f"no repeated delivery\n{manager.tail()}")
    assert len(store.firing()) == 1
    manager.resolve(labels)
    wait_until(lambda: store.firing() == [], 30, lambda: f"the resolution never arrived\n{manager.tail()}")
    sent, failed = manager.webhook_deliveries()
    assert sent >= 4 and failed == 0


def test_alertmanager_with_a_wrong_token_is_refused(receiver, start_alertmanager, tmp_path):
    store, wakes, url, tls = receiver
    manager = start_alertmanager(
        tmp_path / "am", url, token_file(tmp_path, "not-the-token"), ca_file=tls.authority.cert
    )
    try:
        manager.fire({"alertname": ALERT_NAME, "namespace": "shop", "pod": "api-1"})
        wait_until(lambda: manager.webhook_deliveries()[1] >= 1, 30, lambda: f"no failed delivery\n{manager.tail()}")
    finally:
        manager.stop()
    assert store.firing() == [] and wakes == []
    log = manager.log.read_text()
    assert "401" in log and "unauthorized: wrong bearer token" in log


def test_the_receiver_config_of_the_docs_is_accepted_by_alertmanager_and_delivers(
    receiver, start_alertmanager, tmp_path
):
    """docs/ALERTS.md's Alertmanager configuration, with this test's URL, token file and CA."""
    store, _, url, tls = receiver
    text = (REPO / "docs" / "ALERTS.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "webhook_configs" in b]
    config = yaml.safe_load(block)
    [kprof] = [r for r in config["receivers"] if r["name"] == "kprof"]
    [webhook] = kprof["webhook_configs"]
    assert webhook["url"].endswith(alertreceiver.PATH)
    webhook["url"] = url
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file(tmp_path))
    webhook["http_config"]["tls_config"] = {"ca_file": str(tls.authority.cert)}  # commented out in the docs
    config["route"]["routes"][0]["group_wait"] = "1s"  # Alertmanager's default is 30 s
    manager = start_alertmanager(tmp_path / "am", url, tmp_path / "unused", config=config)
    try:
        manager.fire({"alertname": "Quiet", "namespace": "shop", "pod": "api-2", "severity": "info"})
        manager.fire({"alertname": ALERT_NAME, "namespace": "shop", "pod": "api-1", "severity": "page"})
        wait_until(store.firing, 30, lambda: f"nothing delivered\n{manager.tail()}")
        time.sleep(2)  # a group_wait more: the route's matchers keep the info alert away
        assert [a["alertname"] for a in store.firing()] == [ALERT_NAME]
    finally:
        manager.stop()


# The whole way -----------------------------------------------------------------------------------


@dataclass
class AlertRun:
    namespace: str
    bucket: str
    prefix: str
    fingerprint: str
    operator_log: list[dict[str, Any]]
    unauthorized: list[tuple[int, str]]
    malformed: tuple[int, str]
    first_objects: list[dict[str, Any]]
    seconds_to_capture: float
    objects_after_repeats: list[dict[str, Any]]
    events: list[Any]
    history: dict[str, Any]
    metrics_text: str
    held_after_resolve: float
    deliveries: tuple[float, float]


def post(url: str, tls: Tls, body: bytes, token: str | None) -> tuple[int, str]:
    host, port = url.removeprefix("https://").split("/", 1)[0].split(":")
    connection = http.client.HTTPSConnection(host, int(port), timeout=10, context=tls.client())
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request("POST", alertreceiver.PATH, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def notification(namespace: str, *alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "receiver": "kprof",
            "status": "firing",
            "alerts": list(alerts),
            "groupLabels": {},
            "commonLabels": {"namespace": namespace},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example",
            "version": "4",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
        }
    ).encode()


def firing(namespace: str, pod: str, fingerprint: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": ALERT_NAME, "namespace": namespace, "pod": pod},
        "annotations": {},
        "startsAt": "2026-12-02T06:13:55Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


def profiles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["key"].endswith(".pprof")]


def indexes(log: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [index for index, record in enumerate(log) if predicate(record)]


@pytest.fixture(scope="module")
def alert_run(
    control_plane, kprof_release, sample_app_binary, s3_server, start_alertmanager, tmp_path_factory
) -> Iterator[AlertRun]:
    tmp = tmp_path_factory.mktemp("alerts-e2e")
    plane = control_plane
    namespace = plane.new_namespace("alerts")
    s3_server.up()
    bucket = s3_server.new_bucket("kprof-alerts")
    tag = uuid.uuid4().hex[:6]
    config = f"on-alert-{tag}"
    tls = make_tls(tmp)
    secret = token_file(tmp)
    with GoApp(sample_app_binary) as app:
        # Some CPU time of its own: metrics-server drops a container whose CPU counter is zero.
        app.load(cpu_seconds=0.3, workers=1, wait=True)
        for pod in ("api-1", "api-2"):
            # Requests far above the app's use: no threshold can fire, only the alert.
            plane.run_pod(
                namespace,
                pod,
                port=app.port,
                pid=app.pid,
                labels={"app": "api"},
                annotations={"profiling.io/enabled": "true", "profiling.io/port": str(app.port)},
                requests={"cpu": "64", "memory": "64Gi"},
            )
        plane.wait_for_metrics_api()
        create_config(
            plane,
            config,
            namespace,
            {
                "selector": {"namespace": namespace, "labelSelector": {"matchLabels": {"app": "api"}}},
                # An hour between checks: a capture within seconds of the alert is the woken check.
                "thresholds": {"checkIntervalSeconds": 3600},
                "triggers": {"alerts": {"enabled": True}},
                "profileTypes": ["heap"],
                "s3Config": s3_config(s3_server, bucket, tag),
            },
        )
        kubeconfig = plane.token_kubeconfig(kprof_release.namespace, kprof_release.service_account, tmp / "sa")
        operator = OperatorProcess(
            kubeconfig,
            tmp / "operator",
            env=aws_environment(tmp),
            name="alerts operator",
            args=[
                "--namespace",
                kprof_release.namespace,
                "--lease-name",
                f"lease-{tag}",
                *allow_s3(s3_server, bucket),
                "--alerts-addr",
                "127.0.0.1:0",
                "--alerts-token-file",
                str(secret),
                "--alerts-tls-cert-file",
                str(tls.pair.cert),
                "--alerts-tls-key-file",
                str(tls.pair.key),
            ],
        )
        try:
            yield _alert_run(
                plane,
                operator,
                kprof_release.namespace,
                namespace,
                bucket,
                tag,
                config,
                tls,
                secret,
                s3_server,
                lambda *args, **options: start_alertmanager(tmp / "alertmanager", *args, **options),
            )
        finally:
            operator.close()
            delete_config(plane, config, namespace)


def _alert_run(
    plane, operator, operator_namespace, namespace, bucket, tag, config, tls, secret, s3, start_alertmanager
) -> AlertRun:
    operator.wait_ready()
    key = f"{namespace}/{config}"
    operator.wait_for_log(
        lambda r: r.get("action") == "check" and r.get("config") == key, 60, "the first check of the config"
    )
    url = operator.address("alerts").replace("http://", "https://") + alertreceiver.PATH
    # Sent before the alert, naming the other opted-in pod: refused, so they must change nothing.
    other = notification(namespace, firing(namespace, "api-2", "0000feedc0ffee00"))
    unauthorized = [post(url, tls, other, None), post(url, tls, other, "not-the-token")]
    bad = copy.deepcopy(json.loads(other))
    bad["alerts"].append({**firing(namespace, "api-2", "0000feedc0ffee01"), "startsAt": "soon"})
    malformed = post(url, tls, json.dumps(bad).encode(), TOKEN)

    manager: Alertmanager = start_alertmanager(url, secret, ca_file=tls.authority.cert)
    labels = {"alertname": ALERT_NAME, "namespace": namespace, "pod": "api-1", "severity": "page"}
    fired_at = time.monotonic()
    manager.fire(labels, {"summary": "checkout p99 over 2 s"})
    first = wait_until(
        lambda: profiles(s3.objects(bucket, f"{tag}/")),
        60,
        lambda: f"no capture after the alert:\n{operator.output()}\n{manager.tail()}",
    )
    seconds_to_capture = time.monotonic() - fired_at
    [fired] = manager.alerts()

    def delivered_then_checked() -> bool:
        # A second delivery of the fingerprint accepted after the first capture, and the check it
        # woke finished after it.
        log = list(operator.logs)
        captured_at = indexes(log, lambda r: r.get("action") == "stored")[0]
        accepted = indexes(log, lambda r: r.get("action") == "alert" and r.get("reason") == "accepted")
        later = [i for i in accepted if i > captured_at and log[i].get("renewed") == 1]
        done = indexes(log, lambda r: r.get("action") == "check" and r.get("config") == key)
        return bool(later) and any(i > later[0] for i in done)

    wait_until(delivered_then_checked, 60, lambda: f"no second delivery and check:\n{operator.output()}")
    objects_after_repeats = profiles(s3.objects(bucket, f"{tag}/"))
    api = plane.api()
    events = [e for e in events_about(api, namespace, "api-1") if e.reason == "ProfileCaptured" and tag in e.message]
    history = history_of(plane, operator_namespace, key)
    manager.resolve(labels)
    operator.wait_for_log(
        lambda r: r.get("action") == "alert" and r.get("resolved") == 1, 30, "the resolution of the alert"
    )
    metrics_text = operator.get("metrics", "/metrics")[1]
    return AlertRun(
        namespace=namespace,
        bucket=bucket,
        prefix=tag,
        fingerprint=fired["fingerprint"],
        operator_log=list(operator.logs),
        unauthorized=unauthorized,
        malformed=malformed,
        first_objects=first,
        seconds_to_capture=seconds_to_capture,
        objects_after_repeats=objects_after_repeats,
        events=events,
        history=history,
        metrics_text=metrics_text,
        held_after_resolve=metric_value(metrics_text, "kprof_alerts_held"),
        deliveries=manager.webhook_deliveries(),
    )


def test_the_alerts_pod_is_captured_with_reason_alert_and_its_name_in_the_metadata(alert_run):
    [obj] = alert_run.first_objects
    assert obj["key"].startswith(f"{alert_run.prefix}/{alert_run.namespace}/api-1/")
    assert obj["key"].endswith("/heap.pprof")
    assert obj["metadata"]["reason"] == "alert"
    assert obj["metadata"]["alert"] == ALERT_NAME
    assert obj["metadata"]["pod"] == "api-1"


def test_the_delivery_wakes_the_check_at_once(alert_run):
    # The config checks once an hour; Alertmanager waits group_wait (1 s) before its first delivery.
    print(f"ALERT-TO-CAPTURE {alert_run.seconds_to_capture:.1f} s (alert posted to Alertmanager -> profile in S3)")
    assert alert_run.seconds_to_capture < 30, alert_run.seconds_to_capture
    log = alert_run.operator_log
    wake = indexes(log, lambda r: r.get("action") == "wake")
    stored = indexes(log, lambda r: r.get("action") == "stored")
    assert wake and stored and wake[0] < stored[0]


def test_the_event_names_the_alert(alert_run):
    [event] = alert_run.events
    assert f"alert ({ALERT_NAME})" in event.message, event.message


def test_a_second_delivery_of_the_same_fingerprint_captures_nothing(alert_run):
    assert alert_run.objects_after_repeats == alert_run.first_objects
    served = alert_run.history[f"{alert_run.namespace}/api-1"]
    assert served["alertFingerprints"] == [alert_run.fingerprint]
    sent, failed = alert_run.deliveries
    assert sent >= 3 and failed == 0


def test_deliveries_without_the_token_get_401_and_malformed_ones_400_and_change_nothing(alert_run):
    assert [status for status, _ in alert_run.unauthorized] == [401, 401]
    assert "no bearer token" in alert_run.unauthorized[0][1]
    assert "wrong bearer token" in alert_run.unauthorized[1][1]
    status, message = alert_run.malformed
    assert status == 400 and "alerts[1].startsAt: 'soon' is not an RFC 3339 timestamp" in message
    # The woken check ran after them and captured the alert's pod only; api-2 has no history.
    assert all("/api-2/" not in o["key"] for o in alert_run.objects_after_repeats)
    assert f"{alert_run.namespace}/api-2" not in alert_run.history
    text = alert_run.metrics_text
    assert metric_value(text, "kprof_alert_notifications_total", result="unauthorized") == 2
    assert metric_value(text, "kprof_alert_notifications_total", result="bad-request") == 1


def test_a_resolved_alert_is_forgotten(alert_run):
    assert alert_run.held_after_resolve == 0
    accepted = metric_value(alert_run.metrics_text, "kprof_alert_notifications_total", result="accepted")
    assert accepted >= 3
