"""One comparison runner (issue 15): any set of methods at one stated budget, on one model and
data set, over seeds; one table of Acc, NLL, ECE, training FLOPs, epochs and wall time.

The budget is ``--epochs`` E, one model's full training, and every method gets it:
  peers         the ``baseline`` run (evo_ensembles.recipes.baseline): independent, mc-dropout,
                snapshot, fge, treenet, batchensemble, mimo, edst run E epochs; bagging,
                deep-ensemble and dst train M members of E/M epochs each; mothernets (MLPs
                only) trains a mothernet E/2 epochs, then each member E/2
  sparse        parent E/2 epochs + 4 children x (E/2)/4 epochs, the library's defaults
                otherwise (density 0.75, first/last layers dense, one-cycle at 3x lr)
  stochastic    the same with temperature annealing (T0 0.5 over 1 epoch)
  noisy         parent E epochs + the library's noisy defaults (no training of children)
Methods with more work per epoch (TreeNet, BatchEnsemble, MIMO) show it in the FLOPs column,
counted with torch.utils.flop_counter on a real training step relative to one dense model
trained E epochs. Every run is a run directory under runs/compare/<name>/ (resumable) and
one row in results/<name>.runs.jsonl; metrics are on the untouched test split, mean ± s.e.
over seeds.

    .venv/bin/python benchmarks/compare.py --model lenet-s --epochs 16 --seeds 0 1 2
    .venv/bin/python benchmarks/compare.py --model mlp-256 --methods independent deep-ensemble mothernets sparse \\
        --name compare_mlp

``--recipe large`` is SPEC §3's large-budget recipe with every method at its paper budget
ratio (see :func:`plan`), the rate chosen on validation from ``--lr`` candidates (issue 16):

    .venv/bin/python benchmarks/compare.py --recipe large --model lenet-s --epochs 20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from _common import RunLog, code_of, footer, header, made_at, mean_se, save, trained_by

from evo_ensembles.config.baseline import PEERS, BaselineRunConfig
from evo_ensembles.config.noisy import NoisyRunConfig
from evo_ensembles.config.sparse import SparseRunConfig, StochasticRunConfig
from evo_ensembles.devices import set_threads
from evo_ensembles.methods.registry import title
from evo_ensembles.reporting import markdown_table, plot_lines
from evo_ensembles.run_folder import LAYOUT

SUBNETWORK = ("sparse", "stochastic", "noisy")
# the default recipe's rows, in the order its tables have always had
DEFAULT_METHODS = ["independent", "mc-dropout", "bagging", "deep-ensemble", "snapshot", "fge", "treenet",
                   "batchensemble", "mimo", "dst", "edst", *SUBNETWORK]
# the rows of the paper's Tables 5.2/6.2, in its order
LARGE_METHODS = ["independent", "mc-dropout", "snapshot", "fge", "sparse", "stochastic", "noisy", "treenet",
                 "batchensemble", "mimo", "edst", "dst", "deep-ensemble"]
LABELS = {**{p: title(p) for p in PEERS}, "sparse": "Sparse Subnetworks", "stochastic": "Stochastic Annealing",
          "noisy": "Noisy Subnetworks"}
RUNS = Path(__file__).resolve().parent / "runs" / "compare"
# The deep-ensemble equivalent's reference: 4 members, each trained the whole budget E (a deep
# ensemble as it is normally trained). The large recipe's deep-ensemble row is exactly that.
REFERENCE = "reference-deep-ensemble"
LABELS[REFERENCE] = "Deep ensemble, 4 x full budget (DEE reference)"
OOD_SETS = ("digits", "letters", "noise-uniform", "noise-gaussian")


def plan(method: str, epochs: int, recipe: str, child_epochs: int | None = None) -> dict:
    """The run config keywords of ``method`` at a budget of ``epochs`` (one model's training).

    ``small``: every method gets the same epochs (SPEC §3's small-budget rule), ensembles of
    separate models split them. ``large``: SPEC §3's large-budget recipe with each method at
    its paper budget ratio (Tables 5.2/6.2, relative to 200 epochs): parent 70% + 6 children
    x 5% (d = 0.5 partitions, one-cycle); Snapshot M=5; FGE 78% pre-training then 2-epoch
    cycles; TreeNet/BatchEnsemble/MIMO 1.25x; DST 3 x 1.25x at density 0.2; EDST one run of
    4.25x at density 0.1; dense ensemble 4 x 1x. ``child_epochs`` overrides the large recipe's
    tuning epochs per sparse/stochastic child (a regime check: the paper's children get ~9x more
    steps than 5% of a 20-epoch Fashion-MNIST budget gives).
    """
    e = epochs
    if method == REFERENCE:  # the DEE curve: members each trained the full budget, outside equal-budget rows
        return {"method": "deep-ensemble", "epochs": e, "members": 4, "member_epochs": e}
    if recipe == "small":
        if method in PEERS:
            return {"method": method, "epochs": e}
        if method == "noisy":
            return {"parent_epochs": e}
        half = max(1, e // 2)
        return {"parent_epochs": half, "children": 4, "child_epochs": max(1, (e - half) // 4)}
    child = child_epochs or max(1, round(0.05 * e))
    large = {
        "sparse": {"parent_epochs": round(0.7 * e), "children": 6, "child_epochs": child, "partition": True},
        "stochastic": {"parent_epochs": round(0.7 * e), "children": 6, "child_epochs": child, "partition": True,
                       "anneal_epochs": child},
        "noisy": {"parent_epochs": e},
        "snapshot": {"method": "snapshot", "epochs": e, "members": 5},
        "fge": {"method": "fge", "epochs": e, "members": max(1, (e - round(0.78 * e)) // 2), "cycle_epochs": 2},
        "treenet": {"method": "treenet", "epochs": round(1.25 * e), "members": 3},
        "batchensemble": {"method": "batchensemble", "epochs": round(1.25 * e), "members": 4},
        "mimo": {"method": "mimo", "epochs": round(1.25 * e), "members": 3},
        "dst": {"method": "dst", "epochs": e, "members": 3, "member_epochs": round(1.25 * e), "density": 0.2},
        "edst": {"method": "edst", "epochs": round(4.25 * e), "members": 7, "density": 0.1},
        "deep-ensemble": {"method": "deep-ensemble", "epochs": e, "members": 4, "member_epochs": e},
        "mc-dropout": {"method": "mc-dropout", "epochs": e},
        "independent": {"method": "independent", "epochs": e},
    }
    if method not in large:
        raise SystemExit(f"--recipe large has no budget rule for {method}")
    return large[method]


def run_method(method: str, kwargs: dict, common: dict, out: Path) -> dict:
    """One (method, seed) through the library's own run, resumable in ``out``."""
    if method in PEERS or method == REFERENCE:
        from evo_ensembles.recipes.baseline import run_baseline

        return run_baseline(BaselineRunConfig(**kwargs, **common), out, progress=False)
    if method == "noisy":
        from evo_ensembles.recipes.noisy import run_noisy

        return run_noisy(NoisyRunConfig(**kwargs, **common), out, progress=False)
    from evo_ensembles.recipes.sparse import run_sparse

    cls = StochasticRunConfig if method == "stochastic" else SparseRunConfig
    return run_sparse(cls(**kwargs, **common), out, progress=False)


def choose_lr(log: RunLog, lrs: list[float], args, base: dict) -> float:
    """The learning rate with the best validation accuracy of ``independent`` at seed 0 (kept
    in the run log, so it is chosen once and never on the test split)."""
    best = None
    for lr in lrs:
        row = log.find(kind="lr-probe", model=args.model, lr=lr)
        if row is None:
            out = RUNS / args.name / f"{args.model}_lr-probe_{lr:g}"
            results = run_method("independent", plan("independent", args.epochs, args.recipe),
                                 {**base, "seed": 0, "lr": lr}, out)
            row = log.append({"kind": "lr-probe", "model": args.model, "lr": lr,
                              "val_accuracy": results["validation"]["ensemble"]["accuracy"]})
            print(f"lr {lr:g}: validation accuracy {row['val_accuracy']:.4f}", flush=True)
        if best is None or row["val_accuracy"] > best["val_accuracy"]:
            best = row
    print(f"chosen lr {best['lr']:g} (validation)", flush=True)
    return best["lr"]


def row_of(method: str, model: str, seed: int, results: dict, seconds: float) -> dict:
    e = results["ensemble"]
    c = (results.get("corrupted") or {}).get("ensemble") or {}
    return {"method": method, "model": model, "seed": seed, "accuracy": e["accuracy"], "nll": e["nll"],
            "ece": e["ece"], "c_accuracy": c.get("accuracy"), "c_nll": c.get("nll"), "c_ece": c.get("ece"),
            "c_accuracy_by_severity": c.get("accuracy_by_severity"), "members": e["size"],
            "training_flops": results.get("training_flops"),
            "epochs": results.get("epochs"), "wall_seconds": seconds,
            "parent_accuracy": (results.get("parent") or {}).get("accuracy"),
            **{k: results["diversity"][k] for k in ("disagreement", "kl", "correlation")},
            **uncertainty_of(results),
            **code_of(results)}


def uncertainty_of(results: dict) -> dict:
    """A run's temperature-scaled scores, OOD AUROCs and selective risks, for its row."""
    from evo_ensembles.scoring import ood_summary

    cal = results.get("calibrated") or {}
    ens, par = cal.get("ensemble") or {}, cal.get("parent") or {}
    sel = results.get("selective") or {}
    row = {"cal_accuracy": (ens.get("test") or {}).get("accuracy"), "cal_nll": (ens.get("test") or {}).get("nll"),
           "cal_ece": (ens.get("test") or {}).get("ece"), "temperature": ens.get("temperature"),
           "t_fallback": (ens.get("fit") or {}).get("fallback"),
           "val_nll_before_t": (ens.get("fit") or {}).get("nll_before"),
           "val_nll_after_t": (ens.get("fit") or {}).get("nll_after"),
           "parent_nll": (results.get("parent") or {}).get("nll"),
           "parent_cal_nll": (par.get("test") or {}).get("nll"), "parent_cal_ece": (par.get("test") or {}).get("ece"),
           "parent_temperature": par.get("temperature"),
           "aurc": (sel.get("ensemble") or {}).get("aurc"), "augrc": (sel.get("ensemble") or {}).get("augrc"),
           "risk90": (sel.get("ensemble") or {}).get("risk_at_90"),
           "parent_aurc": (sel.get("parent") or {}).get("aurc"),
           "auroc": ood_summary(results, "ensemble"), "parent_auroc": ood_summary(results, "parent"),
           "adaptive_ece": (results.get("ensemble") or {}).get("adaptive_ece"),
           "cal_adaptive_ece": (ens.get("test") or {}).get("adaptive_ece"),
           "member_temperatures": [m.get("temperature") for m in cal.get("members") or []],
           "ood_full": (results.get("ood") or {}).get("sets"), "selective_full": sel,
           "size_curve": (cal.get("size_curve") or {}).get("nll")}
    return row


def table(rows: list[dict], methods: list[str]) -> tuple[list[str], list[list[object]]]:
    keys = ["accuracy", "nll", "ece"]
    corrupted = any(r.get("c_accuracy") is not None for r in rows)
    if corrupted:
        keys += ["c_accuracy", "c_nll", "c_ece"]
    names = {"accuracy": "Acc", "nll": "NLL", "ece": "ECE", "c_accuracy": "cAcc", "c_nll": "cNLL", "c_ece": "cECE"}
    headers = ["method", "M", "seeds", *(names[k] for k in keys), "FLOPs", "epochs", "wall (min, median)"]
    out = []
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        cells = []
        for k in keys:
            values = [r[k] for r in rs if r.get(k) is not None]
            mu, se = mean_se(values) if values else (float("nan"), float("nan"))
            cells.append(f"{mu:.4f} ± {se:.4f}")
        flops = [r["training_flops"] for r in rs if r["training_flops"] is not None]
        out.append([LABELS.get(m, m), rs[0]["members"], len(rs), *cells,
                    f"{sum(flops) / len(flops):.2f}x" if flops else "n/a", f"{rs[0]['epochs']:g}",
                    f"{statistics.median(r['wall_seconds'] for r in rs) / 60:.1f}"])
    return headers, out


def plots(rows: list[dict], methods: list[str], name: str) -> list[str]:
    """Accuracy vs corruption severity per method, and NLL vs training FLOPs (means over seeds)."""
    from _common import RESULTS

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    out = []
    by_sev, by_cost, by_cal, by_ood = {}, {}, {}, {}
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        label = LABELS.get(m, m)
        sevs = [r["c_accuracy_by_severity"] for r in rs if r.get("c_accuracy_by_severity")]
        if sevs:
            keys = sorted(sevs[0], key=int)
            by_sev[label] = ([0, *map(int, keys)], [mean(r["accuracy"] for r in rs),
                                                   *(mean(s[k] for s in sevs) for k in keys)])
        flops = mean(r["training_flops"] for r in rs)
        if flops:
            by_cost[label] = ([flops], [mean(r["nll"] for r in rs)])
            if any(r.get("cal_nll") is not None for r in rs):
                by_cal[label] = ([flops], [mean(r.get("cal_nll") for r in rs)])
            if any(mean_auroc(r) is not None for r in rs):
                by_ood[label] = ([flops], [mean(mean_auroc(r) for r in rs)])
    if by_sev:
        plot_lines(RESULTS / f"{name}_severity.png", by_sev, xlabel="corruption severity (0: clean test)",
                   ylabel="accuracy", title="Accuracy vs severity (Fashion-MNIST-C)")
        out.append(f"{name}_severity.png")
    if by_cost:
        plot_lines(RESULTS / f"{name}_nll_vs_flops.png", by_cost, xlabel="training FLOPs (x one model)",
                   ylabel="test NLL", title="NLL vs training cost", logx=True, markers_only=True)
        out.append(f"{name}_nll_vs_flops.png")
    if by_cal:
        plot_lines(RESULTS / f"{name}_calibrated_nll_vs_flops.png", by_cal, xlabel="training FLOPs (x one model)",
                   ylabel="test NLL after temperature scaling", title="Calibrated NLL vs training cost", logx=True,
                   markers_only=True)
        out.append(f"{name}_calibrated_nll_vs_flops.png")
    if by_ood:
        plot_lines(RESULTS / f"{name}_ood_auroc_vs_flops.png", by_ood, xlabel="training FLOPs (x one model)",
                   ylabel="OOD AUROC (max prob; mean of digits, letters, noise)",
                   title="OOD detection vs training cost", logx=True, markers_only=True)
        out.append(f"{name}_ood_auroc_vs_flops.png")
    return out


def auroc_of(row: dict, name: str, score: str, who: str = "auroc") -> float | None:
    """AUROC of one OOD set ("noise": the mean of the uniform and blurred-Gaussian sets)."""
    sets = row.get(who) or {}
    names = ["noise-uniform", "noise-gaussian"] if name == "noise" else [name]
    values = [sets.get(n, {}).get(score) for n in names]
    return None if any(v is None for v in values) else sum(values) / len(values)


def dee_of(row: dict, reference: dict[int, list[float]]) -> dict:
    """The row's deep-ensemble equivalent against its own seed's reference curve."""
    from evo_ensembles.metrics import deep_ensemble_equivalent

    curve = reference.get(row["seed"])
    if not curve or row.get("cal_nll") is None:
        return {"dee": None, "bound": "no reference"}
    return deep_ensemble_equivalent(row["cal_nll"], curve)


def references(rows: list[dict], recipe: str) -> dict[int, list[float]]:
    """seed → the calibrated NLL curve of the deep ensemble whose members each trained the budget."""
    source = "deep-ensemble" if recipe == "large" else REFERENCE
    return {r["seed"]: r["size_curve"] for r in rows if r["method"] == source and r.get("size_curve")}


def cell(values: list, digits: int = 4) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:  # no spread from one seed
        return f"{values[0]:.{digits}f}"
    mu, se = mean_se(values)
    return f"{mu:.{digits}f} ± {se:.{digits}f}"


def dee_cell(dees: list[dict]) -> str:
    nums = [d["dee"] for d in dees if d["dee"] is not None]
    bounds = sorted({d["bound"] for d in dees if d["dee"] is None})
    if nums and not bounds:
        return cell(nums, 2)
    return " / ".join([*([cell(nums, 2)] if nums else []), *(f"{b} ({sum(d['bound'] == b for d in dees)})"
                                                            for b in bounds)])


UNCERTAINTY_HEADERS = ["method", "M", "NLL + T", "ECE + T", "T helped on test", "DEE", "AURC",
                       *(f"AUROC {s} ({k})" for s in ("digits", "letters", "noise") for k in ("MI", "MSP"))]


def uncertainty_table(rows: list[dict], methods: list[str], reference: dict[int, list[float]]) -> list[list[object]]:
    """Temperature-scaled NLL/ECE, how often T helped on test, DEE, AURC and OOD AUROCs per method."""
    out = []
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        if not rs or rs[0].get("cal_nll") is None:
            continue
        helped = sum(1 for r in rs if r["cal_nll"] < r["nll"])
        ood = []
        for s in ("digits", "letters", "noise"):
            for score in ("mutual_information", "max_prob"):
                single = score == "mutual_information" and rs[0]["members"] == 1
                ood.append("–" if single else cell([auroc_of(r, s, score) for r in rs]))
        out.append([LABELS.get(m, m), rs[0]["members"], cell([r["cal_nll"] for r in rs]),
                    cell([r["cal_ece"] for r in rs]), f"{helped}/{len(rs)}",
                    dee_cell([dee_of(r, reference) for r in rs]), cell([r["aurc"] for r in rs]), *ood])
    return out


def per_seed_temperature(rows: list[dict], methods: list[str]) -> list[list[object]]:
    """Per method and seed: T, validation NLL before/after, test NLL before/after, helped?"""
    out = []
    for m in methods:
        for r in sorted((r for r in rows if r["method"] == m and r.get("cal_nll") is not None),
                        key=lambda r: r["seed"]):
            out.append([LABELS.get(m, m), r["seed"], f"{r['temperature']:.3f}",
                        r["val_nll_before_t"], r["val_nll_after_t"], r["nll"], r["cal_nll"],
                        "yes" if r["cal_nll"] < r["nll"] else "no"])
        parents = [r for r in rows if r["method"] == m and r.get("parent_cal_nll") is not None]
        for r in sorted(parents, key=lambda r: r["seed"]):
            out.append([f"{LABELS.get(m, m)}: its parent", r["seed"], f"{r['parent_temperature']:.3f}", "", "",
                        r["parent_nll"], r["parent_cal_nll"], "yes" if r["parent_cal_nll"] < r["parent_nll"] else "no"])
    return out


def paired(a: list[dict], b: list[dict], key) -> tuple[float, float, int] | None:
    """Mean ± s.e. over shared seeds of key(a) − key(b)."""
    bs = {r["seed"]: r for r in b}
    d = [key(r) - key(bs[r["seed"]]) for r in a if r["seed"] in bs and key(r) is not None
         and key(bs[r["seed"]]) is not None]
    if not d:
        return None
    mu, se = mean_se(d)
    return mu, se, len(d)


def mean_auroc(r: dict, score: str = "max_prob") -> float | None:
    values = [auroc_of(r, s, score) for s in ("digits", "letters", "noise")]
    return None if any(v is None for v in values) else sum(values) / 3


def answers(rows: list[dict], methods: list[str]) -> list[list[object]]:
    """Per subnetwork method: paired differences (method − other, over seeds) in calibrated
    NLL (negative: the method is better) and in OOD AUROC by max probability averaged over
    digits, letters and noise (positive: the method is better)."""
    out = []
    for m in SUBNETWORK:
        mine = [r for r in rows if r["method"] == m]
        if not mine:
            continue
        others = [("its parent + T", [{**r, "cal_nll": r["parent_cal_nll"], "auroc": r["parent_auroc"]}
                                      for r in mine if r.get("parent_cal_nll") is not None])]
        others += [(LABELS.get(o, o) + " + T", [r for r in rows if r["method"] == o])
                   for o in methods if o != m and any(r["method"] == o for r in rows)]
        for name, rs in others:
            dn = paired(mine, rs, lambda r: r.get("cal_nll"))
            da = paired(mine, rs, mean_auroc)
            if dn is None:
                continue
            def verdict(d, lower_is_better: bool) -> str:
                if d is None or d[2] < 2:
                    return "– (needs 2+ seeds)"
                good = d[0] + 2 * d[1] < 0 if lower_is_better else d[0] - 2 * d[1] > 0
                bad = d[0] - 2 * d[1] > 0 if lower_is_better else d[0] + 2 * d[1] < 0
                return "better" if good else ("worse" if bad else "level")

            def diff(d) -> str:
                return "–" if d is None else (f"{d[0]:+.4f}" if d[2] < 2 else f"{d[0]:+.4f} ± {d[1]:.4f}")

            out.append([LABELS[m], name, diff(dn), verdict(dn, True), diff(da), verdict(da, False), dn[2]])
    return out


def vs_budget(row: dict, args) -> dict:
    """``row`` with its training FLOPs relative to one dense model trained the budget's
    ``--epochs`` E. A peer's run reports them relative to its own ``epochs`` (which the large
    recipe sets to 1.25E for TreeNet, BatchEnsemble and MIMO and to 4.25E for EDST), so those
    are rescaled by epochs / E. A subnetwork run counts against its parent's plus its children's
    epochs (its ``epochs``: E at the paper's ratios, more with ``--child-epochs``)."""
    if row["method"] in SUBNETWORK and row.get("epochs"):
        run_epochs = row["epochs"]
    else:
        run_epochs = plan(row["method"], args.epochs, args.recipe, args.child_epochs).get("epochs", args.epochs)
    flops = row.get("training_flops")
    return {**row, "training_flops": None if flops is None else flops * run_epochs / args.epochs}


def run_dir(args, method: str, seed: int, lr: float, base_lr: float) -> Path:
    tail = "" if lr == base_lr else f"_lr{lr:g}"
    return RUNS / args.name / f"{args.model}_{method}_seed{seed}{tail}"


def collapsed(results: dict) -> bool:
    """Whether a member of the run collapsed in training: its validation NLL is no better than
    chance (ln C, a uniform prediction), which averaging hides from the ensemble's own NLL."""
    members = (results.get("validation") or {}).get("members") or []
    chance = math.log(results["data"]["num_classes"])
    return any(not math.isfinite(m["nll"]) or m["nll"] >= chance - 1e-3 for m in members)


NUM_CLASSES = 10  # every run here is on Fashion-MNIST (the configs' default data set)


def diverged(row: dict, args, rows: list[dict] | None = None) -> bool:
    """Whether a run's training diverged, judged on validation only: never a test number.

    In order, from what the row has:
      1. its validation NLL (``val_nll``, logged with every run): not finite, or a member's
         validation NLL no better than chance (``val_collapsed``, :func:`collapsed`);
      2. rows logged before ``val_nll`` was recorded: their run's results.json, its
         validation NLL (or, without one, its validation accuracy as in 3);
      3. without either (the run directory is gone: a fresh machine), the row's validation
         accuracy (``val_accuracy``) when it has one: not finite, or at most 5 points above
         chance (1/C; a diverged network predicts one class);
      4. without any validation score: diverged when the log (``rows``) shows this (method,
         model, seed) run again at a lower rate from a base rate at least this row's, since
         :func:`run_seed` moves on to a lower rate only after this rule, reading the run's
         validation scores when its directory existed, found it diverged;
      5. otherwise not diverged: with no validation evidence the run is kept, even when its
         test NLL is NaN (a test number must not decide it).
    """
    if "val_nll" in row:
        nll = row["val_nll"]
        return nll is None or not math.isfinite(nll) or bool(row.get("val_collapsed"))
    path = run_dir(args, row["method"], row["seed"], row["lr"], row.get("base_lr", row["lr"])) / LAYOUT.results
    val = (json.loads(path.read_text()).get("validation") or {}).get("ensemble") if path.is_file() else None
    if val and val.get("nll") is not None:
        return not math.isfinite(val["nll"])
    accuracy = (val or {}).get("accuracy", row.get("val_accuracy"))
    if accuracy is not None:
        return not math.isfinite(accuracy) or accuracy <= 1 / row.get("num_classes", NUM_CLASSES) + 0.05
    return any(r is not row and r.get("kind") != "lr-probe" and r.get("method") == row["method"]
               and r.get("model") == row.get("model") and r.get("seed") == row["seed"]
               and r.get("lr") is not None and r["lr"] < row["lr"] and (r.get("base_lr") or 0) >= row["lr"]
               for r in rows or [])


def run_seed(log: RunLog, args, base: dict, method: str, seed: int, lrs: list[float]) -> None:
    """One (method, seed), resumable. A run whose training diverges (:func:`diverged`)
    is run again at the next lower learning rate of the grid: the rule sees no test number.
    A method starts at the rate at which its seed 0 trained, so later seeds skip a known failure."""
    key = {"method": method, "model": args.model, "seed": seed}
    lower = sorted((lr for lr in lrs if lr < base["lr"]), reverse=True)
    candidates = [base["lr"], *lower]
    if seed != args.seeds[0]:
        first = [r for r in log.where(method=method, model=args.model, seed=args.seeds[0])
                 if not diverged(r, args, log.rows)]
        if first:
            candidates = [lr for lr in candidates if lr <= first[-1]["lr"]]
    for lr in candidates:
        row = log.find(**key, lr=lr)
        if row is None:
            t0 = time.perf_counter()
            kwargs = plan(method, args.epochs, args.recipe, args.child_epochs)
            if args.recipe == "large" and method in ("sparse", "stochastic"):
                kwargs["child_lr"] = lr  # one-cycle to the parent's peak rate (SPEC §3)
            results = run_method(method, kwargs, {**base, "lr": lr, "seed": seed},
                                 run_dir(args, method, seed, lr, base["lr"]))
            row = log.append({**row_of(method, args.model, seed, results, time.perf_counter() - t0),
                              "lr": lr, "base_lr": base["lr"],
                              "val_nll": results["validation"]["ensemble"]["nll"],
                              "val_accuracy": results["validation"]["ensemble"]["accuracy"],
                              "val_collapsed": collapsed(results)})
            print(f"{method:14s} seed {seed}: lr {lr:g} acc {row['accuracy']:.4f} nll {row['nll']:.4f} "
                  f"ece {row['ece']:.4f} flops {vs_budget(row, args)['training_flops'] or float('nan'):.2f}x "
                  f"({row['wall_seconds'] / 60:.1f} min)", flush=True)
        if not diverged(row, args, log.rows):
            return
        print(f"{method} seed {seed}: diverged at lr {lr:g} (validation NLL not finite or a member no better "
              "than chance)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--epochs", type=int, default=16, help="the budget: one model's full training")
    ap.add_argument("--methods", nargs="+", default=None, choices=[*PEERS, *SUBNETWORK, REFERENCE],
                    help="default: every method (small), the paper's Table 5.2 rows (large)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipe", choices=("small", "large"), default="small",
                    help="small: equal epochs, Adam 1e-3; large: SPEC §3's large-budget recipe (SGD Nesterov, "
                         "weight decay 5e-4, step-linear parent schedule, one-cycle children) at the paper's ratios")
    ap.add_argument("--lr", type=float, nargs="+", default=None,
                    help="learning rate; several: chosen on seed 0's validation accuracy of independent")
    ap.add_argument("--name", default=None, help="default: compare (small), table5_2 (large)")
    ap.add_argument("--child-epochs", type=int, default=None,
                    help="large recipe: tuning epochs per sparse/stochastic child (default: 5%% of the budget); "
                         "use a separate --name, it leaves the paper's ratio")
    ap.add_argument("--subset", type=int, default=None, help="training examples (smoke runs only)")
    ap.add_argument("--corrupted-examples", type=int, default=500,
                    help="images per corruption type x severity scored (when Fashion-MNIST-C is generated)")
    ap.add_argument("--report-only", action="store_true", help="write the table from the rows so far")
    args = ap.parse_args()
    args.name = args.name or ("compare" if args.recipe == "small" else "table5_2")
    args.methods = args.methods or (DEFAULT_METHODS + [REFERENCE] if args.recipe == "small" else LARGE_METHODS)
    set_threads(args.threads)
    log = RunLog(args.name)
    base = {"model": args.model, "threads": args.threads, "subset": args.subset,
            "corrupted_examples": args.corrupted_examples}
    if args.recipe == "large":
        base.update(optimizer="sgd", weight_decay=5e-4)
    lrs = args.lr or ([1e-3] if args.recipe == "small" else [0.1, 0.05, 0.02])
    if not args.report_only:
        base["lr"] = choose_lr(log, lrs, args, base) if len(lrs) > 1 else lrs[0]
        for seed in args.seeds:  # seed-major: a partial run still compares every method
            for method in args.methods:
                run_seed(log, args, base, method, seed, lrs)
    rows = [r for r in log if r.get("kind") != "lr-probe" and r["model"] == args.model and r["seed"] in args.seeds]
    bad = [diverged(r, args, log.rows) for r in rows]
    failed, rows = [r for r, b in zip(rows, bad) if b], [vs_budget(r, args) for r, b in zip(rows, bad) if not b]
    info = header()
    headers, body = table(rows, args.methods)
    figures = plots(rows, args.methods, args.name)
    reference = references(rows, args.recipe)
    ref_label = LABELS["deep-ensemble" if args.recipe == "large" else REFERENCE]
    uncertainty = [
        "## Calibrated scores, deep-ensemble equivalent, selective risk and OOD detection",
        "Every run fits its temperatures on its own validation split (`evo_ensembles.scoring`: one T per model "
        "by validation NLL; an ensemble's T divides every member's logits before the probabilities are "
        "averaged); NLL + T and ECE + T are the temperature-scaled ensemble's test scores. \"T helped on "
        "test\": seeds whose test NLL fell with the temperature. DEE (Ashukha et al., 2020): the number of "
        f"members of the {ref_label} whose calibrated test NLL equals the method's NLL + T, read off that "
        "seed's curve of the reference's 1…4-member subsets (every subset temperature-scaled on validation; "
        "the mean over subsets of each size), linear between integer sizes; `<1` when one reference member is "
        "already better, `>4` when all four are worse (the count of such seeds in brackets). AURC: area under "
        "the risk-coverage curve of the temperature-scaled ensemble ranked by max probability (lower is "
        "better). AUROC: detection of each OOD set against the test split (`evo_ensembles.data.ood`: digits = "
        "scikit-learn's 1,797 handwritten digits resized to 28×28; letters = A–J rendered from Debian fonts; "
        "noise = the mean over uniform and blurred-Gaussian noise images) by mutual information (MI; "
        "undefined for one model) and by max probability (MSP), of the temperature-scaled ensemble. OOD sets "
        "chose nothing.",
        markdown_table(UNCERTAINTY_HEADERS, uncertainty_table(rows, args.methods, reference)),
        "### Does each subnetwork ensemble beat ...? (paired over seeds, method − other)",
        "Δ NLL + T below 0 and Δ AUROC above 0 favour the subnetwork method; \"better\"/\"worse\" when the "
        "difference is more than two standard errors from 0, else \"level\".",
        markdown_table(["method", "against", "Δ NLL + T", "", "Δ AUROC (MSP, mean of 3 sets)", "", "seeds"],
                       answers(rows, args.methods)),
        "### The temperature per seed (validation-fit; test NLL before and after)",
        markdown_table(["method", "seed", "T", "val NLL", "val NLL + T", "test NLL", "test NLL + T",
                        "helped on test"], per_seed_temperature(rows, args.methods)),
    ] if any(r.get("cal_nll") is not None for r in rows) else []
    md = "\n\n".join([
        f"# Method comparison — {args.model} on Fashion-MNIST, budget {args.epochs} epochs ({args.recipe} recipe)",
        ("Every method at the same epoch budget (one model's full training), Adam at a constant rate; "
         if args.recipe == "small" else
         "SPEC §3's large-budget recipe scaled to this machine: SGD Nesterov 0.9, weight decay 5e-4, the "
         "step-linear parent schedule, children one-cycle; each method at its paper budget ratio (see "
         "plan() in benchmarks/compare.py); no crop/flip augmentation (the paper's CIFAR recipe has it; on "
         "Fashion-MNIST the regime study, benchmarks/results/regime.md, found that augmenting the children "
         "lowers the ensemble's validation accuracy by 2 points, and augmenting the parent lowers the parent's "
         "own by 0.7 (while it lifts the ensemble's by 0.3)); ")
        + f"lr {sorted({r.get('lr') for r in rows if r.get('lr')})} "
        "(when several were given, chosen on seed 0's validation); FLOPs relative to one dense "
        f"{args.model} trained {args.epochs} epochs, counted with torch.utils.flop_counter on a real training "
        "step (masked layers at their density); epochs summed over separately trained models; wall time on "
        "this machine, the median over seeds (a seed that shared the box ran slower; a resumed one counts only "
        "its last part). Test split (10,000 images); mean ± standard error over seeds "
        f"{sorted({r['seed'] for r in rows})}; ECE with 15 bins. cAcc/cNLL/cECE: means over the 23 corruption "
        f"types x 5 severities of Fashion-MNIST-C, the first {args.corrupted_examples} test images of each "
        "(evo_ensembles.data.corruptions; generate with `python -m evo_ensembles.data.corruptions fashion-mnist`).",
        *([f"Regime check, not the paper's ratio: every sparse/stochastic child is tuned {args.child_epochs} "
           f"epochs (`--child-epochs {args.child_epochs}`) instead of 5% of the budget; the FLOPs column counts it."]
          if args.child_epochs else []),
        markdown_table(headers, body),
        *([("Runs whose training diverged (validation NLL not finite, or a member's validation NLL no better "
            "than chance, ln C), each run again at the next lower "
            "learning rate of the grid and left out of the table: "
            + "; ".join(f"{LABELS.get(r['method'], r['method'])} seed {r['seed']} at lr {r['lr']:g}"
                        for r in failed) + ". Learning rate per method: "
            + "; ".join(f"{LABELS.get(m, m)} "
                        f"{', '.join(f'{v:g}' for v in sorted({r['lr'] for r in rows if r['method'] == m}))}"
                        for m in args.methods if any(r["method"] == m for r in rows)) + ".")]
          if failed else []),
        *uncertainty,
        *[f"![{name}]({name})" for name in figures],
        f"Runs trained at {made_at(rows)}"
        + "; this page was written by the footer's. Rows trained by: " + trained_by(rows) + ".",
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "model": args.model, "epochs": args.epochs, "rows": rows}, md)


if __name__ == "__main__":
    main()
