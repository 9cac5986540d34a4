"""The method registry: every ensemble method, subnetwork or peer, declared once, in its own module.

A module that implements methods declares them in a module-level ``METHODS`` list of plain
literals (name, title, library function, default size, config fields, budget rule, checks
and how a stored ensemble is rebuilt). This registry reads those lists *without importing
the modules* (``ast.literal_eval`` of the assignment), so the CLI's choices, titles and
defaults cost no torch import, and one method's optional dependencies never block another.
Everything that names a method derives from here: the ``baseline`` command's choices and
defaults, report titles, :func:`evo_ensembles.baselines.get_peer`, storage and analysis.

Adding a peer is one module under ``baselines/`` (its function and its ``METHODS`` entry)
plus its test; nothing else changes.

Examples:
    >>> spec = method("snapshot")
    >>> spec.title, spec.members, spec.family
    ('Snapshot Ensemble', 4, 'peer')
    >>> "deep-ensemble" in peer_names() and "sparse" in subnetwork_names()
    True
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError

PACKAGE = Path(__file__).resolve().parents[1]
# Where methods are declared: peers in baselines/, the subnetwork methods in methods/.
SOURCES = {"peer": "baselines", "subnetwork": "methods"}
BUDGETS = ("one", "split")  # the budget's epochs for one training, or split over separately trained members


@dataclass(frozen=True)
class MethodSpec:
    """One method, as its module declares it.

    Attributes:
        name: the name on the command line and in ``results.json`` (``"method"``).
        title: the name in reports and tables.
        module: the module that implements and declares it.
        function: its library function in ``module`` (peers: ``f(model, data, cfg, **options)``).
        family: ``"peer"`` or ``"subnetwork"``.
        summary: one line: how it spends the budget.
        members: the default ensemble size (1: a single model).
        size: the function's keyword for the ensemble size (``None``: a single model).
        options: function keyword → the ``BaselineRunConfig`` field it takes (a ``None`` value
            is not passed, so the function's own default applies).
        budget: ``"one"`` (one training of the budget's epochs) or ``"split"`` (separately trained
            members of ``--member-epochs`` each).
        defaults: config fields this method sets when the user leaves them unset.
        check: name of a function in ``module`` that checks a resolved config (raises UserError).
        rebuild: name of a function in ``module`` that makes the untrained ensemble a stored
            record describes (``None``: a plain ensemble of the members' models).
        reader: how ``load_run`` / ``analyze`` read a finished run (``"peer"``, ``"subnet"``, ``"noisy"``).
    """

    name: str
    title: str
    module: str
    function: str
    family: str
    summary: str
    members: int = 4
    size: str | None = "members"
    options: dict[str, str] = field(default_factory=dict)
    budget: str = "one"
    defaults: dict[str, Any] = field(default_factory=dict)
    check: str | None = None
    rebuild: str | None = None
    reader: str = "peer"

    def load(self, attribute: str | None = None) -> Any:
        """The library function (or another ``attribute`` of the module), imported now."""
        return getattr(importlib.import_module(self.module), attribute or self.function)


def _declared(path: Path) -> list[dict[str, Any]]:
    """The ``METHODS`` literal of one module's source (``[]`` when it declares none)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "METHODS":
            try:
                entries = ast.literal_eval(value)
            except ValueError:
                raise TypeError(f"{path}: METHODS must be a list of plain literals (dicts of str, numbers, "
                                "lists, dicts)") from None
            return list(entries)
    return []


@cache
def registry() -> dict[str, MethodSpec]:
    """Every declared method by name: peers first, then the subnetwork methods; each family
    in alphabetical order of the names."""
    found: dict[str, MethodSpec] = {}
    for family, folder in SOURCES.items():
        for path in sorted((PACKAGE / folder).glob("*.py")):
            module = f"evo_ensembles.{folder}.{path.stem}"
            for entry in _declared(path):
                spec = MethodSpec(module=module, family=family, **entry)
                if spec.name in found:
                    raise TypeError(f"method {spec.name!r} is declared twice ({found[spec.name].module}, {module})")
                if spec.budget not in BUDGETS:
                    raise TypeError(f"{module}: method {spec.name!r} has budget {spec.budget!r}; use one of {BUDGETS}")
                found[spec.name] = spec
    return {n: found[n] for f in SOURCES for n in sorted(found) if found[n].family == f}


def method(name: str) -> MethodSpec:
    """The declaration of method ``name`` (an unknown name is one line listing the known ones)."""
    try:
        return registry()[name]
    except KeyError:
        raise UnknownNameError(f"unknown method {name!r}; choose from {', '.join(registry())}") from None


def peer_names() -> tuple[str, ...]:
    """The peer methods (the ``baseline`` command's ``--method`` choices)."""
    return tuple(n for n, s in registry().items() if s.family == "peer")


def subnetwork_names() -> tuple[str, ...]:
    """The subnetwork methods (each its own command)."""
    return tuple(n for n, s in registry().items() if s.family == "subnetwork")


def title(name: str) -> str:
    """The report title of ``name`` (the name itself for one this registry does not know)."""
    spec = registry().get(name)
    return spec.title if spec is not None else name


__all__ = ["MethodSpec", "method", "peer_names", "registry", "subnetwork_names", "title"]
