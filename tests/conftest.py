"""Shared pytest set-up: the real parts (Go pprof app, S3 server, OTLP receiver, the real control
plane, Kubernetes API emulator) are fixtures defined in their own support modules and registered here."""

pytest_plugins = [
    "tests.support.goapp",
    "tests.support.badserver",
    "tests.support.s3server",
    "tests.support.otlp",
    "tests.kube_emulator.fixtures",
    "tests.support.controlplane",
    "tests.support.chart",
    "tests.profiles_support",
]
