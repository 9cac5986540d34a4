"""The uncertainty part of every classifier run's results: temperature-scaled scores, OOD
detection and selective classification, from the members' logits, written once.

A run collects :class:`Outputs` (the parent's and the members' logits) on the validation
split, the test split and each OOD set, and :func:`uncertainty_results` turns them into the
``calibrated``, ``ood`` and ``selective`` entries of ``results.json``
(:class:`~evo_ensembles.results.CalibrationResults`, :class:`~evo_ensembles.results.OODResults`,
:class:`~evo_ensembles.results.SelectiveResults`). The rules, in one place:

- every temperature is fit on the **validation** split only (``fit_temperature``): one for
  the parent, one per member, one for the ensemble (applied to every voter's logits before
  averaging; to the combined probabilities for ``combine="vote"``); test labels and OOD sets
  never choose anything;
- OOD detection and selective classification read the **temperature-scaled** parent and
  ensemble (what a user who calibrates deploys): OOD scores from
  :func:`evo_ensembles.input_scores.uncertainty` with the in-distribution side the test split,
  AUROC / AUPR-In / AUPR-Out / FPR95 (in-distribution positive) per set and per score;
  AURC / AUGRC / risk at 90 % coverage ranked by max probability.

Examples:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> def outs(n): return Outputs(torch.randn(n, 3, generator=g), torch.randn(2, n, 3, generator=g))
    >>> yv, yt = torch.arange(60) % 3, torch.arange(90) % 3
    >>> r = uncertainty_results(outs(60), yv, outs(90), yt, {"noise": outs(40)})
    >>> sorted(r), sorted(r["ood"]["sets"]["noise"]["ensemble"])[:2]
    (['calibrated', 'ood', 'selective'], ['energy', 'entropy'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .calibration import TemperatureFit, fit_temperature, tempered_probs
from .data.arrays import ArrayData
from .ensemble import predict_logits
from .errors import UserError
from .input_scores import uncertainty
from .metrics import (
    DEFAULT_ECE_BINS,
    classification_metrics,
    ood_metrics,
    reliability_bins,
    selective_metrics,
)

if TYPE_CHECKING:
    from .data.corrupted import CorruptedSet
    from .data.registry import DataSplits

METHOD = ("temperature scaling: one T per model fit on validation NLL (41-point grid over log T in "
          "[log 0.05, log 20], then bounded Brent); ensembles: T divides every voter's logits before "
          "the probabilities are averaged (the vote: T on the log of the combined probabilities)")
OOD_CONVENTION = ("scores are higher for inputs judged OOD; AUROC and AUPR-Out take OOD as positive, AUPR-In "
                  "and FPR95 in-distribution (the test split) as positive; scores from the temperature-scaled "
                  "parent and ensemble")


@dataclass(frozen=True)
class Outputs:
    """Logits of one input set: the parent's (B, C), or ``None`` without a parent, and the
    members' (M, B, C) — members only; whether the parent votes is decided when scoring."""

    parent: torch.Tensor | None
    members: torch.Tensor


def _voters(o: Outputs, include_parent: bool) -> torch.Tensor:
    if not include_parent:
        return o.members
    if o.parent is None:
        raise UserError("include_parent=True needs a parent")
    return torch.cat([o.parent.unsqueeze(0), o.members])


def _scored(logits: torch.Tensor, y: torch.Tensor, t: float, where: str, combine: str, bins: int) -> dict:
    probs = tempered_probs(logits, t, where=where, combine=combine)
    return classification_metrics(probs, y, bins)


def _finite(t: torch.Tensor | None) -> bool:
    return t is None or bool(torch.isfinite(t).all())


def _fit(logits: torch.Tensor, y: torch.Tensor, where: str = "members", combine: str = "mean") -> TemperatureFit:
    """:func:`fit_temperature`, with the documented fallback for a network that diverged:
    non-finite outputs keep T = 1 (``fallback`` says so) instead of failing the whole run."""
    if not _finite(logits):
        return TemperatureFit(1.0, where, None, None, len(y), fallback="non-finite outputs on validation")
    return fit_temperature(logits, y, where=where, combine=combine)


