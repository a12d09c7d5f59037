"""Benchmark: upload throughput of `S3Store.put`, and of `SpoolingStore.put` over a healthy store,
against raw boto3 `put_object` of the same objects (same metadata, tags and content type) to the
same moto S3 server, measured in the same run. Every put is of a key nobody stored yet, on
both sides and in every round, and both send the conditional `If-None-Match: *` kprof's puts
carry: a key stored by an earlier round would make a conditional put fail and read the object back
to compare, which is the retry path, not an upload. Target: ratio >= 0.9, i.e. kprof's stores cost at
most a tenth more than the SDK call they wrap. The server runs in a subprocess of its own, so its
work does not compete with the client's for this interpreter.

    python -m benchmarks.bench_upload [--objects 200] [--size 262144] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import boto3
from botocore.config import Config

from kprof_lib.adapters.s3 import S3Store
from kprof_lib.adapters.spool import SpoolingStore
from kprof_lib.execution import keys
from kprof_lib.execution.ports import PPROF_CONTENT_TYPE

BUCKET = "kprof-bench"
REGION = "us-east-1"


@contextlib.contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[str]:
    """A moto S3 server in a subprocess on a free loopback port; yields its URL, stops it after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                opener.open(url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


Objects = list[tuple[str, bytes, dict[str, str], dict[str, str]]]


def build_objects(count: int, size: int) -> Objects:
    """Distinct profiles with the keys, metadata and tags the executor would give them."""
    start = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    labels = {"app": "web", "tier": "backend", "app.kubernetes.io/version": "1.4.2", "pod-template-hash": "7d9c"}
    tags, _ = keys.object_tags(labels)
    objects = []
    for index in range(count):
        captured_at = start + dt.timedelta(seconds=index)
        fields = {
            "namespace": "shop",
            "pod": f"web-7d9c-{index:05d}",
            "service": "web",
            "reason": "on-demand",
            "profile_type": "heap",
            "captured_at": captured_at,
        }
        seed = hashlib.sha256(str(index).encode()).digest()
        data = (seed * (size // len(seed) + 1))[:size]
        objects.append((keys.object_key(prefix="bench", **fields), data, keys.object_metadata(**fields), tags))
    return objects


def timed(run: Callable[[Objects], None], objects: Objects, run_name: str) -> float:
    """Seconds `run` takes for `objects`, each under a key of this run's own (`run_name`)."""
    fresh = [(f"{run_name}/{key}", data, metadata, tags) for key, data, metadata, tags in objects]
    gc.collect()
    started = time.perf_counter()
    run(fresh)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--size", type=int, default=256 * 1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    # Dummy credentials for the default chain, as a pod's IRSA role would provide real ones.
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    objects = build_objects(args.objects, args.size)
    megabytes = args.objects * args.size / 1e6

    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="kprof-bench-spool-") as spool_dir:
        # The same client settings S3Store uses, so only kprof's own work differs.
        raw = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            config=Config(
                region_name=REGION,
                retries={"mode": "standard", "total_max_attempts": 5},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"},
            ),
        )
        raw.create_bucket(Bucket=BUCKET)
        store = S3Store(BUCKET, endpoint=endpoint, region=REGION)
        spooling = SpoolingStore(S3Store(BUCKET, endpoint=endpoint, region=REGION), spool_dir)

        def raw_puts(objects: Objects) -> None:
            for key, data, metadata, tags in objects:
                raw.put_object(
                    Bucket=BUCKET,
                    Key=key,
                    Body=data,
                    Metadata=metadata,
                    ContentType=PPROF_CONTENT_TYPE,
                    Tagging=urllib.parse.urlencode(sorted(tags.items()), quote_via=urllib.parse.quote),
                    IfNoneMatch="*",
                )

        def store_puts(target: S3Store | SpoolingStore) -> Callable[[Objects], None]:
            def run(objects: Objects) -> None:
                for key, data, metadata, tags in objects:
                    stored = target.put(key, data, metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE)
                    assert not stored.spooled, "the store must be healthy for this measurement"

            return run

        variants = {
            "boto3 put_object": raw_puts,
            "S3Store.put": store_puts(store),
            "SpoolingStore.put": store_puts(spooling),
        }
        for index, run in enumerate(variants.values()):  # warm connections and code paths
            timed(run, objects, f"warm-{index}")
        # Interleaved rounds, best of each, so a noisy moment hurts every variant alike.
        timings = {name: float("inf") for name in variants}
        for round_ in range(args.repeat):
            for index, (name, run) in enumerate(variants.items()):
                timings[name] = min(timings[name], timed(run, objects, f"round-{round_}-{index}"))

    baseline = timings["boto3 put_object"]
    print(f"objects: {args.objects} x {args.size // 1024} KiB = {megabytes:.1f} MB per run, best of {args.repeat}")
    for name, seconds in timings.items():
        print(f"{name:18s} {seconds * 1000:8.1f} ms  {megabytes / seconds:7.1f} MB/s")
    for name in ("S3Store.put", "SpoolingStore.put"):
        print(f"ratio {name} / boto3 put_object throughput: {baseline / timings[name]:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
