"""kprof's quantity parser against the kubernetes client's `parse_quantity` over generated
quantities: the same value, or a ValueError from both, on every input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity

from kprof_lib.state import quantities

SUFFIXES = [
    "",
    "n",
    "u",
    "m",
    "k",
    "K",
    "M",
    "G",
    "T",
    "P",
    "E",
    "ki",
    "Ki",
    "Mi",
    "Gi",
    "Ti",
    "Pi",
    "Ei",
    "mi",
    "ni",
    "i",
    "Q",
    "Qi",
    "e",
]
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.from_regex(r"\A[+-]?[0-9_]{0,6}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.sampled_from(["", ".", "NaN", "nan", "Infinity", "inf", "-0", " 1", "1 ", "0x10", "1_000"]),
)
quantity_strings = st.one_of(st.tuples(numbers, st.sampled_from(SUFFIXES)).map("".join), st.text(max_size=12))


def reference(quantity: str) -> float | str:
    """What the client's parser gives, through the same range checks as kprof's."""
    try:
        number = float(parse_quantity(quantity))
    except (ValueError, ArithmeticError):
        return "invalid"
    if math.isnan(number) or math.isinf(number) or number < 0:
        return "invalid"
    return number


def ours(quantity: str) -> float | str:
    try:
        return quantities.parse.__wrapped__(quantity)
    except ValueError:
        return "invalid"


@settings(max_examples=3000, deadline=None)
@given(quantity_strings)
def test_equal_to_the_kubernetes_client_on_every_generated_quantity(quantity):
    assert ours(quantity) == reference(quantity)


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("250m", 0.25),
        ("1", 1.0),
        ("123456789n", 0.123456789),
        ("120Mi", 120 * 2**20),
        ("1e3", 1000.0),
        ("2k", 2000.0),
        ("1Ki", 1024.0),
    ],
)
def test_known_values(quantity, value):
    assert quantities.parse(quantity) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["1ki", "-1", "NaN", "Infinity", "12QQ", "", "Mi"])
def test_refused(bad):
    with pytest.raises(ValueError):
        quantities.parse(bad)
