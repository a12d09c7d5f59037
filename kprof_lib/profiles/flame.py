"""Flame-graph trees from a profile: every sample's stack merged root first into one tree whose
node values are cumulative, trimmed so that a page stays small whatever the profile's size.
Pure; `kprof_lib.profiles.page` draws the trees.

A tree is serialised compactly for the page: {"names": [...], "root": [name index, value,
[children...]]}, children largest first; frames below `min_fraction` of the total are folded into
their parent (whose value still counts them), and at most `max_nodes` nodes are kept.
"""

from __future__ import annotations

from typing import Any

from kprof_lib.profiles.model import Profile

MIN_FRACTION = 0.002
MAX_NODES = 4000
ROOT = "root"


def tree(
    profile: Profile,
    sample_type: str | None = None,
    *,
    min_fraction: float = MIN_FRACTION,
    max_nodes: int = MAX_NODES,
) -> dict[str, Any]:
    index = profile.sample_type_index(sample_type)
    locations = profile.locations
    # node: [function index, value, {function index: child}]
    root: list = [-1, 0, {}]
    for stack, value in profile.stacks(index):
        if not value:
            continue
        root[1] += value
        node = root
        for location in reversed(stack):
            for function in reversed(locations[location]):
                children = node[2]
                child = children.get(function)
                if child is None:
                    child = children[function] = [function, 0, {}]
                child[1] += value
                node = child
    total = abs(root[1])
    cutoff = total * min_fraction
    names: list[str] = [ROOT]
    name_ids: dict[int, int] = {}
    budget = [max_nodes]

    def keep(node: list) -> list:
        budget[0] -= 1
        kids = sorted((c for c in node[2].values() if abs(c[1]) >= cutoff), key=lambda c: -abs(c[1]))
        out = []
        for child in kids:
            if budget[0] <= 0:
                break
            function = child[0]
            if function not in name_ids:
                name_ids[function] = len(names)
                names.append(profile.function_names[function])
            out.append(keep(child))
        return [0 if node[0] < 0 else name_ids[node[0]], node[1], out]

    # Depth-first with a budget: wide trees keep their biggest branches whole.
    serialised = keep(root)
    return {
        "sampleType": profile.sample_types[index].type,
        "unit": profile.sample_types[index].unit,
        "total": root[1],
        "names": names,
        "root": serialised,
    }
