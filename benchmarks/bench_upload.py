"""Benchmark: upload throughput of `S3Store.put`, and of `SpoolingStore.put` over a healthy store,
against raw boto3 `put_object` of the same objects (same metadata, tags and content type) to the
same moto S3 server, measured in the same run. Every put is of a key nobody stored yet, on
both sides and in every round, and both send the conditional `If-None-Match: *` kprof's puts
carry: a key stored by an earlier round would make a conditional put fail and read the object back
to compare, which is the retry path, not an upload. The server runs in a subprocess of its own, so
its work does not compete with the client's for this interpreter.

Paired, per object: each object is put by every variant one after the other (the order rotating
from object to object, so none is always first after a pause), each timed for wall-clock and for
this process's CPU; the figures are medians of the per-object ratios to boto3's put of the same
object, over `--repeat` rounds of `--objects`. moto's own time is in the wall-clock figure and not
in the client CPU one, which shows what kprof adds. Target: throughput ratio (boto3 time ÷ kprof
time) >= 0.9, i.e. kprof's stores cost at most a tenth more than the SDK call they wrap. About 20 s.

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
import statistics
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


def paired(
    variants: dict[str, Callable[[str, bytes, dict[str, str], dict[str, str]], None]], objects: Objects, run_name: str
) -> dict[str, list[tuple[float, float]]]:
    """(wall seconds, CPU seconds) of every variant's put of each object, under keys of its own."""
    names = list(variants)
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    gc.collect()
    for index, (key, data, metadata, tags) in enumerate(objects):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            fresh = f"{run_name}/{names.index(name)}/{key}"
            start, start_cpu = time.perf_counter(), time.process_time()
            variants[name](fresh, data, metadata, tags)
            timings[name].append((time.perf_counter() - start, time.process_time() - start_cpu))
    return timings


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

        def raw_put(key: str, data: bytes, metadata: dict[str, str], tags: dict[str, str]) -> None:
            raw.put_object(
                Bucket=BUCKET,
                Key=key,
                Body=data,
                Metadata=metadata,
                ContentType=PPROF_CONTENT_TYPE,
                Tagging=urllib.parse.urlencode(sorted(tags.items()), quote_via=urllib.parse.quote),
                IfNoneMatch="*",
            )

        def store_put(target: S3Store | SpoolingStore) -> Callable[[str, bytes, dict[str, str], dict[str, str]], None]:
            def put(key: str, data: bytes, metadata: dict[str, str], tags: dict[str, str]) -> None:
                stored = target.put(key, data, metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE)
                assert not stored.spooled, "the store must be healthy for this measurement"

            return put

        variants = {
            "boto3 put_object": raw_put,
            "S3Store.put": store_put(store),
            "SpoolingStore.put": store_put(spooling),
        }
        paired(variants, objects[:20], "warm")  # warm connections and code paths
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for round_ in range(args.repeat):
            for name, pairs in paired(variants, objects, f"round-{round_}").items():
                timings[name].extend(pairs)

    raw_times = timings["boto3 put_object"]
    print(f"objects: {args.objects} x {args.size // 1024} KiB, {args.repeat} rounds, paired per object (medians)")
    for name, pairs in timings.items():
        wall = statistics.median(w for w, _ in pairs)
        cpu = statistics.median(c for _, c in pairs)
        print(
            f"{name:18s} wall {wall * 1000:7.2f} ms  ({args.size / wall / 1e6:6.1f} MB/s)   "
            f"client CPU {cpu * 1000:6.2f} ms"
        )
    for name in ("S3Store.put", "SpoolingStore.put"):
        pairs = timings[name]
        wall = statistics.median(r[0] / p[0] for r, p in zip(raw_times, pairs, strict=True))
        cpu = statistics.median(p[1] / r[1] for r, p in zip(raw_times, pairs, strict=True) if r[1] > 0)
        print(f"ratio {name} / boto3 put_object: throughput {wall:.3f} (target >= 0.9), client CPU {cpu:.3f}")


if __name__ == "__main__":
    main()