@dataclass
class Calibrated:
    """What every evaluation after temperature scaling reads: the outputs, the settings, the
    fitted temperatures and the test probabilities before and after them."""

    val: Outputs
    y_val: torch.Tensor
    test: Outputs
    y_test: torch.Tensor
    ood: Mapping[str, Outputs]
    include_parent: bool
    combine: str
    ece_bins: int
    where: str  # where the ensemble's T applies: "members" (mean rule) or "combined" (the vote)
    parent_t: float | None
    ens_t: float
    has_parent: bool
    ens_ok: bool  # the ensemble's test outputs are finite
    parent_ok: bool  # the parent's are (and it exists)
    test_probs: dict[str, torch.Tensor]  # "parent", "parent + T", "ensemble", "ensemble + T" where finite


def calibrate(val: Outputs, y_val: torch.Tensor, test: Outputs, y_test: torch.Tensor,
              ood: Mapping[str, Outputs] | None = None, *, include_parent: bool = False, combine: str = "mean",
              ece_bins: int = DEFAULT_ECE_BINS) -> tuple[dict[str, Any], Calibrated]:
    """The ``calibrated`` entry (every temperature fit on validation, the scores after them,
    reliability bins) and the :class:`Calibrated` context the other evaluations read."""
    where = "members" if combine == "mean" else "combined"
    has_parent = test.parent is not None and val.parent is not None
    cal: dict[str, Any] = {"method": METHOD, "fit_on": "validation", "validation_examples": len(y_val)}

    def one_model(v: torch.Tensor, t: torch.Tensor) -> dict:
        fit = _fit(v, y_val)
        return {"temperature": fit.temperature, "fit": fit.to_dict(),
                "test": _scored(t, y_test, fit.temperature, "members", "mean", ece_bins)}

    parent_t = None
    if val.parent is not None and test.parent is not None:  # has_parent
        cal["parent"] = one_model(val.parent, test.parent)
        parent_t = cal["parent"]["temperature"]
    else:
        cal["parent"] = None
    cal["members"] = [one_model(v, t) for v, t in zip(val.members, test.members)]
    ens_fit = _fit(_voters(val, include_parent), y_val, where, combine)
    ens_t = ens_fit.temperature
    test_voters = _voters(test, include_parent)
    cal["ensemble"] = {"temperature": ens_t, "fit": ens_fit.to_dict(), "where": where,
                       "test": _scored(test_voters, y_test, ens_t, where, combine, ece_bins)}

    ens_ok, parent_ok = _finite(test_voters), has_parent and _finite(test.parent)
    test_probs = {}
    if parent_ok:
        assert test.parent is not None and parent_t is not None  # parent_ok implies has_parent
        test_probs = {"parent": tempered_probs(test.parent, 1.0, where="members", combine="mean"),
                      "parent + T": tempered_probs(test.parent, parent_t, where="members", combine="mean")}
    if ens_ok:
        test_probs.update({"ensemble": tempered_probs(test_voters, 1.0, where=where, combine=combine),
                           "ensemble + T": tempered_probs(test_voters, ens_t, where=where, combine=combine)})
    cal["reliability"] = {k: reliability_bins(p, y_test, ece_bins) for k, p in test_probs.items()}
    ctx = Calibrated(val, y_val, test, y_test, dict(ood or {}), include_parent, combine, ece_bins, where,
                     parent_t, ens_t, has_parent, ens_ok, bool(parent_ok), test_probs)
    return cal, ctx


def selective_entry(c: Calibrated) -> dict[str, Any]:
    """``selective``: AURC, AUGRC and risk at 90 % coverage of the temperature-scaled parent and ensemble."""
    return {"ranked_by": "max probability of the temperature-scaled prediction",
            "ensemble": selective_metrics(c.test_probs["ensemble + T"], c.y_test) if c.ens_ok else None,
            "parent": selective_metrics(c.test_probs["parent + T"], c.y_test) if c.parent_ok else None}


