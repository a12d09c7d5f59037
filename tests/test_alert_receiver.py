"""The Alertmanager receiver's parts on their own: the version-4 payload read and checked, the label
mapping to the cluster state's `alerts`, the bounded store with expiry, and the receiver over real
HTTP(S) on loopback (bearer token, size bound, the answers that change nothing), the scheduler's
`run_now` that wakes a config's check, and the `kprof run` flags. The real Alertmanager delivering
to a real operator is tests/test_alertmanager_e2e.py."""

from __future__ import annotations

import copy
import datetime as dt
import http.client
import json
import re
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml

from kprof_lib import validate_spec
from kprof_lib.adapters import alertmanager
from kprof_lib.adapters.alertmanager import Alert, LabelMapping, Notification, PayloadError
from kprof_lib.runtimes.endpoints import Address
from kprof_lib.runtimes.operator import alertreceiver
from kprof_lib.runtimes.operator.alertstore import AlertStore, StoreFull
from kprof_lib.runtimes.operator.app import takes_alerts
from kprof_lib.runtimes.operator.monitoring import Instruments
from tests.operator_support import kprof_command, metric_value
from tests.support import pki

# A notification exactly as Alertmanager v0.31.1 sent it (captured from the real binary).
DELIVERED = {
    "receiver": "kprof",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "namespace": "shop", "pod": "api-1"},
            "annotations": {"summary": "slow"},
            "startsAt": "2026-12-02T06:13:55.445986112Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "55dfb90e5b4d1bc2",
        }
    ],
    "groupLabels": {"alertname": "HighLatency", "namespace": "shop", "pod": "api-1"},
    "commonLabels": {"alertname": "HighLatency", "namespace": "shop", "pod": "api-1"},
    "commonAnnotations": {"summary": "slow"},
    "externalURL": "http://vm:19093",
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency", namespace="shop", pod="api-1"}',
    "truncatedAlerts": 0,
}
TOKEN = "s3cr3t-token-for-tests"


def payload(*alerts: dict, **top) -> bytes:
    document = copy.deepcopy(DELIVERED)
    if alerts:
        document["alerts"] = list(alerts)
    document.update(top)
    return json.dumps(document).encode()


def alert(fingerprint: str = "f1", status: str = "firing", **labels: str) -> dict:
    return {
        "status": status,
        "labels": {"alertname": "HighLatency", "namespace": "shop", **labels},
        "annotations": {},
        "startsAt": "2026-12-02T06:13:55Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


# The payload ------------------------------------------------------------------------------------


def test_a_delivered_notification_becomes_one_alert_of_the_cluster_state():
    notification = alertmanager.parse(payload(), LabelMapping())
    assert notification == Notification(
        firing=(Alert("55dfb90e5b4d1bc2", "HighLatency", "shop", "2026-12-02T06:13:55Z", pod="api-1"),),
        resolved=(),
        ignored=(),
    )
    assert [a.to_state() for a in notification.firing] == [
        {
            "fingerprint": "55dfb90e5b4d1bc2",
            "alertname": "HighLatency",
            "namespace": "shop",
            "startsAt": "2026-12-02T06:13:55Z",
            "pod": "api-1",
        }
    ]


def _without(key: str) -> dict:
    document = copy.deepcopy(DELIVERED)
    del document[key]
    return document


def _alert_without(key: str) -> dict:
    one = alert()
    del one[key]
    return one


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "(body): is not JSON"),
        (b"\xff\xfe", "(body): is not UTF-8 text"),
        (b"[]", "(body): must be a JSON object"),
        (json.dumps(_without("version")).encode(), 'version: must be "4" (the webhook payload version), missing'),
        (payload(version="3"), 'version: must be "4" (the webhook payload version), not "3"'),
        (payload(version=4), 'version: must be "4" (the webhook payload version), not 4'),
        (payload(status="pending"), 'status: must be "firing" or "resolved", not "pending"'),
        (json.dumps(_without("alerts")).encode(), "alerts: is required: a list of alerts"),
        (payload(alerts={"a": 1}), "alerts: is required: a list of alerts"),
        (payload(groupLabels={"a": 1}), "groupLabels: must map strings to strings"),
        (payload(receiver=7), "receiver: must be a string"),
        (payload(truncatedAlerts=-1), "truncatedAlerts: must be a whole number, 0 or more"),
        (payload("x"), "alerts[0]: must be an object"),
        (
            payload({**alert(), "status": "silenced"}),
            'alerts[0].status: must be "firing" or "resolved", not "silenced"',
        ),
        (payload(_alert_without("labels")), "alerts[0].labels: is required: a map of strings to strings"),
        (payload({**alert(), "labels": {"pod": 1}}), "alerts[0].labels: is required: a map of strings to strings"),
        (payload({**alert(), "annotations": []}), "alerts[0].annotations: must map strings to strings"),
        (payload(_alert_without("fingerprint")), "alerts[0].fingerprint: is required: a non-empty string"),
        (payload({**alert(), "fingerprint": " "}), "alerts[0].fingerprint: is required: a non-empty string"),
        (payload({**alert(), "fingerprint": "f" * 129}), "alerts[0].fingerprint: is longer than 128 characters"),
        (payload(_alert_without("startsAt")), "alerts[0].startsAt: is required"),
        (payload({**alert(), "startsAt": "soon"}), "alerts[0].startsAt: 'soon' is not an RFC 3339 timestamp"),
        (payload({**alert(), "endsAt": "2026-12-02"}), "alerts[0].endsAt: '2026-12-02' is not an RFC 3339"),
        (payload({**alert(), "generatorURL": 3}), "alerts[0].generatorURL: must be a string"),
    ],
)
def test_a_bad_payload_is_refused_naming_the_field(body, expected):
    with pytest.raises(PayloadError) as raised:
        alertmanager.parse(body, LabelMapping())
    assert expected in str(raised.value)


