"""The commands in the user guides are real: every `kprof` command line in a shell block of docs/
names a sub-command and flags that exist, every `--set` of the operator chart names a value the
chart has, and every repository path a command mentions is there. A renamed flag or value fails
here instead of in a reader's terminal."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml

from kprof_lib.runtimes import cli

REPO = Path(__file__).resolve().parent.parent
GUIDES = [
    "QUICKSTART.md",
    "IRSA_SETUP.md",
    "TRACING.md",
    "TROUBLESHOOTING.md",
    "SIDECAR.md",
    "LOCAL.md",
    "ARCHITECTURE.md",
    "PROFILES.md",
    "PGO.md",
    "ALERTS.md",
]
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
REPO_PATH = re.compile(r"(?<![\w/.-])((?:examples|helm|kustomize|scripts|schemas|docs)/[\w./-]*[\w-])")


def shell_commands(name: str) -> list[str]:
    text = (REPO / "docs" / name).read_text(encoding="utf-8")
    commands = []
    for block in SHELL_BLOCK.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def kprof_invocations(command: str) -> list[list[str]]:
    found = []
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", command):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]  # environment assignments
        if words and words[0] in ("kprof", ".venv/bin/kprof"):
            found.append(words[1:])
    return found


def sub_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", GUIDES)
def test_kprof_commands_use_real_sub_commands_and_flags(name):
    parsers = sub_parsers()
    checked = 0
    for command in shell_commands(name):
        for words in kprof_invocations(command):
            assert words and words[0] in parsers, f"{name}: unknown kprof command in {command!r}"
            known = set(parsers[words[0]]._option_string_actions)
            for word in words[1:]:
                if word.startswith("--"):
                    assert word.split("=", 1)[0] in known, f"{name}: kprof {words[0]} has no {word}: {command!r}"
            checked += 1
    if name not in ("ARCHITECTURE.md", "IRSA_SETUP.md"):
        assert checked, f"{name} shows no kprof command"


def chart_value_exists(values: dict, dotted: str) -> bool:
    keys = [key.replace("\0", ".") for key in dotted.replace("\\.", "\0").split(".")]
    node = values
    for index, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            # A free-form map, empty in values.yaml (annotations, labels), takes any key.
            return index > 0 and node == {}
        node = node[key]
    return True


@pytest.mark.parametrize("name", GUIDES)
def test_helm_values_and_repository_paths_exist(name):
    values = yaml.safe_load((REPO / "helm" / "kprof-operator" / "values.yaml").read_text())
    for command in shell_commands(name):
        if command.startswith("helm ") and "helm/kprof-operator" in command:
            for setting in re.findall(r"--set\s+(\S+?)=", command):
                assert chart_value_exists(values, setting), f"{name}: the chart has no value {setting}"
        for path in REPO_PATH.findall(command):
            assert (REPO / path).exists(), f"{name}: {path} does not exist ({command!r})"
