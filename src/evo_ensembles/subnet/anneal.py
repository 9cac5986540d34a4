"""Annealing schedules: a value going from ``a`` to ``b`` over ``T`` steps (SPEC §4).

Every schedule is written as ``b + (a − b) · r(t)`` where the *remaining fraction* ``r``
falls from 1 at ``t = 0`` to exactly 0 at ``t = T`` (and stays 0 after), so each schedule
starts at ``a`` and ends at ``b`` exactly, bit for bit:

- linear:      r = 1 − t/T                       (a + (b − a)·t/T)
- cosine:      r = ½ (1 + cos(π t/T))            (b + ½(a − b)(1 + cos(π t/T)))
- exp:         r = (e^{−λ t/T} − e^{−λ}) / (1 − e^{−λ}), λ = ``EXP_RATE``: geometric decay
  of the gap to the end value (each step multiplies it by e^{−λ/T}), shifted so the final
  step lands on the end value exactly instead of leaving a residue of e^{−λ}.

Examples:
    >>> [round(anneal_value("cosine", 0.5, 0.0, t, 4), 4) for t in range(6)]
    [0.5, 0.4268, 0.25, 0.0732, 0.0, 0.0]
    >>> anneal_value("exp", 1.0, 0.0, 10, 10)
    0.0
"""

from __future__ import annotations

import math

from ..checks import check_known
from ..errors import UserError

ANNEAL_SCHEDULES = ("linear", "cosine", "exp")
EXP_RATE = 5.0  # the gap shrinks by e^-5 ≈ 0.7% before the exact final step


def check_schedule(kind: str) -> None:
    """Raise :class:`UserError` for an unknown schedule name."""
    check_known(kind, ANNEAL_SCHEDULES, "annealing schedule")


def remaining_fraction(kind: str, t: int, total: int) -> float:
    """``r(t)``: 1.0 at ``t = 0``, exactly 0.0 for ``t >= total``, monotone in between.

    Examples:
        >>> remaining_fraction("linear", 1, 4)
        0.75
    """
    check_schedule(kind)
    if int(total) != total or total < 1:
        raise UserError(f"annealing needs a positive number of steps, got {total}")
    if t >= total:
        return 0.0
    if t <= 0:
        return 1.0
    x = t / total
    if kind == "linear":
        return 1.0 - x
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    floor = math.exp(-EXP_RATE)
    return (math.exp(-EXP_RATE * x) - floor) / (1.0 - floor)


def anneal_value(kind: str, a: float, b: float, t: int, total: int) -> float:
    """The scheduled value at step ``t`` of ``total`` going from ``a`` to ``b``.

    Examples:
        >>> anneal_value("linear", 0.0, 1.0, 1, 4)
        0.25
    """
    r = remaining_fraction(kind, t, total)
    if r == 1.0:  # exact at both ends: b + (a − b) need not round back to a
        return a
    return b if r == 0.0 else b + (a - b) * r
