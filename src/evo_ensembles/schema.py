"""Schemas of the JSON records the toolkit reads back: checkpoint headers, agent records,
descriptor files, resume states and caches.

A record read from disk may have been written by another version, edited by hand, or
damaged. Every reader checks it here, once, so a wrong type or a missing key becomes one
clear :class:`~evo_ensembles.errors.CheckpointError` naming the file and the key, instead
of a traceback (or a silently wrong run) somewhere downstream.

Examples:
    >>> AGENT_RECORD.check({"format": "x", "env": "gym:CartPole-v1", "preset": {"name": "classic"}}, "a.zip")["env"]
    'gym:CartPole-v1'
    >>> MODEL_RECORD.check({"model": "lenet5", "num_classes": "ten"}, "parent.safetensors")
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.CheckpointError: parent.safetensors: 'num_classes' must be a positive integer, got 'ten'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .checks import check_finite, check_nonneg_int, check_positive_int, satisfies
from .errors import CheckpointError


class Kind:
    """A named test on one JSON value (``name`` reads as "must be <name>")."""

    def __init__(self, name: str, test: Callable[[Any], bool]) -> None:
        self.name, self._test = name, test

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit (``None`` when it does)."""
        return None if self._test(value) else f"must be {self.name}, got {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


STR = Kind("a string", lambda v: isinstance(v, str))
BOOL = Kind("true or false", lambda v: isinstance(v, bool))
DICT = Kind("a JSON object", lambda v: isinstance(v, dict))
LIST = Kind("a list", lambda v: isinstance(v, list))
# The numeric kinds are checks.py's rules (one vocabulary), reported as schema problems.
COUNT = Kind("a non-negative integer", lambda v: satisfies(check_nonneg_int, v))
POSITIVE = Kind("a positive integer", lambda v: satisfies(check_positive_int, v))
FINITE = Kind("a finite number", lambda v: satisfies(check_finite, v))
REAL = Kind("a number", _real)  # NaN allowed: a diverged child's score is a valid record


def list_of(kind: Kind, *, min_size: int = 0) -> Kind:
    """A list of at least ``min_size`` items, each ``kind``."""
    items = f"{kind.name.removeprefix('a ').removeprefix('an ')}s"
    name = f"a list of {items}" if not min_size else f"a list of at least {min_size} {items}"
    return Kind(name, lambda v: isinstance(v, list) and len(v) >= min_size
                and all(kind.problem(x) is None for x in v))


def optional(kind: Kind) -> Kind:
    """``kind`` or null."""
    return Kind(f"{kind.name} or null", lambda v: v is None or kind.problem(v) is None)


class Schema(Kind):
    """A JSON object with ``required`` and ``optional`` keys of given kinds; other keys are
    allowed (records grow between versions) unless ``closed``."""

    def __init__(self, required: Mapping[str, Kind] | None = None,
                 optional: Mapping[str, Kind] | None = None, *, closed: bool = False) -> None:
        super().__init__("a JSON object", lambda v: isinstance(v, dict))
        self.required, self.optional, self.closed = dict(required or {}), dict(optional or {}), closed

    def problem(self, value: Any) -> str | None:
        found = self._find(value)
        if found is None:
            return None
        path, why = found
        return f"{'.'.join(path)!r} {why}" if path else why

    def _find(self, value: Any) -> tuple[list[str], str] | None:
        """The key path to the first value that does not fit, and why."""
        if not isinstance(value, dict):
            return [], f"must be a JSON object, got {_short(value)}"
        if self.closed and (unknown := sorted(set(value) - set(self.required) - set(self.optional))):
            return [str(unknown[0])], f"is not a known key (known: {', '.join([*self.required, *self.optional])})"
        for key, kind in [*self.required.items(), *self.optional.items()]:
            if key not in value:
                if key in self.required:
                    return [key], "is missing"
                continue
            if isinstance(kind, Schema):
                found = kind._find(value[key])
                if found is not None:
                    return [key, *found[0]], found[1]
            elif (why := kind.problem(value[key])) is not None:
                return [key], why
        return None

    def check(self, value: Any, source: str) -> dict[str, Any]:
        """``value`` itself when it fits; otherwise one :class:`CheckpointError` naming ``source``."""
        why = self.problem(value)
        if why is not None:
            raise CheckpointError(f"{source}: {why}")
        return value


# A model checkpoint's header record (parents and children; every key is optional because
# a bare state dict with --model is a valid parent too).
MODEL_RECORD = Schema(optional={"model": STR, "input_shape": list_of(POSITIVE), "num_classes": POSITIVE,
                                "train": DICT, "history": LIST, "run_key": DICT})

# The progress record of an interrupted training (train_state.safetensors).
TRAIN_STATE = Schema(required={"epoch": COUNT, "config": DICT, "optimizer": DICT},
                     optional={"history": LIST})

# The record of a trained PPO agent (inside agent.zip).
AGENT_RECORD = Schema(
    required={"format": STR, "env": STR, "preset": Schema(required={"name": STR})},
    optional={"seed": COUNT, "n_envs": POSITIVE, "num_levels": COUNT, "start_level": COUNT,
              "timesteps_target": COUNT, "timesteps_done": COUNT, "complete": BOOL,
              "normalization": optional(DICT)},
)

# A noisy ensemble's descriptor file (ensemble.json); each descriptor is checked by ChildSpec.
NOISY_ENSEMBLE = Schema(
    required={"format": STR, "parent_fingerprint": STR, "descriptors": list_of(DICT, min_size=1)},
    optional={"include_parent": BOOL, "combine": STR, "temperature": optional(DICT),
              "eligibility": Schema(optional={"include_bias": BOOL, "include_norm": BOOL,
                                              "exclude": list_of(STR)}, closed=True)},
)

# Records a resumable evaluation keeps (RecordCache), by key prefix.
CACHED_RECORDS = {
    "child ": Schema(required={"fitness": REAL}),
    "cell ": Schema(required={"sigma": FINITE, "density": FINITE, "kl": REAL}),
}


__all__ = ["AGENT_RECORD", "CACHED_RECORDS", "MODEL_RECORD", "NOISY_ENSEMBLE", "TRAIN_STATE",
           "Kind", "Schema", "list_of", "optional"]
