"""Kubernetes resource quantities ("250m", "123456789n", "120Mi") as floats: CPU in cores, memory in bytes.

The parser follows `kubernetes.utils.parse_quantity` step for step (decimal arithmetic, the same
suffixes and the same quirks, e.g. "ki" refused), so its results equal the client's on every input
(tests/test_quantities.py checks that over generated quantities); it is written here because
importing `kubernetes.utils` loads the whole client, which a pure layer must not. What the client
lets through that no API server ever returns (negative, NaN, infinite) is rejected here. Results are
memoised: requests and limits repeat across replicas, so most look-ups are dictionary hits.

Usage figures do not repeat (every check brings new ones, "123456789n", "104729Ki"), so the forms
the API server writes, whole digits with an SI or binary suffix, are computed with integers: the
client's Decimal product is exact for them (at most 28 significant digits; 9 beside a binary
suffix, whose factor has up to 19), and a Python integer quotient or product converts to the
nearest float just as that exact Decimal does. Everything else takes the Decimal path.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from kprof_lib.state.errors import raise_at

# Powers of the base (1000, or 1024 with a trailing "i") each suffix letter stands for.
_EXPONENTS = {"n": -3, "u": -2, "m": -1, "K": 1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
# The integer forms: suffix -> (the factor, or the divisor for a fraction of a unit; the most
# digits for which the client's Decimal product is exact).
_DECIMAL_DIGITS = 28  # the default Decimal context's precision
_BINARY_DIGITS = 9  # 1024**6 has 19 digits: 9 + 19 = 28
_WHOLE = {
    "": (1, False, _DECIMAL_DIGITS),
    **{suffix: (1000**-power, True, _DECIMAL_DIGITS) for suffix, power in _EXPONENTS.items() if power < 0},
    **{suffix: (1000**power, False, _DECIMAL_DIGITS) for suffix, power in _EXPONENTS.items() if power > 0},
    **{f"{letter}i": (1024 ** _EXPONENTS[letter], False, _BINARY_DIGITS) for letter in "KMGTPE"},
}


@functools.lru_cache(maxsize=65536)
def parse(quantity: str) -> float:
    """The quantity's value as a float; `ValueError` with a short reason if it is not one."""
    if not isinstance(quantity, str):
        raise ValueError(f"must be a quantity string such as '250m' or '64Mi', not {type(quantity).__name__}")
    number = whole(quantity)
    if number is not None:
        return number
    try:
        value = parse_decimal(quantity)
    except (ValueError, ArithmeticError) as error:
        raise ValueError(f"{quantity!r} is not a valid quantity") from error
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValueError(f"{quantity!r} is not a valid quantity (negative, NaN and infinite are not allowed)")
    return number


def whole(quantity: str) -> float | None:
    """`parse` of whole digits with an optional suffix, computed with integers, not memoised (for
    figures that do not repeat); None for any other form, which `parse` then reads."""
    digits = quantity.rstrip("nmuKkMGTPEi")
    suffix = quantity[len(digits) :]
    form = _WHOLE.get(suffix)
    if form is None or not digits.isascii() or not digits.isdigit():
        return None
    factor, divides, most = form
    if len(digits.lstrip("0")) > most:
        return None
    return int(digits) / factor if divides else float(int(digits) * factor)


def parse_at(value: Any, path: str) -> float:
    """`parse` of a quantity read from the cluster state at `path`; `StateError` naming it if the
    value is not a quantity."""
    try:
        return parse(value)
    except (ValueError, TypeError) as error:  # TypeError: unhashable, from the memo
        raise_at(path, str(error))


def parse_decimal(quantity: str) -> Decimal:
    """The quantity as a Decimal, as `kubernetes.utils.parse_quantity` computes it; `ValueError`
    for a number or suffix it does not know."""
    number, suffix = quantity, None
    if len(quantity) >= 2 and quantity[-1] == "i":
        if quantity[-2] in _EXPONENTS:
            number, suffix = quantity[:-2], quantity[-2:]
    elif quantity and quantity[-1] in _EXPONENTS:
        number, suffix = quantity[:-1], quantity[-1]
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"invalid number format: {number}") from None
    if suffix is None:
        return value
    if suffix == "ki":  # SI writes k, binary writes Ki: "ki" is neither
        raise ValueError(f"{quantity} has unknown suffix")
    base = 1024 if suffix.endswith("i") else 1000
    return value * (base ** Decimal(_EXPONENTS[suffix[0]]))
