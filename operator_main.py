"""Entry point of the kprof operator container: the same as `kprof run`."""

import sys

from kprof_lib.runtimes.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
