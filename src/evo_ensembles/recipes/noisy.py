"""The ``noisy`` run: load (or train) a parent, search σ, select noisy children, report.

Writes into ``out``: ``config.json``; ``results.json`` (keys: ``parent``, ``ensemble``,
``delta_accuracy``, ``sigma``, ``density``, ``mean_kl``, ``members[i]`` with accuracy, KL and
descriptor, ``trust_region.grid``, ``population``, ...); ``report.md`` with a Table 4.1-style
row; ``figures/kl_vs_sigma.png``, ``figures/accuracy_vs_kl.png``,
``figures/member_accuracy.png``; ``ensemble.json`` (the K descriptors — with
``checkpoints/parent.safetensors`` this *is* the ensemble); and, after evolution with
``generations > 1``, ``checkpoints/evolved_children.safetensors``.

Splits: σ is searched on a probe set (the first ``probe_size`` validation examples),
children are selected on the validation split, and only the final report touches test.

Examples:
    >>> from evo_ensembles.recipes.noisy import NoisyRunConfig, run_noisy
    >>> cfg = NoisyRunConfig(model="lenet-5", parent_epochs=1, subset=512, population=8, top_k=4)
    >>> results = run_noisy(cfg, "runs/noisy-demo", progress=False)     # doctest: +SKIP
    >>> results["delta_accuracy"]                                      # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import torch

from ..calibration import TemperatureFit
from ..config.noisy import NoisyRunConfig
from ..data import DataSplits
from ..ensemble import combine, predict_probs, voters
from ..errors import UserError
from ..methods.noisy import NoisyEnsemble, noisy_ensemble
from ..metrics import mean_kl
from ..models import build_model
from ..provenance import provenance
from ..reporting import (
    SUMMARY_HEADERS,
    markdown_table,
    plot_accuracy_vs_kl,
    plot_kl_vs_sigma,
    plot_member_accuracy,
    summary_rows,
    text_table,
    uncertainty_sections,
    write_uncertainty_figures,
)
from ..results import NoisyResults
from ..run_folder import LAYOUT, RunFolder, atomic_write
from ..schema import CACHED_RECORDS
from ..scoring import corrupted_scores, ood_inputs, score_run
from ..subnet import eligible_parameters, resolve_dense_layers
from ..train import save_model
from ..train.checkpoint import RecordCache, parent_fingerprint
from ..train.parent import load_model_checkpoint, model_meta, train_or_load_parent
from .common import subnetwork_cost

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..results import EnsembleMetrics, Metrics, Provenance


class NoisyTestScores(TypedDict):
    """The test-split entries of a noisy run's results (:func:`test_scores`)."""

    split: str
    ece_bins: int
    parent: Metrics
    ensemble: EnsembleMetrics
    delta_accuracy: float
    delta_nll: float
    delta_ece: float


def run_noisy(cfg: NoisyRunConfig, out: str | Path, *, progress: bool = True,
              data: DataSplits | None = None) -> NoisyResults:
    """Run the Noisy Subnetwork Ensemble pipeline; returns the results dict also saved to disk.

    ``data``: your own splits (default: the data set ``cfg`` names). σ is searched on a probe
    from validation and children are selected on validation; only the report touches test.
    """
    t_start = time.perf_counter()
    run = RunFolder(out, threads=cfg.threads, device=cfg.device)  # checks only: nothing is made yet
    data = cfg.load_data() if data is None else data
    ood = ood_inputs(cfg, data)  # a missing or unknown OOD set fails before any training
    if len(data.val) == 0:
        raise UserError("the noisy method selects children on a validation split: use --val-fraction > 0")
    model_name = cast(str, cfg.model)  # resolve() set it
    loaded = None
    if cfg.parent is None:
        parent_model = build_model(model_name, data.input_shape, data.num_classes)  # unknown names fail here
    else:  # a checkpoint or descriptor file that does not fit fails before --out is made
        parent_model, meta = load_model_checkpoint(cfg.parent, data, cfg.model)
        model_name = meta["model"]
        if cfg.descriptors is not None:
            loaded = NoisyEnsemble.load(cfg.descriptors, parent_model)
    resolve_dense_layers(eligible_parameters(parent_model), cfg.dense_layers)  # so do unknown layers
    if cfg.descriptors is not None and cfg.parent is None:
        raise UserError("--descriptors needs the --parent they were drawn from")
    with run:  # creates out; one writer at a time
        return _run(cfg, run, data, ood, model_name, loaded, t_start, progress)