def test_every_problem_is_named_at_once_and_one_bad_alert_refuses_the_whole_delivery():
    good, bad = alert("good", pod="api-1"), {**alert("bad"), "startsAt": "soon", "status": "maybe"}
    with pytest.raises(PayloadError) as raised:
        alertmanager.parse(payload(good, bad, version="5"), LabelMapping())
    assert [p["path"] for p in raised.value.problems] == ["version", "alerts[1].status", "alerts[1].startsAt"]


@pytest.mark.parametrize(
    ("mapping", "labels", "expected"),
    [
        # The pod named wins over the workload labels: they would widen it to its siblings.
        (LabelMapping(match_labels=(("service", "app"),)), {"pod": "api-1", "service": "api"}, {"pod": "api-1"}),
        (LabelMapping(match_labels=(("service", "app"),)), {"service": "api"}, {"matchLabels": {"app": "api"}}),
        (
            LabelMapping(namespace="kubernetes_namespace", pod="kubernetes_pod_name"),
            {"kubernetes_namespace": "prod", "kubernetes_pod_name": "api-7", "namespace": "shop"},
            {"pod": "api-7", "namespace": "prod"},
        ),
        (
            LabelMapping(match_labels=(("service", "app.kubernetes.io/name"), ("tier", "tier"))),
            {"service": "api", "tier": "web"},
            {"matchLabels": {"app.kubernetes.io/name": "api", "tier": "web"}},
        ),
    ],
)
def test_the_label_mapping_names_the_pods(mapping, labels, expected):
    one = alert("f1")
    one["labels"] = {"alertname": "HighLatency", "namespace": "shop", **labels}
    [state] = [a.to_state() for a in alertmanager.parse(payload(one), mapping).firing]
    assert {k: v for k, v in state.items() if k in ("pod", "matchLabels", "namespace")} == {
        "namespace": "shop",
        **expected,
    }


@pytest.mark.parametrize(
    ("labels", "mapping", "why"),
    [
        ({"namespace": "shop"}, LabelMapping(), "names no pod: no pod label 'pod'"),
        ({"namespace": "shop"}, LabelMapping(match_labels=(("svc", "app"),)), "no pod label 'pod' and none of 'svc'"),
        ({"pod": "api-1"}, LabelMapping(), "no namespace label 'namespace'"),
        ({"namespace": "shop", "pod": "api-1", "alertname": ""}, LabelMapping(), "no 'alertname' label"),
        (
            {"namespace": "shop", "pod": "api-1", "alertname": "A" * 257},
            LabelMapping(),
            "longer than 256 characters",
        ),
    ],
)
def test_a_firing_alert_that_names_no_pod_is_ignored_with_the_reason(labels, mapping, why):
    one = alert("f1")
    one["labels"] = {"alertname": "HighLatency", **labels}
    notification = alertmanager.parse(payload(one, alert("f2", pod="api-2")), mapping)
    assert [a.fingerprint for a in notification.firing] == ["f2"]
    [ignored] = notification.ignored
    assert ignored.startswith("alerts[0]") and why in ignored


