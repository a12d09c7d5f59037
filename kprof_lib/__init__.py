"""kprof: capture pprof profiles from Go pods when they misbehave or on a schedule.

The public face of the library. `reconcile(spec, cluster_state)` is a pure function that returns a
`Plan` (what to do about every pod, and why); invalid input raises `SpecError` or `StateError`,
both `ValueError`s that list every problem with its path.

    from kprof_lib import reconcile
    plan = reconcile(config["spec"], {"now": "2026-01-02T03:04:05Z", "pods": pods, "podMetrics": metrics})
    print(plan.recap())
"""

from kprof_lib.planning.plan import Plan
from kprof_lib.planning.reconcile import reconcile
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.validation import validate_document, validate_spec
from kprof_lib.state.errors import StateError

__version__ = "0.1.0"

__all__ = ["Plan", "SpecError", "StateError", "__version__", "reconcile", "validate_document", "validate_spec"]