def _run(cfg: NoisyRunConfig, run: RunFolder, data: DataSplits, ood: Any, model_name: str,
         loaded: NoisyEnsemble | None, t_start: float, progress: bool) -> NoisyResults:
    out, device = run.path, run.device
    run.write_config(cfg.to_dict())
    parent, parent_meta, parent_s = train_or_load_parent(
        out, data, model_name,
        cfg.parent_train_config(),
        parent_path=cfg.parent, device=device, progress=progress)
    if cfg.parent is not None:
        save_model(run / LAYOUT.parent, parent,
                   {**model_meta(parent_meta["model"], data), "source": str(cfg.parent)})
    parent.eval()

    t_search = time.perf_counter()
    search = _build(cfg, parent, data, loaded, out, progress)
    search_s = time.perf_counter() - t_search

    t_eval = time.perf_counter()
    kept: dict[str, torch.Tensor] = {}

    def member_logits(x: torch.Tensor) -> torch.Tensor:
        out = search["member_logits"](x)
        if x is data.test.x:
            kept["test"] = out
        return out

    scores = score_run(member_logits, parent, data.val, data.test, ood,
                       include_parent=cfg.include_parent, combine=cfg.combine, ece_bins=cfg.ece_bins,
                       progress=progress)
    test, val = scores["test"], scores["validation"]
    if search.get("ensemble") is not None:  # the saved ensemble carries its validation-fit temperature
        search["ensemble"].temperature = TemperatureFit.from_dict(scores["calibrated"]["ensemble"]["fit"])
        search["ensemble"].save(run / LAYOUT.ensemble, **search.get("saved_extra", {}))
    parent_test = predict_probs(parent, data.test.x)
    member_kl = [mean_kl(parent_test, p) for p in torch.softmax(kept["test"], -1)]

    def ensemble_probs(x):
        return combine(voters(search["member_probs"](x), predict_probs(parent, x) if cfg.include_parent else None,
                              cfg.include_parent), cfg.combine)

    corrupted = corrupted_scores(data, {"parent": lambda x: predict_probs(parent, x), "ensemble": ensemble_probs},
                                 ece_bins=cfg.ece_bins, examples=cfg.corrupted_examples, progress=progress)
    eval_s = time.perf_counter() - t_eval

    members = []
    for i, m in enumerate(test["members"]):
        members.append({**m, "kl": member_kl[i], "validation": search["selected_records"][i],
                        "descriptor": search["descriptors"][i]})
    results: NoisyResults = {
        "method": "noisy",
        "mode": search["mode"],
        **test_scores(test, cfg, len(members)),
        "sigma": search["sigma"],
        "density": cfg.density,
        "mean_kl": sum(member_kl) / len(member_kl),
        "members": members,
        "diversity": test["diversity"],
        "corrupted": corrupted,
        "calibrated": scores["calibrated"],
        "ood": scores["ood"],
        "selective": scores["selective"],
        "trust_region": search["trust_region"],
        "population": search["population"],
        "evolution": search.get("evolution"),
        "validation": {"parent": val["parent"], "ensemble": val["ensemble"],
                       "members": val["members"]},
        # children are not trained: the cost is the parent's (evaluation is not training)
        **subnetwork_cost(parent, parent_meta, data, cfg.batch_size, []),
        "config": {**cfg.to_dict(), "model": model_name},
        "seed": cfg.seed,
        "data": {**data.describe(), "probe": f"first {min(cfg.probe_size, len(data.val))} validation examples",
                 "selection": "validation split"},
        "timing": {"parent_train_seconds": parent_s, "search_and_selection_seconds": search_s,
                   "eval_seconds": eval_s, "total_seconds": time.perf_counter() - t_start},
        **cast("Provenance", provenance()),
    }
    write_noisy_outputs(run, cast("dict[str, Any]", results))
    return results


def test_scores(test: dict[str, Any], cfg: Any, members: int) -> NoisyTestScores:
    """The test-split entries of a noisy run's results: parent, ensemble and their differences."""
    p: Metrics = test["parent"]
    e: Metrics = test["ensemble"]
    return {"split": "test", "ece_bins": cfg.ece_bins, "parent": p,
            "ensemble": {**e, "size": members + int(cfg.include_parent), "combine": cfg.combine,
                         "include_parent": cfg.include_parent},
            "delta_accuracy": e["accuracy"] - p["accuracy"], "delta_nll": e["nll"] - p["nll"],
            "delta_ece": e["ece"] - p["ece"]}