def test_resolved_alerts_trigger_nothing_and_are_named_by_fingerprint():
    notification = alertmanager.parse(
        payload(alert("gone", status="resolved", pod="api-1"), alert("still", pod="api-2"), status="firing"),
        LabelMapping(),
    )
    assert notification.resolved == ("gone",)
    assert [a.fingerprint for a in notification.firing] == ["still"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("service=app.kubernetes.io/name", ("service", "app.kubernetes.io/name")), ("app", ("app", "app"))],
)
def test_a_match_label_flag_value(text, expected):
    assert alertmanager.parse_match_label(text) == expected


@pytest.mark.parametrize("text", ["=app", "service=", ""])
def test_a_bad_match_label_flag_value_says_the_form(text):
    with pytest.raises(ValueError, match="is not ALERT_LABEL=POD_LABEL"):
        alertmanager.parse_match_label(text)


def test_the_profilingconfig_of_the_docs_takes_alerts():
    text = (Path(__file__).resolve().parent.parent / "docs" / "ALERTS.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: ProfilingConfig" in b]
    spec = yaml.safe_load(block)["spec"]
    assert validate_spec(spec).triggers.alerts and takes_alerts(spec)


def test_which_specs_take_alerts():
    assert takes_alerts({"triggers": {"alerts": {"enabled": True}}})
    assert not takes_alerts({"triggers": {"alerts": {"enabled": False}}})
    assert not takes_alerts({"triggers": {"alerts": {}}})
    assert not takes_alerts({"thresholds": {}})
    assert not takes_alerts(None)


