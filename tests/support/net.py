"""Loopback networking helpers for the test suite: finding a free TCP port on 127.0.0.1 for
servers that must be given a port up front rather than binding port 0 themselves."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process could take it in between;
    prefer letting a server bind port 0 and report its port when it can.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
