"""A loopback HTTP server that writes exactly the bytes a test scripts, for the answers no sane
server gives: a body trickling one byte at a time, a body cut short of its Content-Length, a
chunked profile in pieces, an empty 200, a connection reset before any answer; optionally over TLS
with a throwaway self-signed certificate. The capture transport tests use it next to `bad_server`.

A script is a function `(connection, path) -> None` that writes raw bytes on the accepted socket;
the request path selects it. Every connection is closed and every thread joined by `stop()`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Script = Callable[[socket.socket, str], None]
REQUEST_READ_TIMEOUT = 10.0


class ScriptedServer:
    """Serves `scripts[path]` (path without query) on 127.0.0.1 from background threads."""

    def __init__(self, scripts: dict[str, Script], *, tls: ssl.SSLContext | None = None) -> None:
        self.scripts = scripts
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="scripted-http-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), name="scripted-http", daemon=True)
            with self._lock:
                self._connections.append(connection)
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(REQUEST_READ_TIMEOUT)
            if self._tls is not None:
                connection = self._tls.wrap_socket(connection, server_side=True)
                with self._lock:
                    self._connections.append(connection)
            head = b""
            while b"\r\n\r\n" not in head:
                data = connection.recv(4096)
                if not data:
                    return
                head += data
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            self.requests.append(target)
            path = target.split("?", 1)[0]
            script = self.scripts.get(path)
            if script is None:
                connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                script(connection, path)
        except OSError:
            pass  # the client left, or stop() cut the connection
        finally:
            with contextlib.suppress(OSError):
                connection.close()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self._listener.close()
        self._acceptor.join(timeout)
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def respond(body: bytes, *, status: str = "200 OK", headers: str = "") -> Script:
    """A script answering a whole response with Content-Length."""

    def script(connection: socket.socket, _path: str) -> None:
        connection.sendall(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{headers}\r\n".encode() + body
        )

    return script


def reset_connection(connection: socket.socket, _path: str) -> None:
    """Abort with a TCP RST before answering anything."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost valid for a day, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kprof test pod")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pod.crt", directory / "pod.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_tls_context(directory: Path) -> ssl.SSLContext:
    cert_path, key_path = self_signed_certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
