"""The service a pod belongs to, for key layouts that group profiles by service.

Label `app.kubernetes.io/name`, then `app`, then the controlling owner (a ReplicaSet's name minus
the pod-template-hash is its Deployment's name), then the pod's own name.
"""

from __future__ import annotations

from typing import Any

NAME_LABELS = ("app.kubernetes.io/name", "app")


def service_name(metadata: dict[str, Any]) -> str:
    labels = metadata.get("labels") or {}
    for label in NAME_LABELS:
        if labels.get(label):
            return labels[label]
    owner = _controller(metadata.get("ownerReferences"))
    if owner is not None:
        name: str = owner["name"]  # _controller keeps only owners with a name
        template_hash = labels.get("pod-template-hash")
        if owner.get("kind") == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
            return name[: -len(template_hash) - 1]
        return name
    return metadata["name"]


def _controller(owners: Any) -> dict[str, Any] | None:
    if not isinstance(owners, list):
        return None
    candidates = [o for o in owners if isinstance(o, dict) and isinstance(o.get("name"), str) and o["name"]]
    for owner in candidates:
        if owner.get("controller") is True:
            return owner
    return candidates[0] if candidates else None
