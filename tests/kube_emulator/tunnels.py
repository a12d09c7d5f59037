"""The two pod subresources that reach into a pod's network, as kube-apiserver serves them:
pods/proxy forwards an HTTP request to `{podIP}:{port}` and streams the answer back as it arrives
(status, headers, body chunks, no buffering), and pods/portforward upgrades to a WebSocket speaking
the v4.channel.k8s.io port-forward protocol and pumps bytes between it and TCP connections to the
pod. Used by the front (front.py) for `/api/v1/namespaces/{ns}/pods/{name}/proxy/...` and `.../portforward`."""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .faults import ApiError
from .websocket import WebSocketConnection, accept_key

if TYPE_CHECKING:
    from .front import Handler

PORT_FORWARD_PROTOCOL = "v4.channel.k8s.io"
# Headers that describe one hop, not the message: never forwarded in either direction.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "content-length",
}
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_CLOSE_HANDSHAKE_TIMEOUT = 2.0


def pod_ip(pod: dict[str, Any]) -> str | None:
    return ((pod.get("status") or {}).get("podIP")) or None


def split_proxy_target(segment: str) -> tuple[str, str, str]:
    """`name`, `name:port` or `scheme:name:port` → (scheme, name, port); port may be ""."""
    parts = segment.split(":")
    if len(parts) >= 3:
        return parts[0] or "http", parts[1], parts[2]
    if len(parts) == 2:
        return "http", parts[0], parts[1]
    return "http", segment, ""


def resolve_port(pod: dict[str, Any], port: str) -> int:
    """A numeric port, a named container port, or (when empty) the first declared container port."""
    containers = (pod.get("spec") or {}).get("containers") or []
    declared = [p for c in containers for p in (c.get("ports") or [])]
    if not port:
        return int(declared[0]["containerPort"]) if declared else 80
    if port.isdigit():
        return int(port)
    for entry in declared:
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise ApiError(400, f'no such port "{port}" on pod {pod["metadata"]["name"]}')


def serve_proxy(
    handler: Handler, pod: dict[str, Any], target: str, subpath: str, query: str, body: bytes
) -> None:
    scheme, name, port_text = split_proxy_target(target)
    ip = pod_ip(pod)
    if not ip:
        raise ApiError(503, f'pod "{name}" does not have a pod IP assigned yet')
    port = resolve_port(pod, port_text)
    front = handler.front
    timeout = front.proxy_timeout
    if scheme == "https":
        # Pods serve self-signed certificates; kube-apiserver does not verify them either.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(ip, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    path = "/" + quote(subpath, safe=_PATH_SAFE) + (f"?{query}" if query else "")
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
    try:
        try:
            conn.connect()
            front.track_socket(conn.sock)
            conn.request(handler.command, path, body=body or None, headers=headers)
            response = conn.getresponse()
        except OSError as exc:
            raise ApiError(503, f"error trying to reach service: dial tcp {ip}:{port}: {exc}") from None
        stream_response(handler, response)
    finally:
        if conn.sock is not None:
            front.untrack_socket(conn.sock)
        conn.close()


def stream_response(handler: Handler, response: http.client.HTTPResponse) -> None:
    handler.send_response(response.status, response.reason)
    for key, value in response.getheaders():
        if key.lower() not in HOP_BY_HOP:
            handler.send_header(key, value)
    length = response.getheader("Content-Length")
    bodyless = handler.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
    if bodyless:
        if length is not None:
            handler.send_header("Content-Length", length)
        handler.end_headers()
        return
    chunked = length is None
    handler.send_header("Transfer-Encoding" if chunked else "Content-Length", "chunked" if chunked else length)
    handler.end_headers()
    try:
        while True:
            data = response.read1(65536)
            if not data:
                break
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
    except (OSError, http.client.HTTPException):
        # The pod's answer broke off: cut ours too, so the client sees a truncated body, not a short one.
        handler.abort_connection()
        return
    if chunked:
        handler.wfile.write(b"0\r\n\r\n")


def parse_ports(values: list[str]) -> list[int]:
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or not 0 < int(part) < 65536:
                raise ApiError(400, f"invalid port {part!r}: must be between 1 and 65535")
            ports.append(int(part))
    if not ports:
        raise ApiError(400, "at least one port must be specified")
    return ports


