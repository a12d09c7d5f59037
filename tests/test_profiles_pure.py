"""The pure parts of kprof_lib.profiles on small hand-built profiles, where the expected values can
be written out whole: pprof's counting rules (flat to the innermost inlined frame, cum once per
sample under recursion), summaries with shares, diffs, flame-tree trimming."""

from __future__ import annotations

import gzip

from kprof_lib.profiles import decode, diff, flame, messages, summary, top


def build(sample_types, stacks, *, inline=None, default=""):
    """A gzip'd profile: `stacks` is [(function names leaf first, values)]; `inline` maps a
    function name to the names inlined into it at its location (innermost first)."""
    message = messages.Profile()
    strings = [""]

    def s(text):
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    for kind, unit in sample_types:
        v = message.sample_type.add()
        v.type, v.unit = s(kind), s(unit)
    if default:
        message.default_sample_type = s(default)
    functions, locations = {}, {}
    for names, values in stacks:
        sample = message.sample.add()
        for name in names:
            if name not in locations:
                location = message.location.add()
                location.id = len(locations) + 1
                for frame in [*(inline or {}).get(name, []), name]:
                    if frame not in functions:
                        f = message.function.add()
                        f.id, f.name = len(functions) + 1, s(frame)
                        functions[frame] = f.id
                    location.line.add().function_id = functions[frame]
                locations[name] = location.id
            sample.location_id.append(locations[name])
        sample.value.extend(values)
    message.string_table.extend(strings)
    return gzip.compress(message.SerializeToString())


CPU = [("samples", "count"), ("cpu", "nanoseconds")]


def rows(profile, sample_type=None):
    return [(e.name, e.flat, e.cum) for e in top.entries(profile, sample_type)]


def test_flat_goes_to_the_innermost_inlined_frame_and_recursion_counts_once():
    data = build(
        CPU,
        [
            (["leaf", "walk", "walk", "walk", "main"], [3, 30]),
            (["walk", "main"], [1, 10]),
            (["hash", "main"], [2, 20]),
        ],
        inline={"hash": ["sha.block"]},
    )
    profile = decode(data)
    assert profile.default_sample_type == "cpu"
    assert rows(profile) == [
        ("leaf", 30, 30),
        ("sha.block", 20, 20),
        ("walk", 10, 40),
        ("hash", 0, 20),
        ("main", 0, 60),
    ]
    assert rows(profile, "samples")[0] == ("leaf", 3, 3)


def test_summary_shares_and_an_empty_profile():
    full = decode(build(CPU, [(["a", "main"], [3, 30]), (["b", "main"], [1, 10])]))
    empty = decode(build(CPU, []))
    result = summary.summarize({"cpu": ("cpu.pprof", 10, full), "mutex": ("mutex.pprof", 5, empty)}, n=2)
    cpu = result["profiles"]["cpu"]["sampleTypes"]["cpu"]
    assert cpu == {
        "unit": "nanoseconds",
        "total": 40,
        "topFlat": [
            {"name": "a", "flat": 30, "cum": 30, "flatShare": 0.75, "cumShare": 0.75},
            {"name": "b", "flat": 10, "cum": 10, "flatShare": 0.25, "cumShare": 0.25},
        ],
        "topCum": [
            {"name": "main", "flat": 0, "cum": 40, "flatShare": 0.0, "cumShare": 1.0},
            {"name": "a", "flat": 30, "cum": 30, "flatShare": 0.75, "cumShare": 0.75},
        ],
    }
    assert result["profiles"]["mutex"]["sampleTypes"]["cpu"] == {"unit": "nanoseconds", "total": 0, "topFlat": [], "topCum": []}
    assert summary.top_functions(result) == {"cpu": [("a", 0.75), ("b", 0.25)], "mutex": []}


def test_diff_per_type():
    base = {
        "cpu": decode(build(CPU, [(["a", "main"], [1, 10]), (["b", "main"], [3, 30])])),
        "heap": decode(build([("inuse_space", "bytes")], [(["alloc", "main"], [100])])),
        "goroutine": decode(build([("goroutine", "count")], [(["runtime.gopark", "serve", "main"], [2])])),
    }
    incident = {
        "cpu": decode(build(CPU, [(["a", "main"], [3, 30]), (["b", "main"], [1, 10])])),
        "heap": decode(build([("inuse_space", "bytes")], [(["alloc", "main"], [900]), (["cache", "main"], [50])])),
        "goroutine": decode(
            build([("goroutine", "count")], [(["runtime.gopark", "serve", "main"], [2]), (["runtime.gopark", "leak", "main"], [40])])
        ),
        "block": decode(build([("contentions", "count"), ("delay", "nanoseconds")], [(["x"], [1, 5])])),
    }
    result = diff.compare(base, incident)
    assert result["missing"] == ["block"]
    assert result["types"]["cpu"]["growth"] == [{"name": "a", "base": 0.25, "incident": 0.75, "delta": 0.5}]
    assert result["types"]["heap"]["growth"] == [
        {"name": "alloc", "base": 100, "incident": 900, "delta": 800},
        {"name": "cache", "base": 0, "incident": 50, "delta": 50},
    ]
    assert result["types"]["goroutine"]["growth"] == [
        {"stack": ["main", "leak", "runtime.gopark"], "base": 0, "incident": 40, "delta": 40}
    ]
    assert diff.top_grower(result) == ("cpu", "a")
    assert diff.top_grower({"types": {"goroutine": result["types"]["goroutine"]}}) == ("goroutine", "leak")


def test_flame_tree_folds_small_frames_and_keeps_to_its_budget():
    stacks = [(["hot", "main"], [0, 900]), (["tiny", "main"], [0, 1])] + [([f"f{i}", "wide"], [0, 10]) for i in range(50)]
    profile = decode(build(CPU, stacks))
    tree = flame.tree(profile, min_fraction=0.002)
    names = tree["names"]
    root = tree["root"]
    assert tree["total"] == 1401 and root[1] == 1401
    top_level = [(names[c[0]], c[1]) for c in root[2]]
    assert top_level == [("main", 901), ("wide", 500)]
    # "tiny" (1 of 1401) is folded into main, whose value still counts it.
    assert [(names[c[0]], c[1]) for c in root[2][0][2]] == [("hot", 900)]
    small = flame.tree(profile, max_nodes=10)

    def count(node):
        return 1 + sum(count(c) for c in node[2])

    assert count(small["root"]) <= 10
