"""The ``baseline`` run: train one peer method at a stated budget and report it like the
subnetwork methods (same results.json keys, plus ``training_flops`` and ``epochs``).

Writes into ``out``: ``config.json``, ``results.json``, ``report.md``, ``figures/`` and
``checkpoints/`` (resume states of the method's training stages, and ``ensemble.safetensors``:
the trained ensemble, reloaded by :func:`evo_ensembles.baselines.storage.load_peer`). Re-running the same
command resumes an interrupted training; a finished run with the same settings is reported
again without training.

Examples:
    >>> from evo_ensembles.recipes.baseline import BaselineRunConfig, run_baseline
    >>> cfg = BaselineRunConfig(method="snapshot", model="lenet-5", epochs=2, members=2, subset=512)
    >>> results = run_baseline(cfg, "runs/snapshot", progress=False)         # doctest: +SKIP
    >>> results["training_flops"], results["epochs"]                         # doctest: +SKIP
    (1.0, 2.0)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

from ..baselines import get_peer, reference_flops
from ..baselines.storage import save_peer
from ..calibration import TemperatureFit
from ..config.baseline import BaselineRunConfig
from ..data import DataSplits
from ..errors import UserError
from ..methods.registry import title
from ..models import build_model
from ..provenance import provenance
from ..reporting import (
    calibrated_rows,
    markdown_table,
    plot_heatmap,
    plot_member_accuracy,
    text_table,
    uncertainty_sections,
    write_uncertainty_figures,
)
from ..run_folder import LAYOUT, RunFolder
from ..scoring import corrupted_scores, ood_inputs, score_run


def _as_json(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _finished(run: RunFolder, cfg: BaselineRunConfig) -> dict[str, Any] | None:
    results = run.read_json(LAYOUT.results)
    return results if isinstance(results, dict) and results.get("config") == _as_json(cfg.to_dict()) else None


def _check_same_run(run: RunFolder, cfg: BaselineRunConfig) -> None:
    """A run directory resumes only the run it was made for (its stages hold that run's weights)."""
    before = run.read_json(LAYOUT.config)
    if before is None:
        return
    if before != _as_json(cfg.to_dict()):
        changed = sorted(k for k in set(before) | set(_as_json(cfg.to_dict()))
                         if before.get(k) != _as_json(cfg.to_dict()).get(k))
        raise UserError(f"{run.path} holds a baseline run with other settings ({', '.join(changed)}); "
                        "use a new --out or delete it")


def run_baseline(cfg: BaselineRunConfig, out: str | Path, *, progress: bool = True,
                 data: DataSplits | None = None) -> dict[str, Any]:
    """Train ``cfg.method`` at ``cfg.epochs``' budget and score it on test (and validation).

    ``data``: your own splits (default: the data set ``cfg`` names).
    """
    t_start = time.perf_counter()
    run = RunFolder(out, threads=cfg.threads, device=cfg.device)  # checks only: nothing is made yet
    data = cfg.load_data() if data is None else data
    ood = ood_inputs(cfg, data)  # a missing or unknown OOD set fails before any training
    build_model(cfg.model, data.input_shape, data.num_classes)  # an unknown model fails before --out is made
    with run:  # creates out; one writer at a time
        done = _finished(run, cfg)
        if done is not None:
            return done
        _check_same_run(run, cfg)
        run.write_config(cfg.to_dict())
        method = get_peer(cfg.method)
        res = method(cfg.model, data, cfg.method_train_config(), **cfg.method_options(), device=run.device,
                     progress=progress, workdir=run / LAYOUT.checkpoints)
        save_peer(run / LAYOUT.peer_ensemble, res.ensemble, peer_record(cfg, data, res))
        t_eval = time.perf_counter()
        ens = res.ensemble
        scores = score_run(lambda x: ens.member_logits(x, with_parent=False), None, data.val, data.test,
                           ood, combine=cfg.combine, ece_bins=cfg.ece_bins, progress=progress,
                           with_size_curve=cfg.method == "deep-ensemble")  # the reference of the DEE
        test, val = scores["test"], scores["validation"]
        ens.temperature = TemperatureFit.from_dict(scores["calibrated"]["ensemble"]["fit"])
        save_peer(run / LAYOUT.peer_ensemble, ens, peer_record(cfg, data, res))  # with its T
        corrupted = corrupted_scores(data, {"ensemble": res.ensemble.predict_proba}, ece_bins=cfg.ece_bins,
                                     examples=cfg.corrupted_examples, progress=progress)
        eval_s = time.perf_counter() - t_eval
        ref = reference_flops(cfg.model, data, cfg.epochs, cfg.batch_size)
        cost = res.cost(ref, cfg.epochs)
        # The keys of evo_ensembles.results.BaselineResults, but "parent" is None, which its
        # ClassifierResults base does not allow (parent: Metrics): a plain dict.
        results: dict[str, Any] = {
            "method": cfg.method,
            "split": "test",
            "ece_bins": cfg.ece_bins,
            "parent": None,
            "members": [{**m, **info} for m, info in zip(test["members"], _member_info(res, len(test["members"])))],
            "ensemble": {**test["ensemble"], "size": len(res.ensemble), "combine": cfg.combine,
                         "include_parent": False},
            "diversity": test["diversity"],
            "corrupted": corrupted,
            "calibrated": scores["calibrated"],
            "ood": scores["ood"],
            "selective": scores["selective"],
            "validation": None if val is None else {"parent": None, "ensemble": val["ensemble"],
                                                    "members": val["members"]},
            "training_flops": cost.relative,
            "epochs": cost.epochs,
            "training_cost": cost.to_dict(),
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "data": data.describe(),
            "timing": {"train_seconds": res.seconds, "eval_seconds": eval_s,
                       "total_seconds": time.perf_counter() - t_start,
                       "note": "train seconds count work done in this invocation"},
            **provenance(),
        }
        _write_outputs(run, results)
        return results


def peer_record(cfg: BaselineRunConfig, data: DataSplits, res) -> dict[str, Any]:
    """What :func:`evo_ensembles.baselines.storage.rebuild_peer` needs to rebuild the ensemble."""
    return {"method": cfg.method, "model": cfg.model, "input_shape": list(data.input_shape),
            "num_classes": data.num_classes, "options": cfg.method_options(), "members": res.members,
            "seed": cfg.seed, "dataset": data.name}


def _member_info(res, n: int) -> list[dict[str, Any]]:
    info = list(res.members)
    return info + [{} for _ in range(n - len(info))]


SUMMARY_HEADERS = ["model", "accuracy", "NLL", "ECE", "Brier", "FLOPs", "epochs"]


def summary_rows(results: dict[str, Any]) -> list[list[object]]:
    e = results["ensemble"]
    name = title(results["method"])
    cost = [f"{results['training_flops']:.2f}x", results["epochs"]]
    rows = [[f"{name} ({e['size']})", e["accuracy"], e["nll"], e["ece"], e["brier"], *cost]]
    return rows + [[f"{name} + T" + cast(str, r[0]).removeprefix("ensemble + T"), *r[1:], *cost]
                   for r in calibrated_rows(results, "ensemble")]


def _report(results: dict[str, Any]) -> str:
    cfg = results["config"]
    members = [[i + 1, m["accuracy"], m["nll"], m["ece"]] for i, m in enumerate(results["members"])]
    div = results["diversity"]
    cost = results["training_cost"]
    return "\n\n".join([
        f"# {title(results['method'])} — {cfg['model']} on {cfg['dataset']}",
        f"Budget {cfg['epochs']} epochs of one model; test split, {results['data']['sizes']['test']} examples; "
        f"ECE with {results['ece_bins']} equal-width bins; seed {results['seed']}; commit {results['commit']}.",
        markdown_table(SUMMARY_HEADERS, summary_rows(results)),
        f"Training cost: {cost['flops']:.4g} FLOPs = {cost['relative']:.3f} × one dense {cfg['model']} trained "
        f"{cost['reference_epochs']:g} epochs ({cost['reference_flops']:.4g} FLOPs), counted with "
        "torch.utils.flop_counter on a real training step; epochs run: "
        f"{cost['epochs']:g}.",
        "## Members",
        markdown_table(["member", "accuracy", "NLL", "ECE"], members),
        "## Diversity (off-diagonal means over member pairs)",
        markdown_table(["disagreement", "KL", "correlation"], [[div["disagreement"], div["kl"], div["correlation"]]]),
        "![members](figures/member_accuracy.png)",
        *uncertainty_sections(results),
    ]) + "\n"


def _write_outputs(run: RunFolder, results: dict[str, Any]) -> None:
    figs = run.figures
    plot_member_accuracy(figs / "member_accuracy.png", [m["accuracy"] for m in results["members"]], None,
                         results["ensemble"]["accuracy"],
                         title=f"{results['method']}: {results['config']['model']} on {results['config']['dataset']}")
    if len(results["members"]) > 1:
        plot_heatmap(figs / "disagreement.png", results["diversity"]["matrices"]["disagreement"],
                     "prediction disagreement", "fraction of test inputs")
    write_uncertainty_figures(figs, results)
    run.finish(results, _report(results))


def print_summary(results: dict[str, Any]) -> str:
    """The table the CLI prints."""
    return text_table(SUMMARY_HEADERS, summary_rows(results))


__all__ = ["BaselineRunConfig", "print_summary", "run_baseline"]
