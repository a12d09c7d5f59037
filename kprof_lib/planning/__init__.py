"""Deciding, purely: which pods a ProfilingConfig selects, how busy they are, and whether to capture.

`reconcile.reconcile(spec, cluster_state)` is the entry point; the other modules are its parts.
No I/O, no clock: everything comes from the arguments.
"""