# The store --------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.seconds, dt.UTC)

    def monotonic(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.seconds += seconds


def notification(*firing: str, resolved: tuple[str, ...] = ()) -> Notification:
    alerts = tuple(Alert(f, "HighLatency", "shop", "2026-12-02T06:13:55Z", pod=f"pod-{f}") for f in firing)
    return Notification(alerts, resolved, ())


def fingerprints(store: AlertStore) -> list[str]:
    return [entry["fingerprint"] for entry in store.firing()]


def test_the_store_keeps_firing_alerts_until_they_expire_and_a_delivery_renews_them():
    clock = FakeClock()
    store = AlertStore(max_alerts=10, expiry_seconds=60, clock=clock)
    assert store.keep(notification("a", "b")).added == 2
    clock.sleep(40)
    kept = store.keep(notification("a", "c"))
    assert (kept.added, kept.renewed, kept.resolved) == (1, 1, 0)
    clock.sleep(30)  # b is 70 s old, a and c 30 s
    assert fingerprints(store) == ["a", "c"]
    clock.sleep(30)
    assert fingerprints(store) == [] and len(store) == 0


def test_a_resolved_alert_is_forgotten_at_once():
    store = AlertStore(clock=FakeClock())
    store.keep(notification("a", "b"))
    kept = store.keep(notification(resolved=("a", "unknown")))
    assert kept.resolved == 1
    assert fingerprints(store) == ["b"]


def test_a_full_store_keeps_the_oldest_and_refuses_the_whole_delivery():
    clock = FakeClock()
    store = AlertStore(max_alerts=3, expiry_seconds=60, clock=clock)
    store.keep(notification("a", "b"))
    with pytest.raises(StoreFull, match="2 new alert"):
        store.keep(notification("a", "c", "d"))
    assert fingerprints(store) == ["a", "b"]
    # Renewals and resolutions make room within the same delivery; expired ones make room too.
    store.keep(notification("a", "c", "d", resolved=("b",)))
    assert fingerprints(store) == ["a", "c", "d"]
    clock.sleep(61)
    store.keep(notification("e", "f", "g"))
    assert fingerprints(store) == ["e", "f", "g"]


# The receiver over HTTP -------------------------------------------------------------------------


class Receiver:
    """The receiver served on 127.0.0.1 (HTTPS with `tls`), its store and the wake-ups it asked."""

    def __init__(
        self,
        folder: Path,
        *,
        tls: ssl.SSLContext | None = None,
        max_alerts: int = 100,
        timeout: float = alertreceiver.REQUEST_TIMEOUT_SECONDS,
        **options,
    ):
        self.token_file = folder / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.store = AlertStore(max_alerts=max_alerts)
        self.wakes = 0
        self.instruments = Instruments()
        route = alertreceiver.AlertReceiver(
            self.store,
            alertreceiver.TokenFile(str(self.token_file)),
            on_firing=self._woken,
            instruments=self.instruments,
            **options,
        )
        self.server = alertreceiver.serve(Address("127.0.0.1", 0), route, tls, timeout)
        self.server.start()
        self.port = self.server.address.port

    def _woken(self) -> None:
        self.wakes += 1

    def post(self, body: bytes, token: str | None = TOKEN, *, scheme: str = "Bearer", path: str = alertreceiver.PATH):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"{scheme} {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(), dict(response.getheaders())
        finally:
            connection.close()

    def count(self, result: str) -> float:
        return metric_value(self.instruments.exposition().decode(), "kprof_alert_notifications_total", result=result)


@pytest.fixture
def receiver(tmp_path):
    served = Receiver(tmp_path)
    yield served
    served.server.stop()


def test_a_delivery_with_the_token_is_kept_and_wakes_the_checks(receiver):
    status, body, _ = receiver.post(payload())
    assert (status, body) == (200, "accepted: 1 new, 0 again, 0 resolved, 0 ignored\n")
    assert [a["fingerprint"] for a in receiver.store.firing()] == ["55dfb90e5b4d1bc2"]
    assert receiver.wakes == 1
    # Delivered again (Alertmanager's repeat_interval): renewed, and reconcile looks again.
    assert receiver.post(payload())[:2] == (200, "accepted: 0 new, 1 again, 0 resolved, 0 ignored\n")
    assert receiver.wakes == 2 and receiver.count("accepted") == 2


def test_a_resolved_delivery_forgets_the_alert_and_wakes_nothing(receiver):
    receiver.post(payload())
    resolved = {**DELIVERED["alerts"][0], "status": "resolved", "endsAt": "2026-12-02T06:20:00Z"}
    status, body, _ = receiver.post(payload(resolved, status="resolved"))
    assert (status, body) == (200, "accepted: 0 new, 0 again, 1 resolved, 0 ignored\n")
    assert receiver.store.firing() == [] and receiver.wakes == 1


@pytest.mark.parametrize(
    ("token", "scheme", "why"),
    [
        (None, "Bearer", "no bearer token"),
        ("wrong", "Bearer", "wrong bearer token"),
        (TOKEN + "x", "Bearer", "wrong bearer token"),
        (TOKEN, "Basic", "no bearer token"),
        ("", "Bearer", "wrong bearer token"),
    ],
)
def test_without_the_right_bearer_token_401_and_nothing_changes(receiver, token, scheme, why):
    status, body, headers = receiver.post(payload(), token, scheme=scheme)
    assert status == 401 and why in body
    assert headers["WWW-Authenticate"] == 'Bearer realm="kprof"'
    assert receiver.store.firing() == [] and receiver.wakes == 0
    assert receiver.count("unauthorized") == 1


def test_the_scheme_is_case_insensitive(receiver):
    assert receiver.post(payload(), TOKEN, scheme="bearer")[0] == 200


def test_a_malformed_payload_gets_400_naming_the_field_and_nothing_changes(receiver):
    good = alert("good", pod="api-2")
    status, body, _ = receiver.post(payload(good, {**alert("bad", pod="api-3"), "startsAt": "soon"}))
    assert status == 400
    assert body == (
        "not an Alertmanager webhook notification (version 4): "
        "alerts[1].startsAt: 'soon' is not an RFC 3339 timestamp\n"
    )
    assert receiver.store.firing() == [] and receiver.wakes == 0
    assert receiver.count("bad-request") == 1


def test_alerts_that_name_no_pod_are_ignored_and_the_others_kept(receiver):
    no_pod = alert("no-pod")
    status, body, _ = receiver.post(payload(no_pod, alert("ok", pod="api-1")))
    assert (status, body) == (200, "accepted: 1 new, 0 again, 0 resolved, 1 ignored\n")
    assert [a["fingerprint"] for a in receiver.store.firing()] == ["ok"]


def test_only_ignored_alerts_wake_nothing(receiver):
    assert receiver.post(payload(alert("no-pod")))[:2] == (200, "accepted: 0 new, 0 again, 0 resolved, 1 ignored\n")
    assert receiver.wakes == 0


def test_a_body_over_the_bound_is_refused_unread(tmp_path):
    small = Receiver(tmp_path, max_body_bytes=200)
    try:
        status, body, headers = small.post(payload())
        assert status == 413 and "is over 200 bytes" in body
        assert headers["Connection"] == "close"  # the unread body cannot be taken for a request
        assert small.store.firing() == [] and small.count("too-large") == 1
    finally:
        small.server.stop()


def test_a_standby_replica_refuses_with_503_and_closes_so_the_retry_reaches_another(tmp_path):
    standby = Receiver(tmp_path, standing_by=lambda: True)
    try:
        status, body, headers = standby.post(payload())
        assert (status, body) == (503, "standing by: not the leader; another replica takes alerts\n")
        assert headers["Connection"] == "close" and headers["Retry-After"] == "1"
        assert standby.store.firing() == [] and standby.wakes == 0 and standby.count("standing-by") == 1
        assert standby.post(payload(), "wrong")[0] == 401, "the token is checked first"
    finally:
        standby.server.stop()


def test_a_full_store_answers_503_so_alertmanager_retries(tmp_path):
    full = Receiver(tmp_path, max_alerts=1)
    try:
        assert full.post(payload(alert("a", pod="p1")))[0] == 200
        status, body, headers = full.post(payload(alert("b", pod="p2")))
        assert status == 503 and "do not fit: 1 of at most 1 held" in body
        assert headers["Retry-After"] == "60"
        assert [a["fingerprint"] for a in full.store.firing()] == ["a"] and full.wakes == 1
    finally:
        full.server.stop()


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_without_a_content_length_411(receiver):
    body = payload()
    request = (
        (
            f"POST {alertreceiver.PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len(body):x}\r\n"
        ).encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = raw_request(receiver.port, request)
    assert answer.startswith(b"HTTP/1.1 411 ") and b"a Content-Length is required" in answer
    assert receiver.store.firing() == []


def test_other_paths_and_methods(receiver):
    assert receiver.post(payload(), path="/webhook")[0] == 404
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    connection.request("GET", alertreceiver.PATH)
    response = connection.getresponse()
    assert (response.status, response.getheader("Allow")) == (405, "POST")
    connection.close()


def test_requests_on_one_connection_keep_working_after_a_refusal(receiver):
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        connection.request("POST", alertreceiver.PATH, body=payload(), headers={"Authorization": "Bearer no"})
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 401 and refused.getheader("Connection") == "close"
        connection.close()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(2):  # a read body leaves the connection open for the next request
            connection.request("POST", alertreceiver.PATH, body=payload(), headers=headers)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200 and answer.getheader("Connection") is None
    finally:
        connection.close()


def test_a_rotated_token_file_takes_effect_without_a_restart(receiver):
    receiver.token_file.write_text("the-new-token\n")
    assert receiver.post(payload(), TOKEN)[0] == 401
    assert receiver.post(payload(), "the-new-token")[0] == 200
    receiver.token_file.write_text("")  # a half-written Secret: the last token read stays
    assert receiver.post(payload(), "the-new-token")[0] == 200


def test_a_token_file_that_cannot_be_read_or_is_empty_stops_the_start(tmp_path):
    with pytest.raises(ValueError, match=r"--alerts-token-file .*missing: No such file"):
        alertreceiver.TokenFile(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="the file is empty"):
        alertreceiver.TokenFile(str(tmp_path / "empty"))


def test_over_tls_with_the_certificate_given(tmp_path):
    authority = pki.Authority(tmp_path, "alerts")
    pair = authority.issue("receiver", "kprof-alerts", server=True)
    served = Receiver(tmp_path, tls=alertreceiver.tls_context(str(pair.cert), str(pair.key)))
    try:
        client = ssl.create_default_context(cafile=str(authority.cert))
        connection = http.client.HTTPSConnection("127.0.0.1", served.port, timeout=10, context=client)
        connection.request("POST", alertreceiver.PATH, body=payload(), headers={"Authorization": f"Bearer {TOKEN}"})
        assert connection.getresponse().status == 200
        connection.close()
        # Plain HTTP to the TLS port gets no answer at all, and leaves the store as it was.
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            served.post(payload(alert("plain", pod="api-9")))
        assert [a["fingerprint"] for a in served.store.firing()] == ["55dfb90e5b4d1bc2"]
    finally:
        served.server.stop()


def test_a_client_that_never_finishes_the_handshake_holds_up_nobody(tmp_path):
    authority = pki.Authority(tmp_path, "alerts")
    pair = authority.issue("receiver", "kprof-alerts", server=True)
    served = Receiver(tmp_path, tls=alertreceiver.tls_context(str(pair.cert), str(pair.key)))
    try:
        with socket.create_connection(("127.0.0.1", served.port)):  # connected, says nothing
            client = ssl.create_default_context(cafile=str(authority.cert))
            connection = http.client.HTTPSConnection("127.0.0.1", served.port, timeout=5, context=client)
            connection.request("POST", alertreceiver.PATH, body=payload(), headers={"Authorization": f"Bearer {TOKEN}"})
            assert connection.getresponse().status == 200
            connection.close()
    finally:
        served.server.stop()


def test_a_certificate_that_cannot_be_loaded_names_the_flags(tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"--alerts-tls-cert-file .*cert\.pem / --alerts-tls-key-file"):
        alertreceiver.tls_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


# Flags ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--alerts-addr", "127.0.0.1:0"], "--alerts-addr needs --alerts-token-file"),
        (["--alerts-token-file", "/t"], "--alerts-token-file given without --alerts-addr: the receiver is off"),
        (["--alerts-match-label", "svc=app"], "--alerts-match-label given without --alerts-addr"),
        (
            ["--alerts-addr", ":0", "--alerts-token-file", "/t", "--alerts-tls-cert-file", "/c"],
            "--alerts-tls-cert-file and --alerts-tls-key-file go together",
        ),
        (["--alerts-match-label", "=app"], "argument --alerts-match-label: '=app' is not ALERT_LABEL=POD_LABEL"),
        (["--alerts-addr", "nowhere"], "argument --alerts-addr: 'nowhere' is not HOST:PORT"),
        (["--alerts-max", "0"], "argument --alerts-max: must be at least 1, not 0"),
    ],
)
def test_receiver_flags_that_cannot_work_stop_kprof_run_naming_them(flags, message):
    _exits_2_saying("run", flags, message)