def _build(cfg: NoisyRunConfig, parent, data, loaded, out: Path, progress: bool) -> dict[str, Any]:
    """Search σ and select children (or take them from a descriptor file, or evolve them)."""
    if loaded is not None:
        ens = loaded
        loaded.save(out / LAYOUT.ensemble, source=str(cfg.descriptors))
        sigmas = sorted({s.sigma for s in ens.specs})
        return {"mode": "descriptors", "sigma": sigmas[0] if len(sigmas) == 1 else sigmas,
                "member_probs": lambda x: _members_only(ens, x), "trust_region": None, "population": None,
                "member_logits": lambda x: ens.member_logits(x, with_parent=False),
                "ensemble": ens, "saved_extra": {"source": str(cfg.descriptors)},
                "descriptors": [s.to_dict() for s in ens.specs],
                "selected_records": [None] * len(ens)}
    # Finished grid cells and child scores survive an interruption (valid for this parent,
    # data, probe and fitness only).
    cache = RecordCache(out / LAYOUT.noisy_records,
                        identity={"parent": parent_fingerprint(parent), "data": data.describe(),
                                  "probe_size": cfg.probe_size, "fitness": cfg.fitness},
                        schemas=CACHED_RECORDS)
    res = noisy_ensemble(
        parent, data.val.x, data.val.y, cfg.search_settings(), probe_x=data.val.x[: cfg.probe_size],
        probe_y=data.val.y[: cfg.probe_size], include_parent=cfg.include_parent, combine=cfg.combine,
        fitness_metric=cfg.fitness, seed=cfg.seed, num_actors=cfg.num_actors, progress=progress,
        cache=cache)
    trust = res.trust_region.to_dict() if res.trust_region else None
    population = [{"descriptor": s.to_dict(), **r, "selected": i in res.selected}
                  for i, (s, r) in enumerate(zip(res.population, res.records))]
    if cfg.generations == 1:
        res.ensemble.save(out / LAYOUT.ensemble)
        return {"mode": "population", "sigma": res.sigma, "trust_region": trust, "population": population,
                "member_probs": lambda x: _members_only(res.ensemble, x),
                "member_logits": lambda x: res.ensemble.member_logits(x, with_parent=False),
                "ensemble": res.ensemble,
                "descriptors": [s.to_dict() for s in res.ensemble.specs],
                "selected_records": [res.records[i] for i in res.selected]}
    return _evolved(cfg, parent, data, res, trust, population, out, progress)


def _evolved(cfg, parent, data, res, trust, population, out: Path, progress: bool) -> dict[str, Any]:
    from ..ensemble import Ensemble
    from ..es import ClassifierFitness, evolve

    fitness = ClassifierFitness(data.val.x, data.val.y, metric=cfg.fitness, reference=parent)
    evo = evolve(parent, fitness, algorithm=cfg.algorithm, generations=cfg.generations,
                 popsize=cfg.population, top_k=cfg.top_k, sigma=res.sigma, density=cfg.density,
                 seed=cfg.seed, num_actors=cfg.num_actors, dense_layers=cfg.dense_layers,
                 progress=progress)
    children = [evo.child(i) for i in range(cfg.top_k)]
    from safetensors.torch import save_file

    meta = {"subnetwork_density": str(cfg.density), "mask_seed": str(cfg.seed),
            "algorithm": cfg.algorithm, "dense_layers": ",".join(cfg.dense_layers)}
    atomic_write(out / LAYOUT.evolved, lambda tmp: save_file({"vectors": evo.vectors.contiguous()}, tmp, metadata=meta))
    ens = Ensemble(children)
    scope = {"dense_layers": list(cfg.dense_layers)} if cfg.dense_layers else {}
    descriptors = [{"kind": "evolved", "algorithm": cfg.algorithm, "generation": cfg.generations,
                    "subnetwork_density": cfg.density, "mask_seed": cfg.seed, **scope, "row": i,
                    "file": LAYOUT.evolved} for i in range(cfg.top_k)]
    return {"mode": f"evolved-{cfg.algorithm}", "sigma": res.sigma, "trust_region": trust,
            "population": population, "member_probs": ens.member_probs, "descriptors": descriptors,
            "member_logits": ens.member_logits,
            "selected_records": evo.records,
            "evolution": {"algorithm": cfg.algorithm, "generations": cfg.generations, "history": evo.history,
                          "generation0_best_validation": max(r["fitness"] for r in res.records)}}


def _members_only(ens: NoisyEnsemble, x: torch.Tensor) -> torch.Tensor:
    return ens.member_probs(x, with_parent=False)


TABLE_HEADERS = ["Model", "Acc", "NLL", "ECE", "eAcc", "eNLL", "eECE", "σ", "KL"]


def table_row(results: dict[str, Any]) -> list[object]:
    """A Table 4.1-style row: parent and ensemble Acc (%) / NLL / ECE, σ and mean KL."""
    p, e = results["parent"], results["ensemble"]
    sigma = results["sigma"]
    return [results["config"]["model"], f"{100 * p['accuracy']:.2f}", p["nll"], p["ece"],
            f"{100 * e['accuracy']:.2f}",
            e["nll"], e["ece"], sigma if isinstance(sigma, float) else str(sigma), results["mean_kl"]]


