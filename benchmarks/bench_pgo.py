"""Benchmark: merging many CPU profiles into one `default.pgo` with kprof_lib.profiles.merge against
`go tool pprof -proto -symbolize=none` on the same files, in the same run: wall time and peak RSS
(the child process's high-water mark, as `bench_pprof_decode.measure` reads it) of one process each
that reads every file and writes the merged profile.

The profiles are synthetic but shaped as one Go service's CPU profiles from many replicas over
time: one program (5,000 functions, 15,000 locations with inlined pairs, a call tree of Go-like
names, as `bench_pprof_decode.synthetic` builds), and each profile a different draw of stacks from
that tree, most of them shared with the other profiles (the hot paths) and some its own, with
samples/count and cpu/nanoseconds values; gzip'd as Go writes them, about `--mb` MB each.

    python -m benchmarks.bench_pgo [--profiles 100] [--mb 1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_pprof_decode import measure, pprof_binary
from kprof_lib.profiles import decode, messages

MERGER = (
    "import sys\n"
    "from kprof_lib.profiles.merge import Merger\n"
    "m = Merger()\n"
    "for name in sys.argv[2:]:\n"
    "    with open(name, 'rb') as f: m.add(f.read(), name)\n"
    "open(sys.argv[1], 'wb').write(m.result())\n"
)
FUNCTIONS = 5_000
LOCATIONS = 15_000
SHARED_STACKS = 20_000


def program(rng: random.Random) -> tuple[messages.Profile, list[list[int]]]:
    """The profile header of one program (sample types, functions, locations, strings) and a
    pool of its stacks (location ids, leaf first) walked from one call tree."""
    message = messages.Profile()
    strings = [""]

    def s(text: str) -> int:
        strings.append(text)
        return len(strings) - 1

    for kind, unit in (("samples", "count"), ("cpu", "nanoseconds")):
        message.sample_type.add(type=s(kind), unit=s(unit))
    message.period_type.type, message.period_type.unit, message.period = s("cpu"), s("nanoseconds"), 10_000_000
    message.mapping.add(
        id=1, memory_start=0x400000, memory_limit=0x2400000, filename=s("/app/server"), build_id=s("b1")
    )
    packages = [f"github.com/acme/svc{i}/internal/pkg{j}" for i in range(40) for j in range(5)]
    for fid in range(1, FUNCTIONS + 1):
        pkg = rng.choice(packages)
        name = s(f"{pkg}.(*T{fid % 97}).Method{fid}")
        message.function.add(
            id=fid, name=name, system_name=name, filename=s(f"{pkg}/file{fid % 13}.go"), start_line=fid % 500 + 1
        )
    for lid in range(1, LOCATIONS + 1):
        location = message.location.add(id=lid, mapping_id=1, address=0x400000 + lid * 16)
        for _ in range(1 if lid % 4 else 2):
            location.line.add(function_id=rng.randint(1, FUNCTIONS), line=rng.randint(1, 900))
    message.string_table.extend(strings)
    children: dict[int, list[int]] = {}
    stacks = []
    for _ in range(SHARED_STACKS * 2):
        stack, node = [], 0
        for _ in range(rng.randint(12, 48)):
            kids = children.setdefault(node, [])
            if not kids or (len(kids) < 6 and rng.random() < 0.3):
                kids.append(rng.randint(1, LOCATIONS))
            node = rng.choice(kids)
            stack.append(node)
        stacks.append(stack[::-1])
    return message, stacks


def one_profile(
    header: messages.Profile, stacks: list[list[int]], target: int, rng: random.Random, number: int
) -> bytes:
    """A profile of about `target` gzip'd bytes: stacks from the shared half of the pool (every
    replica runs the hot paths) and from the other half (its own), with random values."""
    message = messages.Profile()
    message.CopyFrom(header)
    message.time_nanos = 1_796_000_000_000_000_000 + number * 3_600_000_000_000
    message.duration_nanos = 30_000_000_000
    base = len(gzip.compress(header.SerializeToString(), 6))
    samples = messages.Profile()
    size = base
    while size < target:
        batch = messages.Profile()
        for _ in range(2_000):
            pool = SHARED_STACKS if rng.random() < 0.8 else len(stacks)
            count = rng.randint(1, 40)
            batch.sample.add(location_id=stacks[rng.randrange(pool)], value=(count, count * 10_000_000))
        size += len(gzip.compress(batch.SerializeToString(), 6))
        samples.MergeFrom(batch)
    message.MergeFrom(samples)
    return gzip.compress(message.SerializeToString(), 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--mb", type=float, default=1.0, help="gzip'd size of each profile in MB")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, "PPROF_TMPDIR": tempfile.gettempdir(), "GOTOOLCHAIN": "local"}
    go_pprof = pprof_binary()
    print(f"pprof: {go_pprof}\npython: {sys.version.split()[0]}")
    rng = random.Random(13)
    header, stacks = program(rng)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number in range(args.profiles):
            paths.append(Path(folder) / f"cpu-{number:03d}.pprof")
            paths[-1].write_bytes(one_profile(header, stacks, int(args.mb * 1_000_000), rng, number))
        sizes = [p.stat().st_size for p in paths]
        ours_out, theirs_out = Path(folder) / "kprof.pgo", Path(folder) / "pprof.pgo"
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(measure([sys.executable, "-c", MERGER, str(ours_out), *map(str, paths)], env))
            theirs.append(
                measure([go_pprof, "-proto", "-symbolize=none", "-output", str(theirs_out), *map(str, paths)], env)
            )
        # Both sides made the same profile, or the comparison means nothing.
        mine, go = decode(ours_out.read_bytes()), decode(theirs_out.read_bytes())
        assert [mine.total(i) for i in range(2)] == [go.total(i) for i in range(2)], "totals differ"
        assert mine.sample_count == go.sample_count, (mine.sample_count, go.sample_count)
        o_s, t_s = statistics.median(r[0] for r in ours), statistics.median(r[0] for r in theirs)
        o_mem, t_mem = max(r[1] for r in ours) / 2**20, max(r[1] for r in theirs) / 2**20
        print(
            f"inputs: {len(paths)} profiles, {statistics.mean(sizes) / 1e6:.2f} MB gzip'd each "
            f"({sum(sizes) / 1e6:.0f} MB in all); merged: {mine.sample_count} samples, "
            f"{ours_out.stat().st_size / 1e6:.1f} MB (kprof) / {theirs_out.stat().st_size / 1e6:.1f} MB (pprof)"
        )
        print(f"{'':>8} {'kprof':>9} {'pprof':>9} {'ratio':>7}")
        print(f"{'time s':>8} {o_s:>9.2f} {t_s:>9.2f} {o_s / t_s:>7.2f}")
        print(f"{'peak MiB':>8} {o_mem:>9.0f} {t_mem:>9.0f} {o_mem / t_mem:>7.2f}")


if __name__ == "__main__":
    main()
