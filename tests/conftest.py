"""Shared pytest set-up: the real parts (Go pprof app, S3 server, OTLP receiver, the real control
plane, the front of its API server in tests/kube_emulator, Alertmanager) are fixtures defined in
their own support modules and registered here.

The suite runs on two pytest-xdist workers, a module at a time (`-n 2 --dist loadscope` in
pyproject.toml): a module's tests stay on one worker, so that its module-scoped workloads and
operator runs are made once, and a worker starts the session's control plane only if one of its
modules uses it. The modules that use a real control plane go first: each is minutes of mostly
waiting, which the other worker fills with the short modules.
"""

import pytest

pytest_plugins = [
    "tests.support.goapp",
    "tests.support.badserver",
    "tests.support.s3server",
    "tests.support.otlp",
    "tests.kube_emulator.fixtures",
    "tests.support.controlplane",
    "tests.support.chart",
    "tests.support.alertmanager",
    "tests.profiles_support",
]

# Fixtures that start a real control plane (the session's, or one of a module's own).
CONTROL_PLANE_FIXTURES = {"control_plane", "kprof_release", "uncached_plane"}


def uses_control_plane(item: pytest.Item) -> bool:
    # tests/e2e_cluster asks for the control plane at run time (unless given a cluster of its own).
    return bool(CONTROL_PLANE_FIXTURES & set(getattr(item, "fixturenames", ()))) or bool(
        item.get_closest_marker("e2e_cluster")
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: each test keeps its place within its module; xdist hands a module out where
    # its first test stands.
    items.sort(key=lambda item: not uses_control_plane(item))
