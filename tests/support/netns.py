"""A network namespace of the test's own, for the pods/proxy transport: the API server refuses to
proxy to loopback pod IPs, so the Go app runs inside a namespace reached from the root namespace
through a veth pair, at an address from the benchmarking range 198.18.0.0/15 (global unicast, used
by no real network). Traffic goes only to that namespace. Needs root (`ip netns`).
"""

from __future__ import annotations

import random
import subprocess
import uuid
from pathlib import Path

from tests.support.goapp import GoApp


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class NetworkNamespace:
    """`ip netns` NAME with a veth pair: the root side holds .1, the namespace .2 of a random /30
    inside 198.18.0.0/15 (random so that suites running at once do not collide)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"kprof-{tag}"
        self._outer, self._inner = f"kp{tag}a", f"kp{tag}b"
        block = random.randrange(1, 2**15 - 1) * 4  # a /30 of the /15, never its very first or last
        base = (198 << 24) | (18 << 16)
        self.host_ip = self._address(base + block + 1)
        self.ip = self._address(base + block + 2)
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._outer, "type", "veth", "peer", "name", self._inner)
            _ip("link", "set", self._inner, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self._outer)
            _ip("link", "set", self._outer, "up")
            _ip("-n", self.name, "addr", "add", f"{self.ip}/30", "dev", self._inner)
            _ip("-n", self.name, "link", "set", self._inner, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _address(value: int) -> str:
        return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))

    def start_app(self, binary: Path, work_dir: Path, **kwargs) -> GoApp:
        """The sample app inside the namespace, listening on its address."""
        wrapper = work_dir / f"in-{self.name}"
        # exec all the way down, so the app's pid is the one the node agent reads from /proc.
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} "{binary}" "$@"\n')
        wrapper.chmod(0o755)
        return GoApp(wrapper, args=["-addr", f"{self.ip}:0"], **kwargs)

    def close(self) -> None:
        # Deleting the namespace deletes the veth pair with it.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self._outer], capture_output=True, timeout=30)

    def __enter__(self) -> NetworkNamespace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
