"""The server side of RFC 6455 WebSockets, as much as pods/portforward needs: the upgrade
handshake's accept key, and a connection that reads (unmasking, reassembling fragments, answering
pings and the close handshake) and writes binary frames from several threads. Used by tunnels.py."""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from typing import BinaryIO

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000


def accept_key(client_key: str) -> str:
    """The Sec-WebSocket-Accept value answering a client's Sec-WebSocket-Key."""
    digest = hashlib.sha1((client_key.strip() + _GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (servers never mask)."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


class ConnectionClosed(Exception):
    pass


class WebSocketConnection:
    """A WebSocket over an already-upgraded socket. `reader` must be the buffered stream the HTTP
    request was read from, since it may already hold the first frames."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self._reader = reader
        self._writer = writer
        self._send_lock = threading.Lock()
        self.close_sent = False
        self.close_received = False

    def _read_exact(self, size: int) -> bytes:
        data = self._reader.read(size) if size else b""
        if len(data) < size:
            raise ConnectionClosed("connection closed in the middle of a frame")
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read_exact(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read_exact(8))
        mask = self._read_exact(4) if second & 0x80 else None
        payload = self._read_exact(size)
        if mask and payload:
            # XOR with the repeated key as one big integer: fast even for large frames.
            key = (mask * (size // 4 + 1))[:size]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        return bool(first & 0x80), first & 0x0F, payload

    def receive(self) -> tuple[int, bytes] | None:
        """The next data message as (opcode, payload); None once the peer closed or went away."""
        message = bytearray()
        message_opcode = None
        while True:
            try:
                final, opcode, payload = self._read_frame()
            except (ConnectionClosed, OSError, ValueError):
                return None
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_PONG:
                continue
            elif opcode == OP_CLOSE:
                self.close_received = True
                # Echo the close code, completing the closing handshake the peer started.
                self.close((payload[:2] and struct.unpack("!H", payload[:2])[0]) or CLOSE_NORMAL)
                return None
            else:
                if opcode != OP_CONTINUATION:
                    message_opcode = opcode
                    message = bytearray()
                message += payload
                if final and message_opcode is not None:
                    return message_opcode, bytes(message)

    def send(self, opcode: int, payload: bytes) -> bool:
        """Send one frame; False when the connection is already gone or closing."""
        frame = encode_frame(opcode, payload)
        with self._send_lock:
            if self.close_sent:
                return False
            try:
                self._writer.write(frame)
                self._writer.flush()
            except (OSError, ValueError):
                return False
            return True

    def send_binary(self, payload: bytes) -> bool:
        return self.send(OP_BINARY, payload)

    def close(self, code: int = CLOSE_NORMAL, reason: bytes = b"") -> None:
        """Send the close frame once; the peer's answering close ends `receive`."""
        with self._send_lock:
            if self.close_sent:
                return
            self.close_sent = True
            try:
                self._writer.write(encode_frame(OP_CLOSE, struct.pack("!H", code) + reason))
                self._writer.flush()
            except (OSError, ValueError):
                pass
