"""The S3 profile store: puts profiles into a bucket of AWS S3 or an S3-compatible store (MinIO and
the like), with their metadata, tags and server-side encryption. Runtimes build one from
spec.s3Config; the executor only calls `put`.

Credentials come only from boto3's default chain (IRSA web identity, environment variables, shared
profiles, container and instance roles), never from kprof's configuration. Retries are botocore's
"standard" mode; once they are used up, every failure is a `StoreError` whose `retryable` says
whether waiting can help (connection errors, throttling, 5xx) or not (no such bucket, access
denied, no credentials).

Puts are conditional (`If-None-Match: *`): an object already under a key is never overwritten,
and the put is a permanent `StoreError` instead, unless the object there is this very profile
(an earlier attempt whose answer was lost).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

import boto3
from botocore import exceptions
from botocore.config import Config

from kprof_lib.execution import redact
from kprof_lib.execution.ports import StoredObject, StoreError

log = logging.getLogger(__name__)

SSE_MODES = ("AES256", "aws:kms")

# Error codes that no retry can fix: the request or the set-up is wrong.
_PERMANENT_CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied: the role or credentials lack s3:PutObject (and s3:PutObjectTagging)",
    "AllAccessDisabled": "all access to the bucket is disabled",
    "AccountProblem": "the AWS account has a problem that prevents the operation",
    "InvalidAccessKeyId": "the access key id is not known to the store",
    "SignatureDoesNotMatch": "the request signature does not match: check the secret key and the region",
    "InvalidBucketName": "the bucket name is not valid",
    "PermanentRedirect": "the bucket is in another region or behind another endpoint",
    "AuthorizationHeaderMalformed": "the region does not match the bucket's region",
    "KMS.NotFoundException": "the KMS key does not exist",
    "KMS.DisabledException": "the KMS key is disabled",
    "KMS.AccessDeniedException": "access to the KMS key is denied",
    "InvalidArgument": "the store refused an argument of the request",
    "InvalidRequest": "the store refused the request",
}
_RETRYABLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
# What a backend may refuse that a profile can be stored without, given up in this order: (request
# field, the codes refusing it, the log line). Conditional writes are missing from older
# S3-compatible stores; keys are unique per pod and capture, so the condition is a safety net.
_TAGS_REFUSED = {"InvalidTag", "NotImplemented", "InvalidTagError"}
_DROPPABLE = (
    ("Tagging", _TAGS_REFUSED, "%s refused the tags of %s (%s); storing it without tags"),
    ("IfNoneMatch", {"NotImplemented"}, "%s has no conditional puts, for %s (%s); storing it unconditionally"),
    ("Metadata", {"MetadataTooLarge"}, "%s refused the metadata of %s (%s); storing it without metadata"),
)


class S3Store:
    """A `ProfileStore` writing to one bucket. Thread-safe: boto3 clients may be shared by threads.

    `prefix` is kept for whoever builds keys (see `kprof_lib.execution.keys`); `put` takes keys
    complete and adds nothing to them.
    """

    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        prefix: str = "",
        sse: str | None = None,
        kms_key_id: str | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 5,
        read_timeout: float = 30,
    ) -> None:
        if sse is not None and sse not in SSE_MODES:
            raise ValueError(f"server-side encryption {sse!r} is not one of {', '.join(SSE_MODES)}")
        if kms_key_id and sse != "aws:kms":
            raise ValueError("a KMS key id needs serverSideEncryption aws:kms")
        self.bucket = bucket
        self.region = region
        self.endpoint = endpoint
        self.prefix = prefix
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.max_attempts = max_attempts
        self.description = f"s3://{bucket}"
        config = Config(
            region_name=region,
            # total_max_attempts counts the first try; botocore's max_attempts would count retries only.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Custom endpoints rarely have wildcard DNS for virtual-hosted buckets.
            s3={"addressing_style": "path"} if endpoint else None,
        )
        # A session of its own: the default session is shared module state, not safe to build
        # clients from in several threads.
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        request = self._request(key, data, metadata, tags, content_type)
        # Conditional: an object already under the key is never overwritten (412 instead).
        request["IfNoneMatch"] = "*"
        try:
            response = self._put_dropping_refused(request)
        except _AlreadyThere as there:
            if not self._is_ours(key, data):
                raise StoreError(
                    f"storing {key} in {self._where()}: an object is stored under that key already; not overwritten",
                    retryable=False,
                ) from there.__cause__
            # Our own earlier attempt got through and its answer was lost (a retry, or a spool
            # flush after a crash): the profile is stored.
            response = {}
        return StoredObject(uri=self.uri_for(key), key=key, size=len(data), attempts=_attempts(response) or 1)

    def replace(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        """Like `put`, but what is under `key` is replaced (the `DocumentStore` port)."""
        response = self._put_dropping_refused(self._request(key, data, metadata, tags, content_type))
        return StoredObject(uri=self.uri_for(key), key=key, size=len(data), attempts=_attempts(response) or 1)

    def _request(
        self, key: str, data: bytes, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
            "Metadata": self._sendable_metadata(key, metadata),
        }
        if tags:
            request["Tagging"] = urllib.parse.urlencode(sorted(tags.items()), quote_via=urllib.parse.quote)
        if self.sse:
            request["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            request["SSEKMSKeyId"] = self.kms_key_id
        return request

    def read(self, key: str, max_bytes: int) -> bytes:
        """The object under `key` (needs s3:GetObject): a healthy
        baseline read back to diff an incident against. Refused when larger than `max_bytes`."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            size = int(response.get("ContentLength") or 0)
            if size > max_bytes:
                response["Body"].close()
                raise StoreError(f"reading {key} in {self._where()}: {size} bytes, over {max_bytes}", retryable=False)
            return response["Body"].read()
        except (exceptions.ClientError, exceptions.BotoCoreError) as error:
            raise self._store_error(error, f"reading {key}") from error

    def check(self) -> None:
        """Start-up diagnostics: raise `StoreError` saying why the bucket cannot be reached."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(error.response.get("Error", {}).get("Code", ""))
            if status == 404 or code in ("404", "NoSuchBucket"):
                raise StoreError(f"{self._where()}: the bucket does not exist", retryable=False) from error
            if status == 403 or code in ("403", "AccessDenied"):
                raise StoreError(
                    f"{self._where()}: access denied; the credentials from the default chain "
                    "(IRSA role, environment, profile) need s3:ListBucket and s3:PutObject on it",
                    retryable=False,
                ) from error
            raise self._store_error(error, "checking the bucket") from error
        except exceptions.BotoCoreError as error:
            raise self._store_error(error, "checking the bucket") from error

    def _is_ours(self, key: str, data: bytes) -> bool:
        """Whether the object under `key` holds `data` (its ETag is the MD5 of a single-part put
        without KMS)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (exceptions.ClientError, exceptions.BotoCoreError):
            return False
        return head.get("ETag", "").strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()

    def _put_dropping_refused(self, request: dict[str, Any]) -> dict[str, Any]:
        # The port's contract: what the backend still refuses is dropped with a log line, so a
        # store without tagging support, say, still keeps every profile.
        while True:
            try:
                return self.client.put_object(**request)
            except exceptions.ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code == "PreconditionFailed":
                    raise _AlreadyThere() from error
                for field, codes, message in _DROPPABLE:
                    if code in codes and request.get(field):
                        log.warning(message, self.description, request["Key"], code)
                        del request[field]
                        break
                else:
                    raise self._store_error(error, f"storing {request['Key']}") from error
            except exceptions.BotoCoreError as error:
                raise self._store_error(error, f"storing {request['Key']}") from error

    def _sendable_metadata(self, key: str, metadata: Mapping[str, str]) -> dict[str, str]:
        # Metadata travels as HTTP headers: only printable ASCII survives every hop.
        sendable = {}
        for name, value in metadata.items():
            if _is_header_safe(name) and _is_header_safe(value):
                sendable[name] = value
            else:
                log.warning("%s: metadata %r of %s is not printable ASCII; not stored", self.description, name, key)
        return sendable

    def _where(self) -> str:
        return f"s3://{self.bucket}" + (f" at {redact.text(self.endpoint)}" if self.endpoint else "")

    def _store_error(self, error: Exception, doing: str) -> StoreError:
        where = self._where()
        if isinstance(error, exceptions.ClientError):
            details = error.response.get("Error", {})
            code = str(details.get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            said = details.get("Message") or code or f"HTTP {status}"
            attempts = _attempts(error.response) or 1
            if code in _PERMANENT_CODES:
                return StoreError(
                    f"{doing} in {where}: {_PERMANENT_CODES[code]} ({code}: {said})", retryable=False, attempts=attempts
                )
            retryable = code in _RETRYABLE_CODES or status >= 500 or status == 429
            reason = "the store is overloaded or failing" if retryable else "the store refused the request"
            return StoreError(
                f"{doing} in {where}: {reason} ({code or status}: {said})", retryable=retryable, attempts=attempts
            )
        if isinstance(error, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
            return StoreError(
                f"{doing} in {where}: no usable AWS credentials in the default chain "
                f"(IRSA web identity, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE): {error}",
                retryable=False,
            )
        if isinstance(error, exceptions.ParamValidationError):
            return StoreError(f"{doing} in {where}: invalid request: {error}", retryable=False)
        if isinstance(error, exceptions.ConnectionError | exceptions.HTTPClientError):
            # botocore retried the connection as many times as allowed before giving up.
            unreachable = f"{doing} in {where}: cannot reach the store after {self.max_attempts} attempts: {error}"
            return StoreError(unreachable, retryable=True, attempts=self.max_attempts)
        return StoreError(f"{doing} in {where}: {type(error).__name__}: {error}", retryable=True)


class _AlreadyThere(Exception):
    """The conditional put found an object under the key."""


def _attempts(response: Mapping[str, Any]) -> int | None:
    retries = response.get("ResponseMetadata", {}).get("RetryAttempts")
    return None if retries is None else int(retries) + 1


def _is_header_safe(text: str) -> bool:
    return isinstance(text, str) and all(" " <= char <= "~" for char in text)
