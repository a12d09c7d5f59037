"""Adapters to the outside world: each implements an execution port (kprof_lib.execution.ports)
against a real system, such as a pod's pprof endpoint, an object store or the Kubernetes API.
The runtimes choose and build them; the executor sees only the ports."""