def ood_entry(c: Calibrated) -> dict[str, Any]:
    """``ood``: detection of each OOD set against the test split, per score, from the
    temperature-scaled ensemble's voters (vote: the mean rule's scores) and parent."""

    def scores(o: Outputs) -> dict[str, dict[str, torch.Tensor]]:
        res = {}
        voting = _voters(o, c.include_parent)
        if c.ens_ok and _finite(voting):
            u = uncertainty(voting, temperature=c.ens_t)
            res["ensemble"] = {s: u.score(s) for s in u.available_scores()}
        if c.parent_ok and _finite(o.parent):
            if o.parent is None:
                raise UserError("every input set needs the parent's logits when the test split has them")
            assert c.parent_t is not None  # parent_ok implies has_parent, which set it
            up = uncertainty(o.parent, temperature=c.parent_t)
            res["parent"] = {s: up.score(s) for s in ("max_prob", "entropy", "energy")}
        return res

    sets: dict[str, Any] = {}
    if c.ood:
        in_dist = scores(c.test)
        for name, o in c.ood.items():
            far = scores(o)
            entry: dict[str, Any] = {"examples": int(o.members.shape[1])}
            for who in ("parent", "ensemble"):
                if who in far and who in in_dist:
                    entry[who] = {s: ood_metrics(in_dist[who][s], far[who][s]) for s in far[who]}
                elif who == "ensemble" or c.has_parent:
                    entry.setdefault("skipped", {})[who] = "non-finite outputs"
            sets[name] = entry
    return {"convention": OOD_CONVENTION, "in_distribution": f"test split ({len(c.y_test)} examples)", "sets": sets}


# The evaluations read after temperature scaling, in the order results.json holds them: a new
# one is a function of the Calibrated context plus one entry here (and its key in results.py).
EVALUATIONS: dict[str, Callable[[Calibrated], Any]] = {"selective": selective_entry, "ood": ood_entry}


def uncertainty_results(val: Outputs, y_val: torch.Tensor, test: Outputs, y_test: torch.Tensor,
                        ood: Mapping[str, Outputs] | None = None, *, include_parent: bool = False,
                        combine: str = "mean", ece_bins: int = DEFAULT_ECE_BINS) -> dict[str, Any]:
    """``calibrated`` and then every entry of :data:`EVALUATIONS` (``selective``, ``ood``) of a
    run (see the module docstring).

    Outputs that are not finite (a diverged network) keep T = 1 and get no OOD or selective
    scores (``None``, or a ``skipped`` reason per OOD set) rather than NaN.
    """
    cal, ctx = calibrate(val, y_val, test, y_test, ood, include_parent=include_parent, combine=combine,
                         ece_bins=ece_bins)
    return {"calibrated": cal, **{name: evaluate(ctx) for name, evaluate in EVALUATIONS.items()}}


def score_run(member_logits: Callable[[torch.Tensor], torch.Tensor], parent: nn.Module | None,
              val: ArrayData, test: ArrayData, ood: Mapping[str, ArrayData] | None = None, *,
              include_parent: bool = False, combine: str = "mean", ece_bins: int = DEFAULT_ECE_BINS,
              progress: bool = False, with_size_curve: bool = False) -> dict[str, Any]:
    """Everything a classifier run reports about its predictions on clean and OOD inputs.

    ``member_logits``: inputs (B, ...) → the members' (M, B, C) logits (members only);
    ``parent``: the parent network or ``None``. Each input set is run through the networks
    once. Returns ``test`` and ``validation`` (:func:`evo_ensembles.metrics.ensemble_metrics`
    of the raw probabilities; ``validation`` is ``None`` for an empty split) plus the entries
    of :func:`uncertainty_results`; ``with_size_curve`` adds ``calibrated.size_curve``
    (:func:`size_curve`, for a deep ensemble: the reference of the deep-ensemble equivalent).
    """
    from tqdm.auto import tqdm

    from .metrics import ensemble_metrics

    sets = {"test": test, **({"validation": val} if len(val) else {}),
            **{f"ood:{k}": v for k, v in (ood or {}).items()}}
    outs: dict[str, Outputs] = {}
    for name, d in tqdm(sets.items(), desc="scoring", disable=not progress, leave=False):
        outs[name] = Outputs(predict_logits(parent, d.x) if parent is not None else None, member_logits(d.x))

    def raw(o: Outputs, y: torch.Tensor) -> dict:
        parent_p = torch.softmax(o.parent, -1) if o.parent is not None else None
        return ensemble_metrics(parent_p, torch.softmax(o.members, -1), y, include_parent=include_parent,
                                combine_method=combine, ece_bins=ece_bins)

    test_parent = outs["test"].parent  # None exactly when parent is None
    empty = Outputs(None if test_parent is None else test_parent[:0], outs["test"].members[:, :0])
    v = outs.get("validation", empty)
    res = {"test": raw(outs["test"], test.y), "validation": raw(v, val.y) if len(val) else None,
           **uncertainty_results(v, val.y, outs["test"], test.y,
                                 {k.removeprefix("ood:"): o for k, o in outs.items() if k.startswith("ood:")},
                                 include_parent=include_parent, combine=combine, ece_bins=ece_bins)}
    if with_size_curve:
        res["calibrated"]["size_curve"] = size_curve(v, val.y, outs["test"], test.y, ece_bins=ece_bins)
    return res


