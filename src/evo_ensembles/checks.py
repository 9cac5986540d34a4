"""Value checks shared by configs, descriptors and samplers: one rule, one message each.

Every check raises :class:`~evo_ensembles.errors.UserError` naming the value the user set
(a CLI flag such as ``--density`` when the value came from a flag), and returns the value
so it can be used inline.

Examples:
    >>> check_fraction(0.5, "--density")
    0.5
    >>> check_fraction(0.0, "--density")
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.UserError: --density must be in (0, 1], got 0.0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .errors import UserError


def _fail(name: str, rule: str, value: Any) -> None:
    raise UserError(f"{name} must be {rule}, got {value!r}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, "a number", value)
    if not math.isfinite(float(value)):
        _fail(name, "a finite number", value)
    return value


def check_finite(value: Any, name: str) -> float:
    """A finite number (no nan, no inf)."""
    return _number(value, name)


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0."""
    if not _number(value, name) > 0:
        _fail(name, "> 0", value)
    return value


def check_nonneg(value: Any, name: str) -> float:
    """A finite number >= 0."""
    if not _number(value, name) >= 0:
        _fail(name, ">= 0", value)
    return value


def check_fraction(value: Any, name: str) -> float:
    """A fraction in (0, 1] (a density, a share of the data)."""
    if not 0 < _number(value, name) <= 1:
        _fail(name, "in (0, 1]", value)
    return value


def check_probability(value: Any, name: str) -> float:
    """A probability in [0, 1]."""
    if not 0 <= _number(value, name) <= 1:
        _fail(name, "in [0, 1]", value)
    return value


def check_open_fraction(value: Any, name: str) -> float:
    """A share strictly between 0 and 1 (a dropout rate that keeps and drops, OneCycle's warm-up share)."""
    v = _number(value, name)
    if not 0.0 < v < 1.0:
        _fail(name, "in (0, 1)", value)
    return v


def check_split_fraction(value: Any, name: str) -> float:
    """A fraction in [0, 1) (a held-out share that leaves something to train on)."""
    if not 0 <= _number(value, name) < 1:
        _fail(name, "in [0, 1)", value)
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, "an integer", value)
    return value


def check_positive_int(value: Any, name: str) -> int:
    """An integer >= 1."""
    if _integer(value, name) < 1:
        _fail(name, ">= 1", value)
    return value


def check_nonneg_int(value: Any, name: str) -> int:
    """An integer >= 0."""
    if _integer(value, name) < 0:
        _fail(name, ">= 0", value)
    return value


def check_choice(value: Any, choices: Sequence[Any], name: str) -> Any:
    """One of ``choices``."""
    if value not in choices:
        raise UserError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def partition_parts(density: Any) -> int | None:
    """The partition rule, in one place: ``k`` when ``density`` is 1/k for an integer k >= 2
    (k disjoint masks covering every weight, e.g. a mask and its anti-mask at 0.5), else ``None``.

    Examples:
        >>> partition_parts(0.25), partition_parts(1 / 3), partition_parts(0.3), partition_parts(1.0)
        (4, 3, None, None)
    """
    if isinstance(density, bool) or not isinstance(density, numbers.Real):
        return None
    d = float(density)
    if not (math.isfinite(d) and 0 < d <= 1):
        return None
    k = round(1.0 / d)
    return k if k >= 2 and abs(d * k - 1.0) <= 1e-9 else None


def check_known(value: Any, choices: Sequence[Any], what: str) -> Any:
    """``value`` is one of ``choices``, said as a name lookup: "unknown <what> 'x'; choose from a, b"
    (:func:`check_choice` says "<name> must be one of (...)", for settings)."""
    bools_ok = any(isinstance(c, bool) for c in choices)  # else True would pass as 1
    if value not in choices or (isinstance(value, bool) and not bools_ok):
        raise UserError(f"unknown {what} {value!r}; choose from {', '.join(str(c) for c in choices)}")
    return value


def check_top_k(top_k: Any, popsize: Any, name: str = "top-K", population: str = "the population size") -> int:
    """K kept of N candidates: an integer in [1, N]."""
    _integer(top_k, name)
    if not 1 <= top_k <= popsize:
        raise UserError(f"{name} must be between 1 and {population} ({popsize}), got {top_k!r}")
    return top_k


Check = Callable[[Any, str], Any]


def satisfies(check: Check, value: Any) -> bool:
    """Whether ``value`` passes ``check`` (for a vocabulary that reports otherwise, e.g. the
    checkpoint schemas of :mod:`evo_ensembles.schema`, which are built from these rules)."""
    try:
        check(value, "value")
    except UserError:
        return False
    return True

__all__ = [
    "Check",
    "partition_parts",
    "satisfies",
    "check_choice",
    "check_known",
    "check_finite",
    "check_fraction",
    "check_nonneg",
    "check_nonneg_int",
    "check_open_fraction",
    "check_positive",
    "check_positive_int",
    "check_probability",
    "check_split_fraction",
    "check_top_k",
]
