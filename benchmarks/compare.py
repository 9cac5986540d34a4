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

from _common import RunLog, footer, header, made_at, mean_se, save

from evo_ensembles.config.baseline import PEERS, BaselineRunConfig
from evo_ensembles.config.noisy import NoisyRunConfig
from evo_ensembles.config.sparse import SparseRunConfig, StochasticRunConfig
from evo_ensembles.devices import set_threads
from evo_ensembles.recipes.baseline import TITLES
from evo_ensembles.reporting import markdown_table, plot_lines

SUBNETWORK = ("sparse", "stochastic", "noisy")
DEFAULT_METHODS = [p for p in PEERS if p not in ("dropout", "mothernets")] + list(SUBNETWORK)
# the rows of the paper's Tables 5.2/6.2, in its order
LARGE_METHODS = ["independent", "mc-dropout", "snapshot", "fge", "sparse", "stochastic", "noisy", "treenet",
                 "batchensemble", "mimo", "edst", "dst", "deep-ensemble"]
LABELS = {**TITLES, "sparse": "Sparse Subnetworks", "stochastic": "Stochastic Annealing",
          "noisy": "Noisy Subnetworks"}
RUNS = Path(__file__).resolve().parent / "runs" / "compare"


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
    if method in PEERS:
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
            "c_accuracy_by_severity": c.get("accuracy_by_severity"), "members": e["size"], "training_flops": results.get("training_flops"),
            "epochs": results.get("epochs"), "wall_seconds": seconds,
            "parent_accuracy": (results.get("parent") or {}).get("accuracy"),
            **{k: results["diversity"][k] for k in ("disagreement", "kl", "correlation")},
            "commit": results.get("commit")}


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
    by_sev, by_cost = {}, {}
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
    if by_sev:
        plot_lines(RESULTS / f"{name}_severity.png", by_sev, xlabel="corruption severity (0: clean test)",
                   ylabel="accuracy", title="Accuracy vs severity (Fashion-MNIST-C)")
        out.append(f"{name}_severity.png")
    if by_cost:
        plot_lines(RESULTS / f"{name}_nll_vs_flops.png", by_cost, xlabel="training FLOPs (x one model)",
                   ylabel="test NLL", title="NLL vs training cost", logx=True, markers_only=True)
        out.append(f"{name}_nll_vs_flops.png")
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


def diverged(row: dict, args) -> bool:
    """Whether a run's training diverged: its validation NLL is not finite, or a member's
    validation NLL is no better than chance (:func:`collapsed`).

    Rows logged before ``val_nll`` was recorded read it from their run's results.json; when
    that run directory is gone (a fresh machine), from whether the row's own NLL is finite: a
    network that diverged to NaN is NaN on every split, and only finiteness is read, never
    the value."""
    nll = row.get("val_nll")
    if "val_nll" not in row:
        path = run_dir(args, row["method"], row["seed"], row["lr"], row.get("base_lr", row["lr"])) / "results.json"
        nll = json.loads(path.read_text())["validation"]["ensemble"]["nll"] if path.is_file() else row.get("nll")
    return nll is None or not math.isfinite(nll) or bool(row.get("val_collapsed"))


def run_seed(log: RunLog, args, base: dict, method: str, seed: int, lrs: list[float]) -> None:
    """One (method, seed), resumable. A run whose training diverges (:func:`diverged`)
    is run again at the next lower learning rate of the grid: the rule sees no test number.
    A method starts at the rate at which its seed 0 trained, so later seeds skip a known failure."""
    key = {"method": method, "model": args.model, "seed": seed}
    lower = sorted((lr for lr in lrs if lr < base["lr"]), reverse=True)
    candidates = [base["lr"], *lower]
    if seed != args.seeds[0]:
        first = [r for r in log.where(method=method, model=args.model, seed=args.seeds[0])
                 if not diverged(r, args)]
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
                              "val_collapsed": collapsed(results)})
            print(f"{method:14s} seed {seed}: lr {lr:g} acc {row['accuracy']:.4f} nll {row['nll']:.4f} "
                  f"ece {row['ece']:.4f} flops {vs_budget(row, args)['training_flops'] or float('nan'):.2f}x "
                  f"({row['wall_seconds'] / 60:.1f} min)", flush=True)
        if not diverged(row, args):
            return
        print(f"{method} seed {seed}: diverged at lr {lr:g} (validation NLL not finite or a member no better "
              "than chance)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--epochs", type=int, default=16, help="the budget: one model's full training")
    ap.add_argument("--methods", nargs="+", default=None, choices=[*PEERS, *SUBNETWORK],
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
    args.methods = args.methods or (DEFAULT_METHODS if args.recipe == "small" else LARGE_METHODS)
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
    bad = [diverged(r, args) for r in rows]
    failed, rows = [r for r, b in zip(rows, bad) if b], [vs_budget(r, args) for r, b in zip(rows, bad) if not b]
    info = header()
    headers, body = table(rows, args.methods)
    figures = plots(rows, args.methods, args.name)
    md = "\n\n".join([
        f"# Method comparison — {args.model} on Fashion-MNIST, budget {args.epochs} epochs ({args.recipe} recipe)",
        ("Every method at the same epoch budget (one model's full training), Adam at a constant rate; "
         if args.recipe == "small" else
         "SPEC §3's large-budget recipe scaled to this machine: SGD Nesterov 0.9, weight decay 5e-4, the "
         "step-linear parent schedule, children one-cycle; each method at its paper budget ratio (see "
         "plan() in benchmarks/compare.py); no crop/flip augmentation (the paper's CIFAR recipe has it; on "
         "Fashion-MNIST the regime study, benchmarks/results/regime.md, found it lowers the children's "
         "ensemble by 2 points on validation and lifts the parent's by 0.3); ") + f"lr {sorted({r.get('lr') for r in rows if r.get('lr')})} "
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
            + "; ".join(f"{LABELS.get(m, m)} {', '.join(f'{v:g}' for v in sorted({r['lr'] for r in rows if r['method'] == m}))}"
                        for m in args.methods if any(r["method"] == m for r in rows)) + ".")]
          if failed else []),
        *[f"![{name}]({name})" for name in figures],
        f"Runs trained at {made_at(rows)}"
        + "; this page was written by the footer's.",
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "model": args.model, "epochs": args.epochs, "rows": rows}, md)


if __name__ == "__main__":
    main()
