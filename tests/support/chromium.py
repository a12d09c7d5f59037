"""Debian's headless Chromium as a real browser for tests: renders a page from a file:// URL after
its scripts ran and returns the DOM (`dump_dom`) or writes a PNG (`screenshot`). Each call uses a
fresh profile folder and is wrapped in a timeout; the flags keep it off the network (no sync,
component updates, background fetches or QUIC). scripts/install-chromium installs it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "run scripts/install-chromium (or: apt-get install -y chromium)"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def executable() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError(f"chromium is not on PATH; {INSTALL_HINT}")
    return found


def _run(url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="kprof-chromium-") as profile:
        command = [executable(), *FLAGS, f"--user-data-dir={profile}", *extra, url]
        # The outer timeout(1) also ends Chromium's helper processes if it hangs.
        return subprocess.run(
            ["timeout", "--kill-after=5", str(int(timeout)), *command],
            capture_output=True,
            text=True,
            timeout=timeout + 15,
            check=False,
        )


def dump_dom(path: Path, *, width: int = 1280, height: int = 900, timeout: float = 60) -> str:
    """The page's DOM after its scripts ran, serialised."""
    done = _run(
        path.resolve().as_uri(),
        [f"--window-size={width},{height}", "--virtual-time-budget=5000", "--dump-dom"],
        timeout,
    )
    if done.returncode != 0 or "<html" not in done.stdout:
        raise RuntimeError(f"chromium --dump-dom failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def screenshot(path: Path, png: Path, *, width: int = 1280, height: int = 900, timeout: float = 60) -> Path:
    done = _run(
        path.resolve().as_uri(),
        [f"--window-size={width},{height}", "--virtual-time-budget=5000", f"--screenshot={png}"],
        timeout,
    )
    if done.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium --screenshot failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return png
