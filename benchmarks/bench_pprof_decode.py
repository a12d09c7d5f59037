"""Benchmark: the cost of reading a big pprof profile with kprof_lib.profiles (decode + the top
table) against `go tool pprof -top` on the same file, measured in the same run: wall time and peak
memory (the process's max RSS) of one process each that reads the file and prints the top 10.

The profiles are synthetic but shaped like Go's CPU profiles: a call tree of Go-like function names
(inlined frames included), each sample a path from the root to a random depth of 12-48 frames, two
values (samples/count, cpu/nanoseconds); gzip'd as Go writes them. `--sizes` are the gzip'd sizes
in MB. The pprof binary is run directly (`go tool -n pprof` names it), so the go command's own
start-up is not counted against it.

    python -m benchmarks.bench_pprof_decode [--sizes 10,60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from kprof_lib.profiles import messages

READER = (
    "import sys\n"
    "from kprof_lib.profiles import decode, top\n"
    "p = decode(open(sys.argv[1], 'rb').read())\n"
    "i = p.sample_type_index()\n"
    # pprof's -nodefraction: nodes whose cum is below 0.5% of the total are not shown.
    "cut = abs(int(p.total(i) * 0.005))\n"
    "for e in [e for e in top.entries(p) if abs(e.cum) >= cut][:10]: print(e.flat, e.cum, e.name)\n"
)


def synthetic(target_gzip_bytes: int, seed: int = 13) -> bytes:
    """A gzip'd CPU-like profile of about `target_gzip_bytes`."""
    rng = random.Random(seed)
    message = messages.Profile()
    strings = [""]

    def s(text: str) -> int:
        strings.append(text)
        return len(strings) - 1

    for kind, unit in (("samples", "count"), ("cpu", "nanoseconds")):
        v = message.sample_type.add()
        v.type, v.unit = s(kind), s(unit)
    message.period_type.type, message.period_type.unit, message.period = s("cpu"), s("nanoseconds"), 10_000_000
    message.duration_nanos = 30_000_000_000
    packages = [f"github.com/acme/svc{i}/internal/pkg{j}" for i in range(40) for j in range(5)]
    functions = 20_000
    for fid in range(1, functions + 1):
        f = message.function.add()
        pkg = rng.choice(packages)
        f.id, f.name = fid, s(f"{pkg}.(*T{fid % 97}).Method{fid}")
        f.system_name, f.filename, f.start_line = f.name, s(f"{pkg}/file{fid % 13}.go"), fid % 500
    # Locations: one per function plus inlined pairs, as Go emits for inlined calls.
    locations = 60_000
    for lid in range(1, locations + 1):
        loc = message.location.add()
        loc.id, loc.address = lid, 0x400000 + lid * 16
        for _ in range(1 if lid % 4 else 2):
            line = loc.line.add()
            line.function_id, line.line = rng.randint(1, functions), rng.randint(1, 900)
    # A call tree: every sample walks it from the root, so stacks share prefixes as real ones do.
    children: dict[int, list[int]] = {}
    message.string_table.extend(strings)
    # Serialised protobuf messages concatenate into their merge, and gzip's window is 32 KiB, so the
    # sum of the batches' gzip'd sizes is what the whole file will weigh, to within a few percent.
    gzipped = len(gzip.compress(message.SerializeToString(), 6))
    while gzipped < target_gzip_bytes:
        batch = messages.Profile()
        for _ in range(20_000):
            depth = rng.randint(12, 48)
            stack, node = [], 0
            for _ in range(depth):
                kids = children.setdefault(node, [])
                if not kids or (len(kids) < 6 and rng.random() < 0.3):
                    kids.append(rng.randint(1, locations))
                node = rng.choice(kids)
                stack.append(node)
            sample = batch.sample.add()
            sample.location_id.extend(reversed(stack))  # leaf first
            count = rng.randint(1, 40)
            sample.value.extend((count, count * 10_000_000))
        gzipped += len(gzip.compress(batch.SerializeToString(), 6))
        message.MergeFrom(batch)
    return gzip.compress(message.SerializeToString(), 6)


# Peak RSS is read by a small intermediate process: Linux carries a process's RSS high-water mark
# across fork and exec, so a child started straight from this (large) process would report ours.
_TIMER = (
    "import os, sys, time\n"
    "t = time.perf_counter(); pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.dup2(os.open(os.devnull, os.O_WRONLY), 2); os.execv(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "print(f'{code} {time.perf_counter() - t} {usage.ru_maxrss * 1024}', file=sys.stderr)\n"
)


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one run of `command`."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", _TIMER, *command], capture_output=True, text=True, env=env, check=False
    )
    code, wall, rss = done.stderr.split()[-3:]
    if int(code) != 0:
        raise RuntimeError(f"{command[0]} failed with {code}")
    return float(wall), int(rss), done.stdout


def pprof_binary() -> str:
    done = subprocess.run(["go", "tool", "-n", "pprof"], capture_output=True, text=True, check=True, timeout=600)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,60", help="gzip'd profile sizes in MB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PPROF_TMPDIR": tempfile.gettempdir(), "GOTOOLCHAIN": "local"}
    go_pprof = pprof_binary()
    print(f"pprof: {go_pprof}\npython: {sys.version.split()[0]}")
    header = (
        f"{'profile':>26} {'kprof ms':>9} {'pprof ms':>9} {'time x':>7} "
        f"{'kprof MiB':>10} {'pprof MiB':>10} {'mem x':>6}"
    )
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for size in (float(x) for x in args.sizes.split(",")):
            data = synthetic(int(size * 1_000_000))
            path = Path(folder) / f"cpu-{size:g}MB.pprof"
            path.write_bytes(data)
            raw = len(gzip.decompress(data))
            ours, theirs = [], []
            for _ in range(args.repeat):
                ours.append(measure([sys.executable, "-c", READER, str(path)], env))
                theirs.append(measure([go_pprof, "-top", "-nodecount=10", str(path)], env))
            # The same top function on both sides, or the comparison means nothing.
            our_top = ours[0][2].splitlines()[0].split(" ", 2)[2]
            assert our_top in theirs[0][2], (our_top, theirs[0][2][-800:])
            o_ms, t_ms = statistics.median(r[0] for r in ours) * 1e3, statistics.median(r[0] for r in theirs) * 1e3
            o_mem, t_mem = max(r[1] for r in ours) / 2**20, max(r[1] for r in theirs) / 2**20
            label = f"{len(data) / 1e6:.1f} MB gz / {raw / 1e6:.0f} MB raw"
            rows.append(
                f"{label:>26} {o_ms:>9.0f} {t_ms:>9.0f} {o_ms / t_ms:>7.2f} "
                f"{o_mem:>10.0f} {t_mem:>10.0f} {o_mem / t_mem:>6.2f}"
            )
        print(header)
        print("\n".join(rows))


if __name__ == "__main__":
    main()
