"""Helpers for the chart, kustomize and manifest tests: run the real helm and kubectl binaries that
scripts/install-tools puts in .tools/bin, and check rendered Kubernetes objects.

helm and kubectl missing is a failure, not a skip: the tests that need them are part of the suite
(`scripts/test` installs them first). helm runs with its cache, config and data folders in a
private temporary folder, so no repository list or plugin of the machine's user is involved and
nothing is fetched from the network.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kprof_lib import validate_document

REPO = Path(__file__).resolve().parent.parent.parent
TOOLS = REPO / ".tools" / "bin"
KUBERNETES_VERSION = "1.33"
COMMAND_TIMEOUT = 120


def tool(name: str) -> Path:
    """The path of .tools/bin/<name>; fails the test when it is not there."""
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run scripts/install-tools (scripts/test does)", pytrace=False)
    return path


@functools.cache
def _helm_home() -> str:
    """One private home for helm and kubectl per test process, removed when the process ends."""
    home = tempfile.mkdtemp(prefix="kprof-helm-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def helm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs helm with the given arguments; with check, a non-zero exit fails the test with helm's output."""
    home = _helm_home()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "HELM_CACHE_HOME": f"{home}/cache",
        "HELM_CONFIG_HOME": f"{home}/config",
        "HELM_DATA_HOME": f"{home}/data",
    }
    return _run([tool("helm"), *args], env, check)


def kubectl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": _helm_home(), "KUBECONFIG": "/dev/null"}
    return _run([tool("kubectl"), *args], env, check)


def _run(command: list[Any], env: dict[str, str], check: bool) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, timeout=COMMAND_TIMEOUT
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stderr}{result.stdout}", pytrace=False
        )
    return result


def parse_kprof_args(args: list[str]) -> Any:
    """The container's arguments as the kprof command line parses them (the image's entrypoint is
    `kprof`); fails the test when kprof would refuse them."""
    from kprof_lib.runtimes import cli

    try:
        return cli.build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"kprof refuses the container's arguments {args} (see the usage message above)", pytrace=False)


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream, empty documents left out."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_template(
    chart: Path, sets: Iterable[str] = (), release: str = "kprof", namespace: str = "kprof-system"
) -> list[dict[str, Any]]:
    args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
    for assignment in sets:
        args += ["--set", assignment]
    return documents(helm(*args).stdout)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    return documents(kubectl("kustomize", directory).stdout)


def validate_object(obj: Mapping[str, Any]) -> None:
    """Raises (AssertionError or the validator's error) unless `obj` is a valid object.

    Built-in kinds and the CRD itself are checked by kubernetes-validate in strict mode (unknown
    fields are errors) against Kubernetes 1.33. A ProfilingConfig is checked against kprof's own
    schema, which is stricter than its CRD. A ServiceMonitor (Prometheus Operator) is not checked:
    kubernetes-validate ships no schema for it and kprof has none either.
    """
    kind = obj.get("kind")
    if kind == "ProfilingConfig":
        validate_document(obj)
        return
    if kind == "ServiceMonitor" and str(obj.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
        return
    kubernetes_validate.validate(dict(obj), KUBERNETES_VERSION, strict=True)


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> Mapping[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}{' ' + name if name else ''}, found {len(found)}"
    return found[0]


def pod_specs(objects: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, pod spec) of every workload's pod template."""
    for obj in objects:
        if obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def env_of(container: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def check_pod_wiring(objects: list[Mapping[str, Any]]) -> None:
    """What the API server would only find out at run time: every $(VAR) in env values and args
    refers to a variable defined earlier in the container; every volumeMount has a volume; every
    resourceFieldRef names a container of the pod; every Service selects some pod template."""
    reference = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
    templates = []
    for where, spec in pod_specs(objects):
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        names = {c["name"] for c in containers}
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for container in containers:
            defined: set[str] = set()
            for entry in container.get("env", []):
                for used in reference.findall(str(entry.get("value", ""))):
                    assert used in defined, (
                        f"{where}/{container['name']}: {entry['name']} uses $({used}) before it is defined"
                    )
                field = entry.get("valueFrom", {}).get("resourceFieldRef")
                if field and "containerName" in field:
                    assert field["containerName"] in names, f"{where}: resourceFieldRef to unknown container {field}"
                defined.add(entry["name"])
            for arg in container.get("args", []) + container.get("command", []):
                for used in reference.findall(arg):
                    assert used in defined, f"{where}/{container['name']}: argument {arg!r} uses undefined $({used})"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (
                    f"{where}/{container['name']}: volumeMount {mount['name']} has no volume"
                )
        templates.append(next(o for o in objects if f"{o['kind']}/{o['metadata']['name']}" == where))
    for service in find(objects, "Service"):
        selector = service["spec"].get("selector", {})
        matching = [
            t
            for t in templates
            if selector.items() <= t["spec"]["template"]["metadata"].get("labels", {}).items()
            and t["metadata"].get("namespace") == service["metadata"].get("namespace")
        ]
        assert matching, f"Service {service['metadata']['name']} selects no pod template ({selector})"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                named = {
                    p["name"]
                    for t in matching
                    for c in t["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                assert target in named, f"Service {service['metadata']['name']}: no container port named {target}"
