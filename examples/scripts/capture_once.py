"""Capture profiles once, now, with the profile types and the destination of a ProfilingConfig:
the library's one-shot planner, the executor and the stores, wired by hand. `kprof capture` is the
same without a config file; this script shows the pieces for embedding them elsewhere.

    # a pprof address, e.g. the sample app run locally (go run ./examples/sample-app)
    python examples/scripts/capture_once.py --url http://127.0.0.1:6060 --config my-config.yaml --out profiles
    # a pod, through the API server's port-forward
    python examples/scripts/capture_once.py --pod shop/checkout-7d9f --config my-config.yaml

The config's profileTypes, cpuProfileSeconds and s3Config are used (no s3Config: files under
--out); its selector and triggers are not, the capture happens regardless. Exit 1 if a profile
could not be captured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

import yaml
from kubernetes import client, config

from kprof_lib.adapters import pprof
from kprof_lib.execution.executor import Executor
from kprof_lib.planning import oneshot
from kprof_lib.runtimes import wiring

DEFAULT_SPEC = {"profileTypes": ["heap", "cpu", "goroutine"], "cpuProfileSeconds": 10}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a pprof address, e.g. http://127.0.0.1:6060")
    source.add_argument("--pod", metavar="NAMESPACE/NAME", help="a pod carrying the profiling.io annotations")
    parser.add_argument("--config", metavar="FILE", help="a ProfilingConfig (default: heap, cpu, goroutine)")
    parser.add_argument("--out", default="profiles", metavar="DIR", help="local store without s3Config")
    parser.add_argument("--kubeconfig", help="for --pod (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--transport", choices=("direct", "proxy", "portforward"), default="portforward")
    args = parser.parse_args(argv)

    spec = load_spec(args.config) if args.config else dict(DEFAULT_SPEC)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        if args.url:
            api = None
            transport_name = "direct"
            plan = oneshot.plan_for_url(args.url, spec, now)
        else:
            namespace, _, name = args.pod.partition("/")
            configuration = client.Configuration()
            config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)
            api = client.ApiClient(configuration)
            response = client.CoreV1Api(api).read_namespaced_pod(name, namespace, _preload_content=False)
            transport_name = args.transport
            plan = oneshot.plan_for_pod(json.loads(response.data), spec, now)
    except (ValueError, client.ApiException, config.ConfigException) as error:
        print(f"cannot capture: {error}", file=sys.stderr)
        return 1

    store = wiring.Stores(local_dir=args.out).for_spec(plan.spec)
    executor = Executor(concurrency=1)
    transport = pprof.make_transport(transport_name, api_client=api)
    report = executor.execute(plan, store=store, transport=transport, config_name="once")
    failed = 0
    for profile in report.profiles:
        if profile.status == "failed":
            failed += 1
            print(f"{profile.type}: failed: {profile.error}")
        else:
            print(f"{profile.type}: {profile.bytes} bytes -> {profile.uri}")
    print(report.recap())
    return 1 if failed else 0


def load_spec(path: str) -> dict[str, Any]:
    """The spec of a ProfilingConfig file (or a bare spec)."""
    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    spec = document.get("spec", document) if isinstance(document, dict) else {}
    # Selection and triggers do not apply to a one-shot capture.
    return {key: value for key, value in spec.items() if key in ("profileTypes", "cpuProfileSeconds", "s3Config")}


if __name__ == "__main__":
    sys.exit(main())
