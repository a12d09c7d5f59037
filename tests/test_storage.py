"""Tests of the profile stores: S3Store against moto's S3 server over HTTP with real boto3 (layouts,
metadata, tags, encryption, errors), the spool through an S3 outage and a restart, and LocalStore's
layouts, atomic writes and refusal of escaping keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.s3 import S3Store
from kprof_lib.adapters.spool import SpoolFull, SpoolingStore
from kprof_lib.execution import keys
from kprof_lib.execution.ports import PPROF_CONTENT_TYPE, StoredObject, StoreError
from tests.support.s3server import S3Server

CAPTURED = dt.datetime(2026, 11, 25, 10, 0, 0, 250_000, tzinfo=dt.UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# What reconcile puts in a capture entry, as far as storing is concerned.
CAPTURE = {
    "namespace": "shop",
    "pod": "web-7d9c-abcde",
    "service": "web",
    "reason": "cpu-threshold",
    "labels": {"app": "web", "tier": "backend", "pod-template-hash": "7d9c"},
}


def profile_bytes(seed: int, size: int = 4096) -> bytes:
    """Deterministic, distinct bytes standing in for a gzipped pprof profile."""
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def profile_object(
    *,
    layout: str = "pod",
    template: str | None = None,
    prefix: str = "profiles",
    profile_type: str = "heap",
    captured_at: dt.datetime = CAPTURED,
    capture: Mapping[str, Any] = CAPTURE,
) -> tuple[str, dict[str, str], dict[str, str]]:
    """Key, metadata and tags for one profile, built as the executor builds them."""
    key = keys.object_key(
        layout=layout,
        template=template,
        prefix=prefix,
        namespace=capture["namespace"],
        pod=capture["pod"],
        service=capture["service"],
        profile_type=profile_type,
        reason=capture["reason"],
        captured_at=captured_at,
    )
    metadata = keys.object_metadata(
        namespace=capture["namespace"],
        pod=capture["pod"],
        service=capture["service"],
        reason=capture["reason"],
        profile_type=profile_type,
        captured_at=captured_at,
        trace_id=TRACE_ID,
    )
    tags, _ = keys.object_tags(capture["labels"])
    return key, metadata, tags


def s3_store(s3: S3Server, bucket: str, **options: Any) -> S3Store:
    # Short retries and timeouts: outages in these tests are connection refusals on loopback.
    options = {"max_attempts": 2, "connect_timeout": 2, "read_timeout": 10, **options}
    return S3Store(bucket, endpoint=s3.endpoint_url, **options)


# -- S3Store against moto ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "template", "expected_key"),
    [
        ("pod", None, "profiles/shop/web-7d9c-abcde/20261125T100000.250Z/heap.pprof"),
        ("service-date", None, "profiles/2026-11-25/web/shop/web-7d9c-abcde/20261125T100000.250Z-heap.pprof"),
        (
            None,
            "{prefix}/{reason}/{namespace}/{pod}-{timestamp}.{type}.pprof",
            "profiles/cpu-threshold/shop/web-7d9c-abcde-20261125T100000.250Z.heap.pprof",
        ),
    ],
    ids=["pod", "service-date", "template"],
)
def test_profiles_land_in_s3_with_key_metadata_tags_and_type(
    s3: S3Server, s3_bucket: str, layout: str | None, template: str | None, expected_key: str
) -> None:
    key, metadata, tags = profile_object(layout=layout or "pod", template=template)
    data = profile_bytes(1)

    stored = s3_store(s3, s3_bucket, prefix="profiles").put(
        key, data, metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE
    )

    assert stored == StoredObject(
        uri=f"s3://{s3_bucket}/{expected_key}", key=expected_key, size=len(data), attempts=1, spooled=False
    )
    [found] = s3.objects(s3_bucket)
    assert found == {
        "key": expected_key,
        "size": len(data),
        "metadata": {
            "namespace": "shop",
            "pod": "web-7d9c-abcde",
            "service": "web",
            "reason": "cpu-threshold",
            "profile-type": "heap",
            "captured-at": "2026-11-25T10:00:00.250Z",
            "trace-id": TRACE_ID,
        },
        "tags": {"app": "web", "pod-template-hash": "7d9c", "tier": "backend"},
        "content_type": PPROF_CONTENT_TYPE,
    }
    assert s3.body(s3_bucket, expected_key) == data


def test_many_labels_become_ten_tags_and_the_rest_are_reported(s3: S3Server, s3_bucket: str) -> None:
    labels = {f"team.example.com/label-{i:02d}": f"value {i}: a/b@c+d=e" for i in range(13)}
    labels["notes"] = "x" * 300  # longer than S3 allows
    labels["example.com/" + "k" * 130] = "v"  # key longer than S3 allows
    capture = {**CAPTURE, "labels": labels}
    key, metadata, tags = profile_object(capture=capture)
    _, dropped = keys.object_tags(labels)

    s3_store(s3, s3_bucket).put(key, b"profile", metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE)

    [found] = s3.objects(s3_bucket)
    assert found["tags"] == {f"team.example.com/label-{i:02d}": f"value {i}: a/b@c+d=e" for i in range(10)}
    assert len(dropped) == 5
    assert "notes: value longer than 256 characters" in dropped
    assert any(entry.endswith("key longer than 128 characters") for entry in dropped)
    assert sum(entry.endswith("more than 10 labels") for entry in dropped) == 3


def test_tags_the_backend_refuses_are_dropped_and_the_profile_kept(
    s3: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A caller that skipped object_tags: S3 answers InvalidTag, the store keeps the profile anyway.
    with caplog.at_level(logging.WARNING, logger="kprof_lib.adapters.s3"):
        stored = s3_store(s3, s3_bucket).put(
            "p/heap.pprof", b"data", metadata={"pod": "p"}, tags={"k" * 129: "v"}, content_type=PPROF_CONTENT_TYPE
        )
    assert stored.size == 4
    [found] = s3.objects(s3_bucket)
    assert found["tags"] == {} and found["metadata"] == {"pod": "p"}
    assert "refused the tags of p/heap.pprof (InvalidTag)" in caplog.text


def test_custom_endpoint_uses_path_style_addressing(s3: S3Server) -> None:
    # Dotted bucket names cannot work virtual-hosted without wildcard TLS and DNS.
    bucket = "kprof.dotted." + os.urandom(4).hex()
    s3.client().create_bucket(Bucket=bucket)
    store = s3_store(s3, bucket)
    assert store.client.meta.config.s3 == {"addressing_style": "path"}
    assert store.description == f"s3://{bucket}"

    store.put("a/b.pprof", b"x", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)

    assert [obj["key"] for obj in s3.objects(bucket)] == ["a/b.pprof"]


@pytest.mark.parametrize(
    ("sse", "kms_key_id"),
    [("AES256", None), ("aws:kms", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")],
)
def test_server_side_encryption_is_requested(s3: S3Server, s3_bucket: str, sse: str, kms_key_id: str | None) -> None:
    s3_store(s3, s3_bucket, sse=sse, kms_key_id=kms_key_id).put(
        "k.pprof", b"x", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE
    )
    head = s3.client().head_object(Bucket=s3_bucket, Key="k.pprof")
    assert head["ServerSideEncryption"] == sse
    assert head.get("SSEKMSKeyId") == kms_key_id


def test_invalid_encryption_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of AES256, aws:kms"):
        S3Store("bucket", sse="rot13")
    with pytest.raises(ValueError, match="needs serverSideEncryption aws:kms"):
        S3Store("bucket", sse="AES256", kms_key_id="key")


def test_missing_bucket_is_a_permanent_error_with_a_clear_message(s3: S3Server) -> None:
    store = s3_store(s3, "no-such-bucket")
    with pytest.raises(StoreError) as raised:
        store.put("k.pprof", b"x", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert raised.value.retryable is False
    assert str(raised.value) == (
        f"storing k.pprof in s3://no-such-bucket at {s3.endpoint_url}: the bucket does not exist "
        "(NoSuchBucket: The specified bucket does not exist)"
    )
    with pytest.raises(StoreError, match=r"s3://no-such-bucket .*: the bucket does not exist") as checked:
        store.check()
    assert checked.value.retryable is False


def test_check_passes_for_an_existing_bucket(s3: S3Server, s3_bucket: str) -> None:
    s3_store(s3, s3_bucket).check()


def test_unreachable_endpoint_is_retryable(s3: S3Server, s3_bucket: str) -> None:
    store = s3_store(s3, s3_bucket)
    s3.down()
    with pytest.raises(StoreError, match="cannot reach the store after 2 attempts") as raised:
        store.put("k.pprof", b"x", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert raised.value.retryable is True
    assert raised.value.attempts == 2


class _ErrorS3(ThreadingHTTPServer):
    """Answers every request with one S3 error document, as S3 does when throttling or refusing."""

    daemon_threads = True

    def __init__(self, status: int, code: str) -> None:
        super().__init__(("127.0.0.1", 0), _ErrorHandler)
        self.status, self.code = status, code
        self.methods: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


class _ErrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ErrorS3

    def _answer(self) -> None:
        self.server.methods.append(self.command)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{self.server.code}</Code>'
            f"<Message>refused by the test server</Message></Error>"
        ).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_PUT = do_GET = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def error_s3(request: pytest.FixtureRequest) -> Iterator[_ErrorS3]:
    server = _ErrorS3(*request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(
    ("error_s3", "retryable", "message"),
    [
        ((503, "SlowDown"), True, "the store is overloaded or failing (SlowDown: refused by the test server)"),
        ((500, "InternalError"), True, "the store is overloaded or failing (InternalError"),
        ((403, "AccessDenied"), False, "access denied: the role or credentials lack s3:PutObject"),
        ((400, "InvalidArgument"), False, "the store refused an argument of the request"),
    ],
    indirect=["error_s3"],
    ids=["throttled", "5xx", "access-denied", "bad-request"],
)
def test_error_answers_are_classified(error_s3: _ErrorS3, retryable: bool, message: str) -> None:
    store = S3Store("bucket", endpoint=error_s3.url, max_attempts=2, connect_timeout=2, read_timeout=5)
    with pytest.raises(StoreError) as raised:
        store.put("k.pprof", b"profile", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert message in str(raised.value)
    assert raised.value.retryable is retryable
    # botocore's standard mode retries what may pass, and the attempts are reported.
    expected_attempts = 2 if retryable else 1
    assert raised.value.attempts == expected_attempts
    assert error_s3.methods == ["PUT"] * expected_attempts


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("error_s3", [(403, "AccessDenied")], indirect=True)
def test_check_explains_access_denied(error_s3: _ErrorS3) -> None:
    store = S3Store("bucket", endpoint=error_s3.url, max_attempts=1)
    with pytest.raises(StoreError, match=r"access denied; the credentials from the default chain \(IRSA role"):
        store.check()


# -- SpoolingStore through an S3 outage ------------------------------------------------------------


def spool_files(spool_dir: Path) -> list[str]:
    return sorted(path.name for path in spool_dir.iterdir())


def test_outage_spools_every_profile_and_flush_uploads_them_identically(
    s3: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    spool = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool")
    profiles = []
    for index, profile_type in enumerate(("cpu", "heap", "goroutine")):
        key, metadata, tags = profile_object(profile_type=profile_type)
        profiles.append((key, profile_bytes(index, 10_000 + index), metadata, tags))

    s3.down()
    for key, data, metadata, tags in profiles:
        stored = spool.put(key, data, metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE)
        assert stored == StoredObject(uri=f"s3://{s3_bucket}/{key}", key=key, size=len(data), attempts=2, spooled=True)
    assert spool.pending_count == 3
    assert spool.pending_bytes > sum(len(data) for _, data, _, _ in profiles)

    still_down = spool.flush()
    assert (still_down.uploaded, still_down.failed, still_down.remaining_count) == (0, 1, 3)
    assert "cannot reach the store" in still_down.errors[0]

    s3.up()
    assert s3.objects(s3_bucket) == [], "nothing reached S3 during the outage"
    report = spool.flush()

    assert (report.uploaded, report.failed, report.remaining_bytes, report.remaining_count) == (3, 0, 0, 0)
    assert spool.pending_bytes == 0 and spool.pending_count == 0
    assert spool_files(tmp_path / "spool") == []
    found = {obj["key"]: obj for obj in s3.objects(s3_bucket)}
    for key, data, metadata, tags in profiles:
        assert s3.body(s3_bucket, key) == data
        assert found[key]["metadata"] == metadata
        assert found[key]["tags"] == tags
        assert found[key]["content_type"] == PPROF_CONTENT_TYPE


def test_healthy_store_is_written_directly(s3: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    spool = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool")
    stored = spool.put("k.pprof", b"data", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert stored.spooled is False
    assert spool.pending_count == 0 and spool_files(tmp_path / "spool") == []
    assert s3.body(s3_bucket, "k.pprof") == b"data"
    assert spool.description == f"s3://{s3_bucket}"


def test_full_spool_refuses_with_a_clear_message(s3: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    spool = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool", max_bytes=12_000)
    s3.down()
    first = spool.put("a/cpu.pprof", profile_bytes(1, 8_000), metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert first.spooled
    used = spool.pending_bytes

    with pytest.raises(SpoolFull) as raised:
        spool.put("b/heap.pprof", profile_bytes(2, 8_000), metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)

    message = str(raised.value)
    assert message.startswith(
        f"profile spool {tmp_path / 'spool'} is full: {used} of 12000 bytes used by 1 profile(s) waiting for "
        f"s3://{s3_bucket}; b/heap.pprof (8000 bytes) was NOT stored (storing b/heap.pprof in s3://{s3_bucket}"
    )
    assert isinstance(raised.value, StoreError)
    assert spool.pending_count == 1 and spool.pending_bytes == used

    with pytest.raises(SpoolFull, match="was NOT stored"):
        SpoolingStore(spool.inner, tmp_path / "other", max_bytes=100).put(
            "c.pprof", b"x" * 200, metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE
        )


class _RecordingStore:
    """Passes puts on to a real store and notes their keys, to see the order of a flush."""

    def __init__(self, inner: S3Store) -> None:
        self.inner = inner
        self.description = inner.description
        self.bucket = inner.bucket
        self.keys: list[str] = []

    def uri_for(self, key: str) -> str:
        return self.inner.uri_for(key)

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        self.keys.append(key)
        return self.inner.put(key, data, metadata=metadata, tags=tags, content_type=content_type)


def test_spool_survives_a_restart_and_flushes_oldest_first(s3: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    before = SpoolingStore(s3_store(s3, s3_bucket), spool_dir)
    s3.down()
    for index in range(2):
        before.put(
            f"before/{index}.pprof",
            profile_bytes(index),
            metadata={"n": str(index)},
            tags={"t": "1"},
            content_type=PPROF_CONTENT_TYPE,
        )
    pending_bytes = before.pending_bytes

    recorder = _RecordingStore(s3_store(s3, s3_bucket))
    after = SpoolingStore(recorder, spool_dir)
    assert (after.pending_count, after.pending_bytes) == (2, pending_bytes)
    after.put("after/0.pprof", profile_bytes(9), metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert len(spool_files(spool_dir)) == 3, "the sequence goes on after the restart"

    s3.up()
    recorder.keys.clear()
    report = after.flush()

    assert report.uploaded == 3 and report.remaining_count == 0
    assert recorder.keys == ["before/0.pprof", "before/1.pprof", "after/0.pprof"]
    assert s3.body(s3_bucket, "before/1.pprof") == profile_bytes(1)
    assert s3.objects(s3_bucket, "before/0")[0]["metadata"] == {"n": "0"}
    assert spool_files(spool_dir) == []


def test_two_spools_given_one_folder_do_not_overwrite_each_other(s3: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    first = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool")
    second = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool")
    s3.down()
    first.put("first.pprof", b"1", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    second.put("second.pprof", b"2", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert len(spool_files(tmp_path / "spool")) == 2

    s3.up()
    restarted = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool")
    assert restarted.flush().uploaded == 2
    assert [s3.body(s3_bucket, key) for key in ("first.pprof", "second.pprof")] == [b"1", b"2"]


def test_permanent_failure_is_spooled_and_loud_until_fixed(
    s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = "kprof-not-created-yet"
    spool = SpoolingStore(s3_store(s3, bucket), tmp_path / "spool")
    with caplog.at_level(logging.ERROR, logger="kprof_lib.adapters.spool"):
        stored = spool.put("k.pprof", b"profile", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
        assert stored.spooled and stored.uri == f"s3://{bucket}/k.pprof"
        assert "refused k.pprof permanently" in caplog.text
        caplog.clear()

        report = spool.flush()
        assert (report.uploaded, report.failed, report.remaining_count) == (0, 1, 1)
        assert "the bucket does not exist" in report.errors[0]
        assert f"1 spooled profile(s) cannot be uploaded to s3://{bucket}" in caplog.text

    s3.client().create_bucket(Bucket=bucket)
    assert spool.flush().uploaded == 1
    assert s3.body(bucket, "k.pprof") == b"profile"


def test_concurrent_puts_during_an_outage_are_all_kept(s3: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    spool = SpoolingStore(s3_store(s3, s3_bucket), tmp_path / "spool")
    s3.down()
    results: list[StoredObject] = []
    failures: list[BaseException] = []

    def capture(worker: int) -> None:
        try:
            for round_ in range(3):
                key = f"w{worker}/{round_}.pprof"
                results.append(
                    spool.put(
                        key, profile_bytes(worker * 10 + round_), metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE
                    )
                )
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=capture, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures and not any(thread.is_alive() for thread in threads)
    assert len(results) == 24 and all(result.spooled for result in results)
    assert spool.pending_count == 24 == len(spool_files(tmp_path / "spool"))

    s3.up()
    assert spool.flush().uploaded == 24
    assert len(s3.objects(s3_bucket)) == 24
    assert s3.body(s3_bucket, "w7/2.pprof") == profile_bytes(72)


def test_unreadable_spool_file_is_moved_aside(
    s3: S3Server, s3_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "000000000001-0badc0de.spool").write_bytes(b"not a header\nbytes")
    (spool_dir / ".000000000002.spool.abc.tmp").write_bytes(b"left by a crash")
    spool = SpoolingStore(s3_store(s3, s3_bucket), spool_dir)
    assert spool.pending_count == 1

    with caplog.at_level(logging.ERROR, logger="kprof_lib.adapters.spool"):
        report = spool.flush()

    assert (report.uploaded, report.remaining_count, report.remaining_bytes) == (0, 0, 0)
    assert spool_files(spool_dir) == ["000000000001-0badc0de.spool.corrupt"]
    assert "is unreadable" in caplog.text


# -- LocalStore ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["pod", "service-date"])
def test_local_store_uses_the_same_layouts(tmp_path: Path, layout: str) -> None:
    store = LocalStore(tmp_path / "profiles")
    key, metadata, tags = profile_object(layout=layout)
    data = profile_bytes(5)

    stored = store.put(key, data, metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE)

    path = tmp_path / "profiles" / key
    assert stored == StoredObject(uri=path.as_uri(), key=key, size=len(data))
    assert stored.uri.startswith("file:///")
    assert path.read_bytes() == data
    assert json.loads(path.with_name(path.name + ".json").read_text()) == {
        "key": key,
        "contentType": PPROF_CONTENT_TYPE,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "metadata": metadata,
        "tags": tags,
    }
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".json"], "no temp files"
    assert store.description == str(tmp_path / "profiles")


def test_local_store_never_overwrites_a_stored_profile(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k.pprof", b"first", metadata={"pod": "a"}, tags={}, content_type=PPROF_CONTENT_TYPE)

    with pytest.raises(StoreError, match=r"storing k.pprof in .*k.pprof.json exists already; not overwritten") as raised:
        store.put("k.pprof", b"second", metadata={"pod": "b"}, tags={}, content_type=PPROF_CONTENT_TYPE)

    assert raised.value.retryable is False
    assert (tmp_path / "k.pprof").read_bytes() == b"first"
    assert json.loads((tmp_path / "k.pprof.json").read_text())["metadata"] == {"pod": "a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pprof", "k.pprof.json"], "no temporary file left"


def test_local_store_clash_with_only_the_profile_left_keeps_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "k.pprof").write_bytes(b"older, without its sidecar")

    with pytest.raises(StoreError, match=r"k\.pprof exists already"):
        store.put("k.pprof", b"new", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)

    assert (tmp_path / "k.pprof").read_bytes() == b"older, without its sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pprof"], "the new sidecar was taken back"


def test_local_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "a" / "k.pprof").mkdir(parents=True)  # the target is taken by a directory
    with pytest.raises(StoreError, match=r"storing a/k.pprof in .*k.pprof exists already") as raised:
        store.put("a/k.pprof", b"data", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert raised.value.retryable is False
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["k.pprof"], "no sidecar or temp file left"


@pytest.mark.parametrize(
    "bad_key",
    [
        "../outside.pprof",
        "/etc/kprof.pprof",
        "a/../../outside.pprof",
        "a//b.pprof",
        "./a.pprof",
        "",
        "a\\..\\b",
        "a/b.pprof.json",
    ],
)
def test_local_store_refuses_keys_that_escape(tmp_path: Path, bad_key: str) -> None:
    store = LocalStore(tmp_path / "profiles")
    with pytest.raises(StoreError, match="refusing key") as raised:
        store.put(bad_key, b"x", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert raised.value.retryable is False
    assert not list(tmp_path.rglob("*.pprof"))


def test_local_store_refuses_a_symlink_out_of_its_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "shop").symlink_to(outside)
    store = LocalStore(tmp_path / "profiles")
    with pytest.raises(StoreError, match="outside"):
        store.put("shop/web/heap.pprof", b"x", metadata={}, tags={}, content_type=PPROF_CONTENT_TYPE)
    assert list(outside.iterdir()) == []
