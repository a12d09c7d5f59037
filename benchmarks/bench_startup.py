"""Benchmark: start-up of `kprof validate FILE` (a fresh interpreter that imports kprof, parses its
flags, reads and validates one ProfilingConfig) against a fresh interpreter that only imports
jsonschema (`python -c "import jsonschema"`: Python's own start-up plus the one library validation
cannot do without), measured in the same run, alternating, best of N each. Also prints the same
ratio for `kprof --version` and `import kprof_lib`, and the heavy packages each one loads.

    python -m benchmarks.bench_startup [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "profilingconfigs" / "both.yaml"
HEAVY = ("kubernetes", "boto3", "botocore", "apscheduler", "opentelemetry")
BASELINE = [sys.executable, "-c", "import jsonschema"]
CASES = {
    "kprof validate": [sys.executable, "-m", "kprof_lib.runtimes.cli", "validate", str(CONFIG)],
    "kprof --version": [sys.executable, "-m", "kprof_lib.runtimes.cli", "--version"],
    "import kprof_lib": [sys.executable, "-c", "import kprof_lib"],
}


def once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def heavy_loaded(command: list[str]) -> list[str]:
    """The heavy packages a case loads: the same run with a line printing sys.modules at exit."""
    probe = (
        "import atexit, json, sys\natexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
    )
    if command[1] == "-m":
        code = probe + (
            f"import runpy\nsys.argv = {command[2:]!r}\nrunpy.run_module({command[2]!r}, run_name='__main__')"
        )
    else:
        code = probe + command[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    return sorted({name.split(".")[0] for name in loaded} & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    once(BASELINE)  # warm the file cache for both sides
    for command in CASES.values():
        once(command)
    baseline = []
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeat):
        baseline.append(once(BASELINE))
        for name, command in CASES.items():
            times[name].append(once(command))
    base = min(baseline)
    print(f"python -c 'import jsonschema': {base * 1000:.0f} ms (best of {args.repeat})")
    for name, command in CASES.items():
        best = min(times[name])
        loaded = ", ".join(heavy_loaded(command)) or "none"
        print(f"{name}: {best * 1000:.0f} ms  ratio {best / base:.2f}  heavy packages loaded: {loaded}")


if __name__ == "__main__":
    main()
