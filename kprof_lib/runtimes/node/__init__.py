"""The node agent (`kprof node`): the operator's check cycle run per node, for clusters past what
one replica serves (`agent`, `settings`), and the elected agent that folds the per-node reports
into each ProfilingConfig's status (`folder`)."""
