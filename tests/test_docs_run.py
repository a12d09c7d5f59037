"""The code blocks of README.md and docs/ run as written. Every `sh`, `bash`, `python` and `go`
block carries a mark on the line above it:

- `<!-- docs-test: run -->`: this test runs it (shell blocks with bash -euo pipefail, Python with
  the venv's interpreter) in a folder of its own that links the repository's `examples/`,
  `schemas/`, `scripts/` and `.venv/`, and it must succeed;
- `<!-- docs-test: build -->`: a Go program, built with the installed Go;
- `<!-- docs-test: skip: REASON -->`: it cannot run here (a cluster, a cloud account, Docker,
  placeholders a reader fills in), and the reason says so.

A block without a mark fails the test, so a new block is run or explicitly left out. Two things
are rewritten before a block runs, so that the suite uses neither fixed ports nor shared paths:
`127.0.0.1:6060` becomes the test's Go sample app (or, in a block that starts its own app, a free
port; `127.0.0.1-6060` in a key follows), and `/tmp/` becomes the test's own folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.goapp import go_environment
from tests.support.net import free_port

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE_LANGUAGES = ("sh", "bash", "python", "go")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARK = re.compile(r"<!-- docs-test: (run|build|skip: (?P<reason>.+?)) -->\s*$")
LINKED = ("examples", "schemas", "scripts", ".venv", "pyproject.toml")
BLOCK_TIMEOUT = 300  # a Go build on a busy 2-core machine


@dataclass(frozen=True)
class Block:
    doc: str  # e.g. docs/LOCAL.md
    line: int  # of the opening fence
    language: str
    code: str
    mark: str | None  # run, build, skip, or None when unmarked
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            language = match.group(1)
            if language not in CODE_LANGUAGES:
                continue
            line = text.count("\n", 0, match.start()) + 1
            above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = MARK.match(above.strip())
            kind = None if mark is None else mark.group(1).split(":")[0]
            reason = (mark.group("reason") or "") if mark else ""
            found.append(Block(str(path.relative_to(REPO)), line, language, match.group(2), kind, reason.strip()))
    return found


ALL = blocks()
RUN = [block for block in ALL if block.mark in ("run", "build")]


def test_every_code_block_is_run_or_marked_with_the_reason_it_cannot_run_here():
    unmarked = [block.id for block in ALL if block.mark is None]
    assert unmarked == [], f"code blocks with no docs-test mark: {unmarked}"
    unexplained = [block.id for block in ALL if block.mark == "skip" and len(block.reason) < 10]
    assert unexplained == [], f"skipped without a reason: {unexplained}"
    # The README's commands and Python snippet are among those run.
    assert {b.language for b in RUN if b.doc == "README.md"} == {"sh", "python"}


def sandbox(tmp_path: Path) -> Path:
    """A folder that looks like the checkout for the blocks' relative paths; what they write stays here."""
    work = tmp_path / "work"
    work.mkdir()
    for name in LINKED:
        (work / name).symlink_to(REPO / name)
    return work


def rewrite(code: str, *, port: int, tmp: Path) -> str:
    return (
        code.replace("127.0.0.1:6060", f"127.0.0.1:{port}")
        .replace("127.0.0.1-6060", f"127.0.0.1-{port}")  # the stand-in pod's name in a key
        .replace("/tmp/", f"{tmp}/")
    )


def run_shell(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The block in bash, in a process group of its own: whatever it left in the background is
    ended with the group once the block is done."""
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"did not end within {BLOCK_TIMEOUT}s:\n{out}\n{err}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("block", RUN, ids=[block.id for block in RUN])
def test_the_block_runs(block, go_app, tmp_path):
    work = sandbox(tmp_path)
    own_app = "-addr 127.0.0.1:6060" in block.code
    port = free_port() if own_app else go_app.port
    code = rewrite(block.code, port=port, tmp=tmp_path)
    env = {
        **go_environment(),
        "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "COLUMNS": "100",
    }
    if block.language == "go":
        (work / "main.go").write_text(code)
        (work / "go.mod").write_text("module docs.example/pprof\n\ngo 1.19\n")
        done = subprocess.run(
            ["go", "build", "-o", str(tmp_path / "app"), "."],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
    elif block.language == "python":
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
        )
    else:
        done = run_shell(code, work, env)
    assert done.returncode == 0, f"{block.id} failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    check = CHECKS.get(block.id.split(":")[0])
    if check is not None:
        check(block, done.stdout, work, tmp_path)


# What some blocks must have shown or made, beyond succeeding (by document).
def readme(block: Block, out: str, work: Path, tmp: Path) -> None:
    if block.language == "python":
        assert out.startswith("capture: 2 (cpu-threshold: 1, memory-threshold: 1)  none: 8 ("), out
    elif "kprof capture" in block.code:
        assert sorted(p.name for p in (work / "profiles").rglob("*.pprof")) == ["cpu.pprof", "heap.pprof"]
        assert re.search(r"^examples/profilingconfigs/threshold.yaml document 1 \(shop-threshold\): valid$", out, re.M)
        assert "plan for shop-threshold (examples/profilingconfigs/threshold.yaml)" in out
        assert re.search(r"^cpu \(cpu, total .*cpu.pprof\)$", out, re.MULTILINE), out  # kprof show's table


def local(block: Block, out: str, work: Path, tmp: Path) -> None:
    assert [p.name for p in (tmp / "profiles").rglob("cpu.pprof")], out
    assert "capture: 1 (cpu-threshold: 1)" in out, out


CHECKS = {"README.md": readme, "docs/LOCAL.md": local}
