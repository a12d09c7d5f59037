"""The ways kprof runs: the `kprof` command line, the operator, the sidecar and local mode. Top layer:
these modules may import everything below; nothing below imports them."""
