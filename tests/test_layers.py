"""The layers import downward only, and the pure layers name no I/O SDK.

profiles/ (pure: decoding pprof bytes, summaries, diffs, the HTML page) and spec/, state/, planning/
(pure) <- execution/ (ports) <- adapters/ (the outside world) <- runtimes/.
Checked over the source with an AST walk, so a forbidden import fails here even if it is lazy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kprof_lib"
LAYERS = ["profiles", "spec", "state", "planning", "execution", "adapters", "runtimes"]
PURE = {"profiles", "spec", "state", "planning"}
# I/O SDKs the pure layers must not import. kubernetes.utils (parse_quantity) is a pure helper.
FORBIDDEN_IN_PURE = (
    "boto3",
    "botocore",
    "apscheduler",
    "opentelemetry",
    "urllib3",
    "requests",
    "socket",
    "http",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.watch",
    "kubernetes.stream",
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
    assert found == ["boto3", "kubernetes.client", "kubernetes.client.CoreV1Api"]
