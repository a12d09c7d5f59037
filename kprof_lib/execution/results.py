"""What carrying out a plan did, per pod and per profile, as plain data (Ansible-like: a status,
a reason, the figures), plus the history updates the caller must persist."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# Pod statuses
CAPTURED = "captured"  # at least one profile stored (or spooled to be stored)
FAILED = "failed"  # a capture was due and no profile could be kept
SKIPPED = "skipped"  # nothing was due (the plan said none), or another capture of the pod was running
PLANNED = "planned"  # check mode: what would be captured
CANCELLED = "cancelled"  # the process was stopping: no profile kept, none failed

# Profile statuses
STORED = "stored"
SPOOLED = "spooled"  # kept in the local spool; uploaded when the store is back
# (CANCELLED: not started, or cut, because the process was stopping; nothing of it was stored)


@dataclass
class ProfileResult:
    type: str
    status: str  # stored | spooled | failed | cancelled | planned
    bytes: int = 0
    uri: str | None = None
    key: str | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    target: str | None = None


# Slots: a plan of 100,000 pods has a result for each, made anew every check.
@dataclass(slots=True)
class PodResult:
    namespace: str
    pod: str
    status: str
    reason: str
    reasons: list[str] = field(default_factory=list)
    message: str | None = None
    profiles: list[ProfileResult] = field(default_factory=list)
    uid: str | None = None  # the pod's, when the plan knew it (for Events on the pod)
    alert: str | None = None  # reason alert: the alert's name
    request_value: str | None = None  # reason requested: the capture-now value served

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass
class ExecutionReport:
    """One execute() call: a result per pod of the plan, in the plan's order."""

    now: str
    check_mode: bool
    results: list[PodResult]
    # "namespace/pod" -> fields to set: RFC 3339 times and strings, alertFingerprints a list.
    history_updates: dict[str, dict[str, Any]]

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def profiles(self) -> list[ProfileResult]:
        return [profile for result in self.results for profile in result.profiles]

    @property
    def profiles_kept(self) -> int:
        """Profiles captured and stored or spooled: what status.totalProfiles counts."""
        return sum(1 for p in self.profiles if p.status in (STORED, SPOOLED))

    @property
    def profiles_stored(self) -> int:
        """Profiles that reached the store: what status.totalUploads counts."""
        return sum(1 for p in self.profiles if p.status == STORED)

    def recap(self) -> str:
        """`captured: 2  failed: 1  skipped: 7  profiles: 6 stored, 1 spooled, 1 failed`."""
        counts = Counter(result.status for result in self.results)
        shown = [status for status in (PLANNED, CAPTURED, FAILED, CANCELLED, SKIPPED) if counts[status]]
        pods = "  ".join(f"{status}: {counts[status]}" for status in shown)
        by_status = Counter(profile.status for profile in self.profiles)
        profiles = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        return (pods or "nothing to do") + (f"  profiles: {profiles}" if profiles else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "checkMode": self.check_mode,
            "results": [asdict(result) for result in self.results],
            "historyUpdates": self.history_updates,
        }