def _report(results: dict[str, Any]) -> str:
    cfg = results["config"]
    members = [[i + 1, m["accuracy"], m["nll"], m["ece"], m["kl"],
                (m["validation"] or {}).get("fitness", "-")] for i, m in enumerate(results["members"])]
    tr = results["trust_region"]
    parts = [
        f"# Noisy Subnetwork Ensemble — {cfg['model']} on {cfg['dataset']}",
        f"Mode: {results['mode']}. Test split, {results['data']['sizes']['test']} examples; ECE with "
        f"{results['ece_bins']} equal-width bins; σ searched on {results['data']['probe']}; children "
        f"selected on the validation split; seed {results['seed']}; commit {results['commit']}.",
        "## Table 4.1-style row (parent → ensemble)",
        markdown_table(TABLE_HEADERS, [table_row(results)]),
        f"Ensemble: top {cfg['top_k']} of {cfg['population']} children, density {cfg['density']}, "
        f"{'mirrored' if cfg['mirrored'] else 'not mirrored'}, "
        f"{'partitioned' if cfg['partitioned'] else 'not partitioned'}, "
        + (f"dense layers {', '.join(cfg['dense_layers'])} kept, " if cfg.get("dense_layers") else "")
        + f"combine {cfg['combine']}, "
        f"parent {'included' if cfg['include_parent'] else 'not included'}. "
        f"Δ accuracy {100 * results['delta_accuracy']:+.2f} points, Δ NLL {results['delta_nll']:+.4f}, "
        f"Δ ECE {results['delta_ece']:+.4f}.",
        "## Members (test)",
        markdown_table(["member", "accuracy", "NLL", "ECE", "KL to parent", "validation fitness"], members),
    ]
    if tr:
        parts += ["## Trust region",
                  f"Target KL {tr['target']} ({tr['mode']}); σ per density: " + ", ".join(
                      f"{d}: {s:.4g} ({tr['status'][d]})" for d, s in tr["sigma_by_density"].items()),
                  "![KL vs sigma](figures/kl_vs_sigma.png) ![accuracy vs KL](figures/accuracy_vs_kl.png)"]
    if results.get("evolution"):
        ev = results["evolution"]
        parts += ["## Evolution",
                  markdown_table(["generation", "best", "mean", "worst"],
                                 [[h["generation"], h["best"], h["mean"], h["worst"]] for h in ev["history"]])]
    parts += ["## Timing (seconds)",
              markdown_table(list(results["timing"]), [list(results["timing"].values())]),
              "![members](figures/member_accuracy.png)", *uncertainty_sections(results)]
    return "\n\n".join(parts) + "\n"


def write_noisy_outputs(run: RunFolder, results: dict[str, Any]) -> None:
    """results.json, report.md and the figures of a noisy run (also the imagenet run)."""
    figs = run.figures
    title = f"{results['config']['model']} on {results['config']['dataset']}"
    plot_member_accuracy(figs / "member_accuracy.png", [m["accuracy"] for m in results["members"]],
                         results["parent"]["accuracy"], results["ensemble"]["accuracy"], title=title)
    tr = results["trust_region"]
    if tr:
        sigma = results["sigma"] if isinstance(results["sigma"], float) else None
        plot_kl_vs_sigma(figs / "kl_vs_sigma.png", tr["grid"], tr["target"], sigma, title=title)
        series: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
        for d in sorted({r["density"] for r in tr["grid"]}):
            rows = [r for r in tr["grid"] if r["density"] == d and r.get("accuracy") is not None]
            if rows:
                series[f"probe grid, density {d:g}"] = ([r["kl"] for r in rows], [r["accuracy"] for r in rows])
        if results["population"]:
            pop = results["population"]
            series["population (validation)"] = ([r["kl"] for r in pop], [r["accuracy"] for r in pop])
        plot_accuracy_vs_kl(figs / "accuracy_vs_kl.png", series,
                            results["validation"]["parent"]["accuracy"], title=title)
    write_uncertainty_figures(figs, results)
    run.finish(results, _report(results))


def print_summary(results: dict[str, Any]) -> str:
    """The Table 4.1-style row the CLI prints, then parent and ensemble with their temperatures."""
    e = results["ensemble"]
    return (text_table(TABLE_HEADERS, [table_row(results)]) + "\n\n"
            + text_table(SUMMARY_HEADERS, summary_rows(results, f"ensemble ({e['size']}, {e['combine']})")))


__all__ = ["NoisyRunConfig", "print_summary", "run_noisy", "table_row", "test_scores", "write_noisy_outputs"]
