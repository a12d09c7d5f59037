"""The operator's "pgo" runs (spec.pgo): for each workload the config names, merge the CPU
profiles of its captures of the last `days` days (`runtimes.pgo.build`, reading the config's own
destination: its S3 bucket and prefix, or the operator's local directory) and store the result as
`<prefix>/pgo/<namespace>/<workload>/default.pgo` with a `summary.json` beside it, replacing the
previous ones, so a CI pipeline always finds the newest under one key.

Only the leader writes. A config that is invalid, or asks for a namespace the operator does not
let it reach (`planning.tenancy`), writes nothing (its check runs report why). A workload with no
capture to merge keeps its previous profile; one failure never stops the other workloads. Runs
of one config never overlap (the scheduler's lock), and the profile is stored before its summary,
so a summary is never there before the profile it describes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kprof_lib.adapters.captures import CaptureError
from kprof_lib.execution import keys
from kprof_lib.execution.ports import StoreError
from kprof_lib.planning import tenancy
from kprof_lib.runtimes import pgo, wiring
from kprof_lib.runtimes.operator.scheduling import Run
from kprof_lib.spec import validation
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.model import Spec

log = logging.getLogger("kprof.operator.pgo")

PROFILE_TYPE = "application/octet-stream"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Written:
    """What one run did for one workload: the profile's URI, or why there is none."""

    workload: str  # namespace/name
    uri: str | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None


class PgoWriter:
    """Runs the "pgo" jobs of every config: `writer(run)` returns what it did per workload."""

    def __init__(
        self,
        *,
        configs: Callable[[str], dict[str, Any] | None],
        stores: wiring.Stores,
        is_leader: Callable[[], bool],
        policy: tenancy.Policy | None = None,
    ):
        self.configs = configs
        self.stores = stores
        self.is_leader = is_leader
        self.policy = policy or tenancy.Policy()

    def __call__(self, run: Run) -> list[Written]:
        if not self.is_leader():
            return []
        config = self.configs(run.key)
        if config is None or (run.uid and config["metadata"].get("uid") != run.uid):
            return []
        try:
            spec = tenancy.scope(
                validation.validate_spec(config.get("spec")), config["metadata"]["namespace"], self.policy
            )
        except SpecError as error:
            log.warning("pgo of %s skipped: %s", run.key, error, extra={"config": run.key, "action": "pgo-skipped"})
            return []
        if spec.pgo is None:
            return []
        return [self._one(run, spec, namespace, workload) for namespace, workload in spec.pgo.workloads]

    def _one(self, run: Run, spec: Spec, namespace: str, workload: str) -> Written:
        assert spec.pgo is not None
        name = f"{namespace}/{workload}"
        extra = {"config": run.key, "pod": name, "action": "pgo"}
        layout = spec.key_layout
        selection = pgo.Selection(
            namespace,
            workload,
            spec.pgo.reasons,
            since=run.now - dt.timedelta(days=spec.pgo.days),
            key_layout=layout.layout if layout.template is None else "template",
        )
        s3 = spec.get("s3Config")
        destination = f"s3://{s3['bucket']}/{layout.prefix}" if s3 else str(self.stores.local_dir)
        try:
            built = pgo.build(
                destination,
                selection,
                endpoint=(s3 or {}).get("endpoint"),
                region=(s3 or {}).get("region"),
            )
        except (pgo.PgoError, CaptureError) as error:
            log.warning("pgo %s: %s (the previous profile, if any, is kept)", name, error, extra=extra)
            return Written(name, error=str(error))
        folder = pgo.pgo_prefix(
            keys.sanitize_prefix(layout.prefix), keys.sanitize_component(namespace), keys.sanitize_component(workload)
        )
        summary = built.summary(selection, run.now)
        metadata = {"namespace": namespace, "workload": workload, "profiles": str(len(built.used))}
        store = self.stores.documents_for(spec)
        try:
            stored = store.replace(
                folder + pgo.PROFILE_NAME, built.data, metadata=metadata, tags={}, content_type=PROFILE_TYPE
            )
            body = json.dumps(summary, indent=1).encode()
            store.replace(folder + pgo.SUMMARY_NAME, body, metadata=metadata, tags={}, content_type=JSON_TYPE)
        except StoreError as error:
            log.warning("pgo %s: storing failed: %s", name, error, extra=extra)
            return Written(name, error=str(error))
        log.info(
            "pgo %s: %d CPU profiles from %s to %s, %.1f CPU seconds -> %s",
            name,
            len(built.used),
            built.first,
            built.last,
            built.cpu_seconds,
            stored.uri,
            extra=extra,
        )
        return Written(name, uri=stored.uri, summary=summary)
