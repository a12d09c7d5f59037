"""Sub-commands of `kprof`, one module each (see kprof_lib.runtimes.cli)."""
