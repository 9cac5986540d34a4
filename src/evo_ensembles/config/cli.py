"""Generate argparse flags from a run config's fields, and build the config back from them.

Why a small helper on argparse rather than a declarative CLI library (tyro, simple-parsing):
every existing flag keeps its exact spelling (``--no-mirror``, ``--dense-layers first,last``,
``--augment/--no-augment``), no new dependency has to fit the pinned stack, and the
config classes stay plain dataclasses a library user builds directly. Flags left unset do
not reach the config, so its defaults are the only defaults.

Examples:
    >>> import argparse
    >>> from evo_ensembles.config import DataFields
    >>> p = argparse.ArgumentParser()
    >>> add_config_arguments(p, DataFields)
    >>> config_from_args(DataFields, p.parse_args(["--subset", "512"])).subset
    512
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from .fields import flag_of


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def layer_list(text: str) -> tuple[str, ...]:
    """``first,last`` → ("first", "last"); ``none`` → () (the pruning-scope flag's syntax)."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise argparse.ArgumentTypeError(
            f"expected layer names such as first,last (or none); got {text!r}"
        )
    return () if items == ("none",) else items


_PARSERS = {int: _int, float: _float, str: str}
_LAST_GROUPS = ("ensemble", "run")  # --help shows the method's own groups before these


def _base_type(tp: Any) -> Any:
    """``int | None`` → int; ``tuple[str, ...]`` → tuple."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and args:
        return _base_type(args[0])
    return typing.get_origin(tp) or tp


def _help(f: dataclasses.Field) -> str:
    md = f.metadata
    shown = md.get("default_help")
    if shown is None and (md.get("bool_flag") or "").startswith("--no-"):
        shown = ""  # a negative flag's help says what it turns off
    if shown is None:
        d = f.default
        if isinstance(d, tuple):
            shown = ",".join(d) if d else "none"
        elif d is None or d is dataclasses.MISSING:
            shown = ""
        elif isinstance(d, bool):
            shown = "on" if d else "off"
        else:
            shown = str(d)
    text = md.get("help") or ""
    return f"{text} (default: {shown})" if shown else text


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()
) -> None:
    """Add one flag per CLI field of the dataclass ``cls``, in ``--help`` groups."""
    hints = typing.get_type_hints(cls)
    groups: dict[str | None, Any] = {None: parser}
    fields = sorted(
        dataclasses.fields(cls),
        key=lambda f: (
            _LAST_GROUPS.index(f.metadata.get("group"))
            if f.metadata.get("group") in _LAST_GROUPS
            else -1
        ),
    )
    for f in fields:
        md = f.metadata
        if "cli" not in md or not md["cli"] or f.name in skip:
            continue
        g = groups.get(md["group"])
        if g is None:
            g = groups[md["group"]] = parser.add_argument_group(md["group"])
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f)}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw["required"] = True
        base = _base_type(hints[f.name])
        if base is bool:
            style = md["bool_flag"] or ("store_true" if f.default is False else "both")
            if style == "store_true":
                g.add_argument(flag_of(f), *md.get("aliases", ()), action="store_true", **kw)
            elif style == "both":
                g.add_argument(flag_of(f), *md.get("aliases", ()), action=argparse.BooleanOptionalAction, **kw)
            else:  # a negative flag (e.g. --no-mirror) that turns a default-on setting off
                g.add_argument(style, action="store_false", **kw)
            continue
        kw["type"] = md["parse"] or _PARSERS.get(base, str)
        if md["choices"]:
            kw["choices"] = md["choices"]
        if md["metavar"]:
            kw["metavar"] = md["metavar"]
        if not flag_of(f).startswith("-"):  # a positional argument (e.g. analyze's RUN_DIR)
            kw.pop("required", None)
            g.add_argument(kw.pop("dest"), **kw)
            continue
        g.add_argument(flag_of(f), *md.get("aliases", ()), **kw)


def config_from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """Build ``cls`` from the flags the user set (the others keep the config's defaults)."""
    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{**given, **extra})


__all__ = ["add_config_arguments", "config_from_args", "layer_list"]
