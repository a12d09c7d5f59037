"""The layers import downward only, the pure layers name no I/O SDK, and the library and the light
commands load none of the heavy clients.

profiles/ (pure: decoding pprof bytes, summaries, diffs, the HTML page) and spec/, state/, planning/
(pure) <- execution/ (ports) <- adapters/ (the outside world) <- runtimes/.
Checked over the source with an AST walk, so a forbidden import fails here even if it is lazy; and,
since an allowed import can pull a forbidden one in on the way, by looking at `sys.modules` after
the import in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kprof_lib"
LAYERS = ["profiles", "spec", "state", "planning", "execution", "adapters", "runtimes"]
PURE = {"profiles", "spec", "state", "planning"}
# I/O SDKs the pure layers must not import; kubernetes in every part (even kubernetes.utils loads the
# whole client).
FORBIDDEN_IN_PURE = (
    "boto3",
    "botocore",
    "apscheduler",
    "opentelemetry",
    "urllib3",
    "requests",
    "socket",
    "http",
    "kubernetes",
    "prometheus_client",
    "subprocess",
)


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: use absolute imports (from kprof_lib...)")
    return names


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_downward(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    wrong = []
    for path in modules(layer):
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "kprof_lib" and len(parts) > 1 and parts[1] in LAYERS and parts[1] not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []


@pytest.mark.parametrize("layer", sorted(PURE))
def test_pure_layers_import_no_io_sdk(layer):
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules(layer)
        for name in imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PURE)
    ]
    assert wrong == []


# profiles/ decodes bytes it is given: it opens no file and reads no environment either.
FORBIDDEN_IN_PROFILES = ("os", "pathlib", "shutil", "tempfile", "io", "gzip", "kubernetes")


def test_profiles_layer_does_no_io():
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules("profiles")
        for name in imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PROFILES)
    ]
    assert wrong == []


def test_every_layer_has_modules():
    # A layer folder emptied by mistake would make the checks above pass vacuously.
    assert all(modules(layer) for layer in LAYERS)


def test_the_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import boto3\nfrom kubernetes.client import CoreV1Api\nfrom kubernetes.utils import parse_quantity\n"
    )
    found = [n for n in imports(bad) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IN_PURE)]
    assert found == [
        "boto3",
        "kubernetes.client",
        "kubernetes.client.CoreV1Api",
        "kubernetes.utils",
        "kubernetes.utils.parse_quantity",
    ]


# What the library and the commands that only read files must start without.
HEAVY = ("kubernetes", "boto3", "botocore", "apscheduler", "opentelemetry")
ROOT = PACKAGE.parent
LOADED = "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def heavy_modules_after(code: str) -> list[str]:
    """The heavy top-level packages in sys.modules after running `code` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code + LOADED], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return [name for name in HEAVY if name in loaded]


def cli_code(*argv: str) -> str:
    """Runs `kprof ARGV` in-process and fails unless it exits 0 (so the check sees a whole run)."""
    return (
        "from kprof_lib.runtimes import cli\n"
        f"try:\n    code = cli.main({list(argv)!r})\nexcept SystemExit as exit:\n    code = exit.code\n"
        "assert code == 0, code"
    )


@pytest.mark.parametrize(
    "code",
    [
        "import kprof_lib",
        cli_code("--version"),
        cli_code("validate", "examples/profilingconfigs/both.yaml"),
        cli_code("plan", "--config", "examples/profilingconfigs/both.yaml", "--state", "examples/cluster-state.json"),
    ],
    ids=["import kprof_lib", "kprof --version", "kprof validate", "kprof plan"],
)
def test_library_and_light_commands_load_no_heavy_client(code):
    assert heavy_modules_after(code) == []


def test_the_module_check_sees_a_transitive_import():
    # kprof run's module imports the operator, which imports the kubernetes client on the way.
    assert "kubernetes" in heavy_modules_after("import kprof_lib.runtimes.operator.app")
