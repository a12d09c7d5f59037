"""The shipped files outside the charts and kustomize: every Kubernetes object under examples/ and in
the install docs is valid (strict, Kubernetes 1.33; ProfilingConfigs against kprof's schema), the
Dockerfile builds the image the charts expect, and the Makefile has the documented targets."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from kprof_lib.runtimes import cli
from tests.support.manifests import REPO, check_pod_wiring, validate_object

EXAMPLES = REPO / "examples"
DOCS_WITH_MANIFESTS = [REPO / "docs/INSTALL.md", REPO / "helm/kprof-sidecar/README.md"]


def is_in_a_chart(path: Path) -> bool:
    """Files of a Helm chart are templates or values, not manifests (test_helm renders them)."""
    return any((parent / "Chart.yaml").is_file() for parent in path.parents if parent != EXAMPLES.parent)


def example_manifests() -> list[Path]:
    found = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        if is_in_a_chart(path):
            continue
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        if documents and all(isinstance(doc, dict) and {"apiVersion", "kind"} <= set(doc) for doc in documents):
            found.append(path)
    return found


MANIFESTS = example_manifests()


def test_the_examples_include_the_app_and_every_kind_of_config():
    names = {str(path.relative_to(EXAMPLES)) for path in MANIFESTS}
    assert {
        "sample-app/deployment.yaml",
        "profilingconfigs/threshold.yaml",
        "profilingconfigs/on-demand.yaml",
        "profilingconfigs/both.yaml",
        "profilingconfigs/s3-compatible.yaml",
    } <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_manifest_is_valid(path):
    objects = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for obj in objects:
        validate_object(obj)
    check_pod_wiring(objects)


def test_the_sample_app_opts_in():
    deployment = next(yaml.safe_load_all((EXAMPLES / "sample-app/deployment.yaml").read_text()))
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["profiling.io/enabled"] == "true"


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize("path", DOCS_WITH_MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_manifests_shown_in_the_docs_are_valid(path):
    checked = 0
    for block in yaml_blocks(path):
        if "{{" in block:
            continue  # a Helm template excerpt
        for doc in yaml.safe_load_all(block):
            if isinstance(doc, dict) and {"apiVersion", "kind"} <= set(doc):
                validate_object(doc)
                checked += 1
    if path.name == "INSTALL.md":
        assert checked >= 1, "INSTALL.md shows a ProfilingConfig; none was found"


# --- the image --------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_the_image_is_multi_stage_on_slim_python():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        assert stage[0][1].split()[0] == "python:3.11-slim"
    final = stages[-1]
    copies = [arguments for instruction, arguments in final if instruction == "COPY"]
    assert copies == ["--from=builder /opt/kprof /opt/kprof"], "the final stage takes the virtualenv only"


def test_the_final_stage_has_no_compiler_and_installs_nothing():
    final = " ".join(arguments for _, arguments in dockerfile_stages()[-1])
    for word in ("gcc", "build-essential", "apt-get", "pip install", "make "):
        assert word not in final


def test_the_image_runs_unprivileged_with_a_read_only_root():
    final = dockerfile_stages()[-1]
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    assert users == ["65532:65532"]
    environment = " ".join(arguments for instruction, arguments in final if instruction == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in environment
    assert "HOME=/tmp" in environment
    assert ("VOLUME", '["/var/lib/kprof"]') in final


def test_the_entrypoint_is_the_kprof_command_and_runs_the_operator():
    final = dict(dockerfile_stages()[-1])
    assert final["ENTRYPOINT"] == '["kprof"]'
    assert final["CMD"] == '["run"]'
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kprof"] == "kprof_lib.runtimes.cli:main"
    assert "run" in cli.COMMANDS, "the image's default command `kprof run` is not a kprof command"


def test_the_build_context_holds_what_the_dockerfile_copies():
    allowed = {
        line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    assert "*" in (REPO / ".dockerignore").read_text().splitlines(), "the context starts from nothing"
    builder = dockerfile_stages()[0]
    for instruction, arguments in builder:
        if instruction == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is copied but left out of the build context"
                assert (REPO / source).exists(), source


# --- make -------------------------------------------------------------------------------------


MAKE_TARGETS = [
    "deps",
    "fmt",
    "lint",
    "test",
    "run",
    "build",
    "docker-build",
    "docker-push",
    "install-crds",
    "deploy",
    "helm-install",
    "demo",
    "crds",
]


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_the_makefile_has_the_target(target):
    # -n prints the commands without running them.
    result = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_helm_install_splits_the_image_at_its_last_colon():
    # HELM=echo: the shell expands the image into the flags and prints them instead of installing.
    result = subprocess.run(
        ["make", "-n", "helm-install", "IMG=registry.example.com:5000/kprof:dev", "HELM=echo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    shell = subprocess.run(["bash", "-c", result.stdout], capture_output=True, text=True, timeout=60)
    assert "image.repository=registry.example.com:5000/kprof" in shell.stdout
    assert "image.tag=dev" in shell.stdout
