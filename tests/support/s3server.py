"""A moto S3 server on 127.0.0.1 that tests reach over HTTP with real boto3, plus its pytest fixtures.

Tests of the S3 profile sink and anything else that uploads use `s3` (the shared server, emptied,
with dummy AWS credentials in the environment) or `s3_bucket` (the same, plus a fresh bucket name).
`S3Server.down()` / `.up()` stage an outage: the listening socket is closed, so clients get
"connection refused" exactly as when an endpoint's process is gone, and then a new server binds the
same port. Moto keeps its S3 data in process-wide backends rather than in the server object, so
the objects stored before the outage are served again after it.
"""

from __future__ import annotations

import logging
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"

# Werkzeug logs one INFO line per request to stderr; errors still come through.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


class S3Server:
    """One moto server in a thread of this process, restartable on the port it first got."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("S3Server has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on a port the kernel picks; later restarts reuse that port."""
        if self._server is not None:
            return
        if self._port is None:
            # Port 0 lets the kernel choose, so no other process can grab a pre-picked port first.
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            self._port = server.get_host_and_port()[1]
        else:
            self._wait_until_port_is_free(self._port)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
            server.start()
        self._server = server

    def stop(self) -> None:
        """Shut the server down and close its listening socket; the stored data stays in moto."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()

    def down(self) -> None:
        """Begin an outage: new connections to the endpoint are refused."""
        self.stop()

    def up(self) -> None:
        """End an outage: serve again on the same port, with the objects stored before it."""
        self.start()

    def reset(self) -> None:
        """Delete every bucket and object (moto's reset endpoint clears all its backends)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        # A developer's http_proxy setting must not send a loopback request elsewhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            response.read()

    def client(
        self,
        *,
        max_attempts: int = 2,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
    ) -> Any:
        """A boto3 S3 client for this server with explicit dummy credentials and short retries."""
        config = Config(
            region_name=REGION,
            s3={"addressing_style": "path"},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_ACCESS_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
            config=config,
        )

    def new_bucket(self, prefix: str = "kprof-test") -> str:
        """Create a bucket whose name no other test uses and return that name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        """Every object under `prefix`, sorted by key, as {key, size, metadata, tags, content_type}."""
        client = self.client()
        found: list[dict[str, Any]] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for listed in page.get("Contents", []):
                key = listed["Key"]
                head = client.head_object(Bucket=bucket, Key=key)
                tag_set = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
                found.append(
                    {
                        "key": key,
                        "size": head["ContentLength"],
                        "metadata": head.get("Metadata", {}),
                        "tags": {tag["Key"]: tag["Value"] for tag in tag_set},
                        "content_type": head.get("ContentType"),
                    }
                )
        return sorted(found, key=lambda obj: obj["key"])

    def body(self, bucket: str, key: str) -> bytes:
        """The stored bytes of one object."""
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    @staticmethod
    def _wait_until_port_is_free(port: int, timeout: float = 10.0) -> None:
        # ThreadedMotoServer.start() waits forever if its bind fails, so make sure the bind can
        # succeed before handing over; a socket of the previous server may take a moment to close.
        deadline = time.monotonic() + timeout
        while True:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} stayed busy; the S3 server cannot come back") from None
                time.sleep(0.05)
            finally:
                probe.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The one moto S3 server of the test session; prefer `s3`, which also empties it."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and region for code that uses boto3's default chain, and nothing else.

    A developer's own profile, config file or endpoint settings must not reach the code under
    test, and nothing may try the instance metadata address.
    """
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3(s3_server: S3Server, aws_env: None) -> Iterator[S3Server]:
    """The session's S3 server, up and empty, with dummy AWS credentials in the environment."""
    s3_server.up()
    s3_server.reset()
    yield s3_server
    # A test that staged an outage must not leave it to the next one.
    s3_server.up()


@pytest.fixture
def s3_bucket(s3: S3Server) -> str:
    """The name of a freshly created, empty bucket on the `s3` server."""
    return s3.new_bucket()