def test_a_node_agent_serves_no_receiver():
    flags = ["--node-name", "n1", "--alerts-addr", ":0", "--alerts-token-file", "/t"]
    _exits_2_saying("node", flags, "--alerts-addr: the Alertmanager receiver is served by the operator (kprof run)")


def _exits_2_saying(command: str, flags: list[str], message: str) -> None:
    done = subprocess.run(
        [*kprof_command(), command, "--log-format", "text", *flags], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


UNREACHABLE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "cannot start: --alerts-token-file {tmp}/token: No such file or directory"),
        ({"token": ""}, "cannot start: --alerts-token-file {tmp}/token: the file is empty"),
        (
            {"token": TOKEN, "cert.pem": "not a certificate", "key.pem": "nor a key"},
            "cannot start: --alerts-tls-cert-file {tmp}/cert.pem / --alerts-tls-key-file {tmp}/key.pem",
        ),
    ],
    ids=["no-token-file", "empty-token-file", "bad-certificate"],
)
def test_a_token_or_certificate_it_cannot_read_stops_kprof_run_with_exit_1(tmp_path, files, message):
    (tmp_path / "kubeconfig").write_text(UNREACHABLE_KUBECONFIG)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    tls = ["--alerts-tls-cert-file", str(tmp_path / "cert.pem"), "--alerts-tls-key-file", str(tmp_path / "key.pem")]
    done = subprocess.run(
        [
            *kprof_command(),
            "run",
            "--log-format",
            "text",
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--alerts-addr",
            "127.0.0.1:0",
            "--alerts-token-file",
            str(tmp_path / "token"),
            *(tls if "cert.pem" in files else []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert message.format(tmp=tmp_path) in done.stderr


def test_a_body_that_stalls_is_given_up_and_changes_nothing(tmp_path):
    served = Receiver(tmp_path, timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
            connection.sendall(
                f"POST {alertreceiver.PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                'Content-Length: 1000\r\n\r\n{"version"'.encode()
            )
            answer = b""
            while chunk := connection.recv(65536):  # the headers and the body may come apart
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ") and b"the body could not be read" in answer
        assert served.store.firing() == [] and served.count("bad-request") == 1
    finally:
        served.server.stop()
