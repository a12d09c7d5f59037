"""Writes a ProfilingConfig's status through its status subresource with a JSON merge patch, the
only patch kind besides JSON patch that custom resources accept (the client's typed methods send a
strategic merge patch for a dict, which they answer with 415). A status write never touches the
spec, so it does not bump metadata.generation and needs no RBAC on the main resource. The
operator calls it after every check; conditions are built with kprof_lib.planning.conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.reads import MERGE_PATCH, send_json
from kprof_lib.spec.crd import GROUP, PLURAL, VERSION


class StatusWriteError(RuntimeError):
    """The status could not be written; the message names the object and the API's answer."""


class StatusWriter:
    def __init__(self, api_client: ApiClient, *, timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = timeout

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge `status` into the object's .status (a key set to None removes that field; lists
        such as conditions are replaced whole). Returns the updated object, or None when the
        ProfilingConfig no longer exists (deleted while it was being checked)."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        try:
            return send_json(
                self._api, "PATCH", path, {"status": dict(status)}, content_type=MERGE_PATCH, timeout=self._timeout
            )
        except errors.APINotFound:
            return None
        except errors.APIError as exc:
            raise StatusWriteError(f"PATCH {path}: {exc.status} {exc.message}") from None
        except Exception as exc:
            raise StatusWriteError(f"PATCH {path}: {type(exc).__name__}: {exc}") from None
