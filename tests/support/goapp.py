"""The Go sample app (examples/sample-app) as a real pprof target for tests: builds the binary
once into <repo>/.cache/sample-app, runs instances on 127.0.0.1 with a free port, drives their
/load and /stats endpoints, and offers pytest fixtures (`sample_app_binary`, `go_app`,
`go_app_factory`) that stop every instance they start. Capture, runtime and end-to-end tests
use it whenever they need a live net/http/pprof server."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP_DIR = REPO_ROOT / "examples" / "sample-app"
CACHE_DIR = REPO_ROOT / ".cache"
BINARY_CACHE_DIR = CACHE_DIR / "sample-app"
GO_CACHE_DIR = CACHE_DIR / "go"

GO_INSTALL_HINT = "run scripts/install-go (or: apt-get install -y golang-go)"
BUILD_TIMEOUT_SECONDS = 300
STARTUP_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
LISTENING_PREFIX = "listening on "

_build_lock = threading.Lock()
_built_binary: Path | None = None
_pprof_built = False


class GoToolchainMissingError(RuntimeError):
    """Raised when the `go` command is needed but is not on PATH."""


class GoAppError(RuntimeError):
    """Raised when the sample app fails to build, start or answer."""


def go_executable() -> str:
    """Path of the `go` command, or GoToolchainMissingError naming how to install it."""
    found = shutil.which("go")
    if found is None:
        raise GoToolchainMissingError(f"the Go toolchain is not on PATH; {GO_INSTALL_HINT}")
    return found


def go_environment() -> dict[str, str]:
    """Environment for running `go build` / `go tool pprof` offline. GOPATH is inside the repo; the
    build cache is Go's own under $HOME (unless GOCACHE says otherwise), which a fresh clone finds
    warm: the standard library and `go tool pprof` (built from GOROOT on first use) take minutes
    to compile on a busy two-core machine, and the first profile read would time out."""
    env = dict(os.environ)
    env.update(
        {
            "GOPATH": str(GO_CACHE_DIR / "path"),
            "GOPROXY": "off",
            "GOSUMDB": "off",
            "GOFLAGS": "-mod=mod",
            "GOTOOLCHAIN": "local",
            "GOTELEMETRY": "off",
            # A static binary needs no C compiler and behaves the same on every machine.
            "CGO_ENABLED": "0",
        }
    )
    return env


def run_go_tool_pprof(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `go tool pprof ARGS` (e.g. "-top", "heap.pb.gz") and return the finished process; the
    tool is built first if need be, within the build's timeout rather than this call's."""
    global _pprof_built
    with _build_lock:
        if not _pprof_built:
            subprocess.run(
                [go_executable(), "tool", "-n", "pprof"],
                env=go_environment(),
                capture_output=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=True,
            )
            _pprof_built = True
    return subprocess.run(
        [go_executable(), "tool", "pprof", *args],
        env=go_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _source_digest(go: str) -> str:
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod"):
        digest.update(name.encode())
        digest.update((SAMPLE_APP_DIR / name).read_bytes())
    # A different toolchain must not reuse a binary built by another one.
    version = subprocess.run(
        [go, "version"],
        env=go_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    digest.update(version.stdout.encode())
    return digest.hexdigest()[:16]


def build_sample_app() -> Path:
    """Build examples/sample-app once per source version and return the binary's path.

    Safe to call from several threads and pytest processes at once: builds are serialised by a
    lock file and the binary appears under its final name only when complete.
    """
    global _built_binary
    with _build_lock:
        if _built_binary is not None and _built_binary.exists():
            return _built_binary
        go = go_executable()
        BINARY_CACHE_DIR.mkdir(parents=True, exist_ok=True)
        binary = BINARY_CACHE_DIR / f"sample-app-{_source_digest(go)}"
        with open(BINARY_CACHE_DIR / ".build.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                if not binary.exists():
                    _compile(go, binary)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        _built_binary = binary
        return binary


def _compile(go: str, binary: Path) -> None:
    partial = binary.with_name(f".{binary.name}.{os.getpid()}.partial")
    try:
        result = subprocess.run(
            [go, "build", "-trimpath", "-o", str(partial), "."],
            cwd=SAMPLE_APP_DIR,
            env=go_environment(),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise GoAppError(f"go build of {SAMPLE_APP_DIR} failed:\n{result.stdout}{result.stderr}")
        os.replace(partial, binary)
    finally:
        partial.unlink(missing_ok=True)
    # Binaries of older sources are never used again; a running one survives being unlinked.
    for stale in BINARY_CACHE_DIR.glob("sample-app-*"):
        if stale != binary:
            stale.unlink(missing_ok=True)


class GoApp:
    """One running sample-app process listening on 127.0.0.1 with a port it chose itself.

    It is started by the constructor and stopped by stop() or by leaving a `with` block.
    """

    def __init__(
        self,
        binary: Path | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.binary = binary if binary is not None else build_sample_app()
        self.port: int = 0
        self.url: str = ""
        self._stdout_lines: collections.deque[str] = collections.deque(maxlen=500)
        self._stderr_lines: collections.deque[str] = collections.deque(maxlen=500)
        self._listening = threading.Event()
        self._stopped = False
        # It stays in pytest's process group, so a test run that is killed takes it down too.
        self.process = subprocess.Popen(
            [str(self.binary), "-addr", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.pid: int = self.process.pid
        self._readers = [
            threading.Thread(target=self._read_stdout, name=f"goapp-{self.pid}-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"goapp-{self.pid}-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            self._wait_until_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self._stdout_lines.append(line)
            if not self._listening.is_set() and line.startswith(LISTENING_PREFIX):
                address = line[len(LISTENING_PREFIX) :].strip()
                host, port = address.rsplit(":", 1)
                self.port = int(port)
                # The address it reports: loopback, or one of a network namespace (tests.support.netns).
                host = host.strip("[]")
                self.url = f"http://{'127.0.0.1' if host in ('', '::', '0.0.0.0') else host}:{self.port}"
                self._listening.set()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr_lines.append(line.rstrip("\n"))

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None:
                raise GoAppError(f"sample app exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise GoAppError(f"sample app did not report its address within {timeout}s:\n{self.output()}")
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz", timeout=1.0) == b"ok":
                    return
            except (OSError, urllib.error.URLError) as error:
                last_error = error
            time.sleep(0.05)
        raise GoAppError(f"sample app at {self.url} not healthy within {timeout}s ({last_error}):\n{self.output()}")

    def output(self) -> str:
        """What the process has printed so far (stdout, then stderr), for failure messages."""
        return "\n".join([*self._stdout_lines, *self._stderr_lines])

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Ask the app to shut down (SIGTERM), kill it if it has not within timeout; exit code."""
        if not self._stopped:
            self._stopped = True
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            for reader in self._readers:
                reader.join(timeout)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        return self.process.returncode

    def __enter__(self) -> GoApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"GoApp(pid={self.pid}, url={self.url!r})"

    # -- HTTP ------------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        """Body of GET <url><path>; HTTP errors raise urllib.error.HTTPError."""
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return response.read()

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        return json.loads(self.get(path, timeout=timeout))

    def pprof(self, name: str, timeout: float | None = None, **query: object) -> bytes:
        """Fetch /debug/pprof/<name>?<query>, e.g. pprof("profile", seconds=1)."""
        path = f"/debug/pprof/{name}"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        if timeout is None:
            timeout = 30.0 + float(query.get("seconds", 0))  # type: ignore[arg-type]
        return self.get(path, timeout=timeout)

    def serving_cpu_profile(self) -> bool:
        """Whether a /debug/pprof/profile request is being answered right now, as the app's own
        goroutine dump shows: the handler sleeps for the profile's seconds inside pprof.Profile."""
        return b"net/http/pprof.Profile(" in self.pprof("goroutine", debug=2, timeout=10.0)

    def load(
        self,
        cpu_seconds: float,
        workers: int | None = None,
        mem_mib: int = 0,
        hold: float | None = None,
        *,
        sites: int = 0,
        wait: bool = False,
    ) -> dict[str, Any]:
        """Start a load via /load and return the app's JSON description of it. `sites`: that many
        small allocations, each from a call stack of its own (a heap profile of that many samples).

        With wait=True the call returns only when the load has finished.
        """
        query: dict[str, object] = {"cpu": cpu_seconds, "mem": mem_mib}
        if sites:
            query["sites"] = sites
        if workers is not None:
            query["workers"] = workers
        if hold is not None:
            query["hold"] = hold
        if wait:
            query["wait"] = 1
        timeout = 30.0 + (cpu_seconds + (hold if hold is not None else cpu_seconds) if wait else 0)
        return self.get_json("/load?" + urllib.parse.urlencode(query), timeout=timeout)

    def stats(self) -> dict[str, Any]:
        """The app's /stats: pid, goroutines, heapAllocBytes, loadActive (count of running loads),
        leakedBytes and leakedGoroutines (what /leak has taken)."""
        return self.get_json("/stats", timeout=10.0)

    def leak(
        self, *, mem_mib_per_second: float = 0, goroutines_per_second: float = 0, seconds: float = 600
    ) -> dict[str, Any]:
        """Start a leak via /leak: memory that climbs and goroutines that never end, at these rates."""
        query = {
            "memMiBPerSecond": mem_mib_per_second,
            "goroutinesPerSecond": goroutines_per_second,
            "seconds": seconds,
        }
        return self.get_json("/leak?" + urllib.parse.urlencode(query), timeout=10.0)

    def stop_leak(self) -> dict[str, Any]:
        """End the leak and let go of everything it took."""
        return self.get_json("/leak?stop=1", timeout=10.0)

    def resident_bytes(self) -> int:
        """The process's resident memory (VmRSS) now, as the node agent and the sidecar read it."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise GoAppError(f"/proc/{self.pid}/status has no VmRSS")


class GoAppFactory:
    """Starts GoApp instances on demand and stops all of them on close()."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.apps: list[GoApp] = []

    def __call__(self, **kwargs: Any) -> GoApp:
        app = GoApp(self.binary, **kwargs)
        self.apps.append(app)
        return app

    def start_many(self, count: int, **kwargs: Any) -> list[GoApp]:
        return [self(**kwargs) for _ in range(count)]

    def close(self) -> None:
        for app in self.apps:
            app.stop()


@pytest.fixture(scope="session")
def sample_app_binary() -> Path:
    """Path of the built sample-app binary (built once per source version)."""
    return build_sample_app()


@pytest.fixture
def go_app(sample_app_binary: Path) -> Iterator[GoApp]:
    """A running sample app, stopped after the test."""
    with GoApp(sample_app_binary) as app:
        yield app


@pytest.fixture
def go_app_factory(sample_app_binary: Path) -> Iterator[GoAppFactory]:
    """A GoAppFactory: call it for each extra app (or start_many(n)); all are stopped after."""
    factory = GoAppFactory(sample_app_binary)
    try:
        yield factory
    finally:
        factory.close()
