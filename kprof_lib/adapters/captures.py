"""Reading stored captures back: the profiles, their metadata and `summary.json` of one capture
folder, from a local directory or an S3 prefix, its page, and the summaries under a destination
(for `kprof ls`). Used by `kprof show`, `kprof diff`, `kprof ls`, `kprof open` and `kprof pgo`.

A capture is what one capture of one pod wrote, as `kprof ls` prints it:
- the `pod` layout keeps each capture in a folder of its own (`…/ns/pod/20261201T…Z/cpu.pprof`),
  given as that directory or as the `s3://bucket/…/20261201T…Z/` prefix;
- the `service-date` layout puts the capture's files side by side with the timestamp first
  (`…/svc/ns/pod/20261201T…Z-cpu.pprof`); give the common start, `…/svc/ns/pod/20261201T…Z-`.
Profile types come from the file names (`cpu.pprof`, `…Z-cpu.pprof`). S3 is read with boto3's
default credential chain; local files with their `.json` sidecars (see `adapters.directory`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROFILE_SUFFIX = ".pprof"
SUMMARY_NAME = "summary.json"
PAGE_NAME = "index.html"
CAPTURE_KIND = "capture"  # a summary.json without a "kind" is a capture's
MAX_PROFILE_BYTES = 256 * 1024 * 1024


class CaptureError(Exception):
    """The capture cannot be read: nothing there, access refused, not a capture."""


@dataclass
class Capture:
    """One capture read back: {type: (file name, bytes)}, the object metadata of its profiles
    (namespace, pod, reason, captured-at, trace-id …), its stored summary and page, if any."""

    location: str
    profiles: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    page: bytes | None = None


def profile_type(name: str) -> str:
    """`cpu` from `cpu.pprof` or `20261201T100000.123Z-cpu.pprof`."""
    stem = name[: -len(PROFILE_SUFFIX)] if name.endswith(PROFILE_SUFFIX) else name
    return stem.rsplit("-", 1)[-1] if stem[:8].isdigit() and "-" in stem else stem


def read(
    location: str, *, endpoint: str | None = None, region: str | None = None, types: Collection[str] | None = None
) -> Capture:
    """The capture at `location` (a directory, a file-name start, or an `s3://` prefix); with
    `types`, only those profile types are read (and the summary and page are not)."""
    if location.startswith("s3://"):
        return _read_s3(location, endpoint=endpoint, region=region, types=types)
    return _read_local(location, types)


def summaries(
    destination: str, *, under: str = "", endpoint: str | None = None, region: str | None = None
) -> Iterator[tuple[str, dict]]:
    """(capture location, summary) for every capture's `summary.json` under a destination, or only
    under its sub-folder `under` (e.g. `ns/pod` in the pod layout), so that S3 lists that prefix
    alone, page by page, instead of the whole bucket. Summaries of something else (a merged PGO
    profile's says `"kind": "pgo"`) are passed over."""
    if destination.startswith("s3://"):
        bucket, prefix = _split_s3(destination)
        client = _client(endpoint, region)
        prefix = "/".join(part for part in (prefix.strip("/"), under.strip("/")) if part)
        if prefix:
            prefix += "/"
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.rsplit("/", 1)[-1].endswith(SUMMARY_NAME):
                        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                        found = _json(body, f"s3://{bucket}/{key}")
                        if found.get("kind", CAPTURE_KIND) == CAPTURE_KIND:
                            yield f"s3://{bucket}/{key[: -len(SUMMARY_NAME)]}", found
        except _client_errors() as error:
            raise CaptureError(f"listing {destination}: {error}") from None
        return
    root = Path(destination, under) if under else Path(destination)
    if not root.is_dir():
        if under and Path(destination).is_dir():
            return
        raise CaptureError(f"{destination}: no such directory")
    for path in sorted(root.rglob("*" + SUMMARY_NAME)):
        location = str(path.parent) + os.sep if path.name == SUMMARY_NAME else str(path)[: -len(SUMMARY_NAME)]
        found = _json(path.read_bytes(), str(path))
        if found.get("kind", CAPTURE_KIND) == CAPTURE_KIND:
            yield location, found


def _read_local(location: str, types: Collection[str] | None = None) -> Capture:
    path = Path(location)
    if path.is_dir():
        folder, start = path, ""
    elif path.parent.is_dir():
        folder, start = path.parent, path.name
    else:
        raise CaptureError(f"{location}: no such directory")
    capture = Capture(location=location)
    for file in sorted(folder.iterdir()):
        if not file.name.startswith(start) or not file.is_file():
            continue
        if file.name.endswith(PROFILE_SUFFIX):
            if types is not None and profile_type(file.name[len(start) :]) not in types:
                continue
            if file.stat().st_size > MAX_PROFILE_BYTES:
                raise CaptureError(f"{file}: larger than {MAX_PROFILE_BYTES} bytes")
            capture.profiles[profile_type(file.name[len(start) :])] = (file.name, file.read_bytes())
            sidecar = file.with_name(file.name + ".json")
            if sidecar.is_file() and not capture.metadata:
                capture.metadata = dict(_json(sidecar.read_bytes(), str(sidecar)).get("metadata", {}))
        elif types is not None:
            continue
        elif file.name == start + SUMMARY_NAME:
            capture.summary = _json(file.read_bytes(), str(file))
        elif file.name == start + PAGE_NAME:
            capture.page = file.read_bytes()
    if not capture.profiles:
        raise CaptureError(f"{location}: no profiles (*{PROFILE_SUFFIX}) there")
    return capture


def _read_s3(
    location: str, *, endpoint: str | None, region: str | None, types: Collection[str] | None = None
) -> Capture:
    bucket, prefix = _split_s3(location)
    client = _client(endpoint, region)
    capture = Capture(location=location)
    try:
        # The delimiter keeps the listing to this folder: a pod's other captures are not read.
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            for item in page.get("Contents", []):
                key, name = item["Key"], item["Key"][len(prefix) :]
                if name.endswith(PROFILE_SUFFIX):
                    if types is not None and profile_type(name) not in types:
                        continue
                    if item.get("Size", 0) > MAX_PROFILE_BYTES:
                        raise CaptureError(f"s3://{bucket}/{key}: larger than {MAX_PROFILE_BYTES} bytes")
                    response = client.get_object(Bucket=bucket, Key=key)
                    capture.profiles[profile_type(name)] = (key.rsplit("/", 1)[-1], response["Body"].read())
                    capture.metadata = capture.metadata or dict(response.get("Metadata", {}))
                elif types is not None:
                    continue
                elif name == SUMMARY_NAME:
                    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                    capture.summary = _json(body, f"s3://{bucket}/{key}")
                elif name == PAGE_NAME and item.get("Size", 0) <= MAX_PROFILE_BYTES:
                    capture.page = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except _client_errors() as error:
        raise CaptureError(f"reading {location}: {error}") from None
    if not capture.profiles:
        raise CaptureError(f"{location}: no profiles (*{PROFILE_SUFFIX}) under this prefix")
    return capture


def _split_s3(location: str) -> tuple[str, str]:
    parts = urlsplit(location)
    if not parts.netloc:
        raise CaptureError(f"{location!r}: expected s3://BUCKET/PREFIX")
    return parts.netloc, parts.path.lstrip("/")


def _client(endpoint: str | None, region: str | None):
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": 3},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def _client_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as error:
        raise CaptureError(f"{where}: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise CaptureError(f"{where}: expected a JSON object")
    return value
