"""Kubernetes resource quantities ("250m", "123456789n", "120Mi") as floats: CPU in cores, memory in bytes.

Parsing is `kubernetes.utils.parse_quantity`'s (a pure helper); what it lets through that no API
server ever returns (negative, NaN, infinite) is rejected here. Results are memoised: requests and
limits repeat across replicas, so most look-ups are dictionary hits.
"""

from __future__ import annotations

import functools
import math

from kubernetes.utils import parse_quantity


@functools.lru_cache(maxsize=65536)
def parse(quantity: str) -> float:
    """The quantity's value as a float; `ValueError` with a short reason if it is not one."""
    if not isinstance(quantity, str):
        raise ValueError(f"must be a quantity string such as '250m' or '64Mi', not {type(quantity).__name__}")
    try:
        value = parse_quantity(quantity)
    except (ValueError, ArithmeticError) as error:
        raise ValueError(f"{quantity!r} is not a valid quantity") from error
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValueError(f"{quantity!r} is not a valid quantity (negative, NaN and infinite are not allowed)")
    return number
