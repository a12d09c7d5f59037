"""Shared pytest set-up: the real parts (Go pprof app, S3 server, OTLP receiver, the real control
plane, Kubernetes API emulator) are fixtures defined in their own support modules and registered here.

The suite runs on two pytest-xdist workers (`-n 2 --dist loadgroup` in pyproject.toml). A module's
tests that use a real control plane stay together on one worker (an `xdist_group` per module), so
that its module-scoped workload and operator runs are made once and the worker's session control
plane starts only on a worker that has such a module. Those modules go first: each is minutes of
mostly waiting, which the other worker fills with the short tests.
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
]

# Fixtures that start a real control plane (the session's, or one of a module's own).
CONTROL_PLANE_FIXTURES = {"control_plane", "kprof_release", "uncached_plane"}


def uses_control_plane(item: pytest.Item) -> bool:
    # tests/e2e_cluster asks for the control plane at run time (unless given a cluster of its own).
    return bool(CONTROL_PLANE_FIXTURES & set(getattr(item, "fixturenames", ()))) or bool(
        item.get_closest_marker("e2e_cluster")
    )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if uses_control_plane(item):
            item.add_marker(pytest.mark.xdist_group(f"control-plane:{item.nodeid.split('::')[0]}"))
    # A stable sort: the control-plane modules first, each in its own order, then everything else.
    items.sort(key=lambda item: not uses_control_plane(item))
