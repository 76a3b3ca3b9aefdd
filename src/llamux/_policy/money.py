"""Dollars for budgets: prices in whole micro-dollars, so that every store adds exactly.

An endpoint's ``input_cost`` / ``output_cost`` are USD per million tokens, so one token at
cost ``c`` costs ``c`` micro-dollars. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from .tokens import usage_split

MICRO = 1_000_000
"""Micro-dollars per dollar."""


def micro_usd(dollars: float) -> int:
    """``dollars`` as whole micro-dollars (rounded: a budget is written in cents)."""
    return round(dollars * MICRO)


def price(prompt: int, output: int, input_cost: float | None, output_cost: float | None) -> int:
    """Micro-dollars for ``prompt`` input and ``output`` output tokens at the costs, rounded
    up (never under; the rounding to 6 places first drops float noise such as 590.0000001)."""
    exact = prompt * (input_cost or 0.0) + output * (output_cost or 0.0)
    return max(0, math.ceil(round(exact, 6)))


def usage_price(usage: Any, input_cost: float | None, output_cost: float | None) -> int | None:
    """The price of what ``usage`` (a response, a usage object or dict) reports, its prompt
    and completion tokens priced apart; None when it does not tell them apart."""
    split = usage_split(usage) if usage is not None else None
    return None if split is None else price(split[0], split[1], input_cost, output_cost)


def dollars(micro: int) -> str:
    """``micro`` micro-dollars as ``$0.42`` (to the cent; less than a cent to the micro)."""
    if micro and micro < 10_000:
        return f"${micro / MICRO:.6f}".rstrip("0")
    return f"${micro / MICRO:.2f}"