def size_curve(val: Outputs, y_val: torch.Tensor, test: Outputs, y_test: torch.Tensor, *,
               max_subsets: int = 10, ece_bins: int = DEFAULT_ECE_BINS) -> dict[str, Any]:
    """Calibrated test NLL of the members' k-subsets, k = 1..M: the curve a deep ensemble's
    equivalent (:func:`evo_ensembles.metrics.deep_ensemble_equivalent`) is read from.

    Each subset gets its own temperature fit on validation; ``nll[k - 1]`` is the mean over
    the subsets of size k: all of them when there are at most ``max_subsets``, else the first
    ``max_subsets`` in lexicographic order of member indices (deterministic).
    """
    from itertools import combinations, islice

    m = test.members.shape[0]
    nll, raw, subsets = [], [], []
    for k in range(1, m + 1):
        picks = list(islice(combinations(range(m), k), max_subsets))
        cal_k, raw_k = [], []
        for p in picks:
            idx = torch.tensor(p)
            fit = _fit(val.members[idx], y_val)
            cal_k.append(_scored(test.members[idx], y_test, fit.temperature, "members", "mean", ece_bins)["nll"])
            raw_k.append(_scored(test.members[idx], y_test, 1.0, "members", "mean", ece_bins)["nll"])
        nll.append(sum(cal_k) / len(cal_k))
        raw.append(sum(raw_k) / len(raw_k))
        subsets.append(len(picks))
    return {"sizes": list(range(1, m + 1)), "nll": nll, "raw_nll": raw, "subsets": subsets,
            "rule": "mean over subsets of size k of the test NLL, each subset temperature-scaled on validation"}


def ood_summary(results: Mapping[str, Any], who: str = "ensemble", metric: str = "auroc") -> dict[str, dict]:
    """``{set: {score: value}}`` of one metric from a run's ``ood`` entry (for reports)."""
    sets = (results.get("ood") or {}).get("sets") or {}
    return {name: {s: v[metric] for s, v in (d.get(who) or {}).items()} for name, d in sets.items()}


def corrupted_scores(
    data: DataSplits,
    predictors: dict[str, Any],
    *,
    ece_bins: int,
    examples: int | None = None,
    progress: bool = False,
) -> dict[str, Any] | None:
    """cAcc/cNLL/cECE (:func:`evo_ensembles.metrics.corruption_summary`) of each predictor on
    the data set's corrupted test set, or ``None`` when it has none.

    ``predictors``: name (``"parent"``, ``"ensemble"``) → function from inputs (B, ...) to
    combined probabilities (B, C). ``examples``: only the first N images of every cell.
    One (type, severity) is in memory at a time.
    """
    from tqdm.auto import tqdm

    from .metrics import classification_metrics, corruption_summary

    corrupted: CorruptedSet | None = getattr(data, "corrupted", None)
    if corrupted is None:
        return None
    cs = corrupted if examples is None else corrupted.head(examples)
    cells: dict[str, list[dict]] = {k: [] for k in predictors}
    for kind, severity, part in tqdm(cs, total=len(cs), desc="corrupted test", disable=not progress, leave=False):
        for name, predict in predictors.items():
            m = classification_metrics(predict(part.x), part.y, ece_bins)
            cells[name].append({"type": kind, "severity": severity, **m})
    return {"set": cs.describe(), **{k: corruption_summary(v) for k, v in cells.items()}}


def ood_inputs(cfg: Any, data: DataSplits) -> dict[str, Any]:
    """The OOD sets a run scores: those ``cfg.ood_sets`` names (every one on disk for
    ``auto``), normalised like ``data``, plus any the caller attached as ``data.ood``
    (a dict of name → :class:`~evo_ensembles.data.ArrayData`, e.g. from ``ood_from``)."""
    from .data.ood import ood_sets

    names = cfg.ood_names() if hasattr(cfg, "ood_names") else None
    found = {} if names == [] else ood_sets(data, names, getattr(cfg, "data_root", None))
    return {**found, **(getattr(data, "ood", None) or {})}


__all__ = ["METHOD", "OOD_CONVENTION", "Outputs", "corrupted_scores", "ood_inputs", "ood_summary", "score_run",
           "size_curve", "uncertainty_results"]