def serve_portforward(handler: Handler, pod: dict[str, Any], ports: list[int]) -> None:
    key = handler.headers.get("Sec-WebSocket-Key")
    if (handler.headers.get("Upgrade") or "").lower() != "websocket" or not key:
        raise ApiError(400, "Upgrade request required")
    offered = [p.strip() for p in (handler.headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
    if offered and PORT_FORWARD_PROTOCOL not in offered:
        raise ApiError(
            400,
            f"unable to upgrade: unsupported subprotocols {offered}; supported: {PORT_FORWARD_PROTOCOL}",
        )
    ip = pod_ip(pod)
    if not ip:
        raise ApiError(503, f'pod "{pod["metadata"]["name"]}" does not have a pod IP assigned yet')

    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    if offered:
        handler.send_header("Sec-WebSocket-Protocol", PORT_FORWARD_PROTOCOL)
    handler.end_headers()
    handler.close_connection = True
    _PortForwardSession(handler, pod, ip, ports).run()


class _PortForwardSession:
    """One port-forward WebSocket: channel 2i carries port i's bytes, channel 2i+1 its errors, and
    the first frame on each channel names the port (2 bytes, little-endian)."""

    def __init__(self, handler: Handler, pod: dict[str, Any], ip: str, ports: list[int]) -> None:
        self._handler = handler
        self._front = handler.front
        self._pod_name = pod["metadata"]["name"]
        self._pod_uid = pod["metadata"].get("uid", "")
        self._ip = ip
        self._ports = ports
        self._ws = WebSocketConnection(handler.rfile, handler.wfile)
        self._upstreams: list[socket.socket | None] = []
        self._lock = threading.Lock()
        self._open_upstreams = 0
        self._close_timer: threading.Timer | None = None

    def run(self) -> None:
        try:
            for index, port in enumerate(self._ports):
                prefix = struct.pack("<H", port)
                self._ws.send_binary(bytes([2 * index]) + prefix)
                self._ws.send_binary(bytes([2 * index + 1]) + prefix)
            for index, port in enumerate(self._ports):
                self._upstreams.append(self._connect(index, port))
            self._open_upstreams = sum(1 for s in self._upstreams if s is not None)
            if not self._open_upstreams:
                self._finish()
            for index, upstream in enumerate(self._upstreams):
                if upstream is not None:
                    threading.Thread(
                        target=self._pump_from_pod,
                        args=(index, upstream),
                        daemon=True,
                        name=f"kube-front portforward {self._pod_name}:{self._ports[index]}",
                    ).start()
            self._pump_to_pod()
        finally:
            if self._close_timer is not None:
                self._close_timer.cancel()
            for upstream in self._upstreams:
                if upstream is not None:
                    self._front.untrack_socket(upstream)
                    cut(upstream)
                    upstream.close()
            self._ws.close()

    def _connect(self, index: int, port: int) -> socket.socket | None:
        try:
            upstream = socket.create_connection((self._ip, port), timeout=5)
        except OSError as exc:
            message = (
                f"error forwarding port {port} to pod {self._pod_name}, uid {self._pod_uid}: "
                f"dial tcp {self._ip}:{port}: {exc}"
            )
            self._ws.send_binary(bytes([2 * index + 1]) + message.encode())
            return None
        upstream.settimeout(None)
        self._front.track_socket(upstream)
        return upstream

    def _pump_to_pod(self) -> None:
        while True:
            message = self._ws.receive()
            if message is None:
                return
            _, data = message
            if not data:
                continue
            index, is_error_channel = divmod(data[0], 2)
            if is_error_channel or index >= len(self._upstreams):
                continue
            upstream = self._upstreams[index]
            if upstream is None:
                continue
            try:
                upstream.sendall(data[1:])
            except OSError:
                continue

    def _pump_from_pod(self, index: int, upstream: socket.socket) -> None:
        channel = bytes([2 * index])
        try:
            while True:
                data = upstream.recv(65536)
                if not data or not self._ws.send_binary(channel + data):
                    break
        except OSError:
            pass
        with self._lock:
            self._open_upstreams -= 1
            last = self._open_upstreams == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        """Every pod connection ended: start the closing handshake, and cut the connection if the
        client does not answer it in time."""
        self._ws.close()
        connection = self._handler.connection
        timer = threading.Timer(_CLOSE_HANDSHAKE_TIMEOUT, cut, args=(connection,))
        timer.daemon = True
        self._close_timer = timer
        timer.start()


def cut(sock: socket.socket) -> None:
    """End a connection at once, whoever is reading or writing it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
