"""Table 6.1 analogue (issue #5): pruning baselines vs annealed stochastic masks.

One parent (``--model``, default lenet-5, Adam 1e-3 for ``--parent-epochs``) is trained
once on the Fashion-MNIST training split (all of it, or ``--subset`` examples) and cached under
benchmarks/runs/table6_1/. Each run copies it, makes one sparse child and tunes it for
``--tune-epochs`` epochs through the library's one training loop:

  one-shot     prune to the target, then tune (KeepPruned)
  iterative    remove an equal share at the start of each of E_p epochs (IterativePruning)
  random       random annealing: P ~ U[0,1] annealed to its top (1 − sparsity) over E_a
  temperature  temperature annealing: target mask, pruned entries from T0 cosine-annealed to 0

with random or L1-magnitude selection (random annealing has no magnitude variant, as in
the paper), Adam at a constant lr or one-cycle (peak lr), at sparsities 0.5 … 0.98, over
``--seeds`` (mask + data-order seeds; the parent is shared). A sweep at sparsity
``--sweep-sparsity`` varies E_a/E_p and T0. Accuracy is reported on the untouched test
split; the sweep's best setting is chosen on the validation split. Each finished run is
appended to results/table6_1.runs.jsonl, so an interrupted run resumes where it stopped.

Size: 7 method×selection rows × 2 lr × 5 sparsities × 3 seeds = 210 main runs plus
(3 E values × 3 methods + 5 T0 values) × 3 seeds = 42 sweep runs, each 3 tuning epochs of
lenet-5 on the full 54,000-image training split. Measured here: 0.22 s per tuning epoch
on 2,000 examples at one thread, so ≈ 6 s per full epoch, 252 × 3 × 6 s ≈ 75 min, about
2 h with evaluation and a shared machine. Shrink with ``--subset``, ``--seeds``,
``--sparsities``, ``--tune-epochs``, ``--no-sweep``.

``--cost`` instead measures what the per-forward sampling costs: tuning-epoch time of a
temperature-annealed child (annealing every epoch) vs a plain pruned child, alternated
side by side, written to results/table6_1_cost.{json,md}.

    .venv/bin/python benchmarks/table6_1.py --threads 2
    .venv/bin/python benchmarks/table6_1.py --subset 2000 --sparsities 0.9 --seeds 0 --no-sweep
    .venv/bin/python benchmarks/table6_1.py --cost --subset 5000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import RESULTS, RunLog, describe_code, footer, header, mean_se, save

from evo_ensembles import ChildSpec, TrainConfig, load_dataset
from evo_ensembles.devices import resolve_device, set_threads
from evo_ensembles.methods.sparse import TunedChild, prune_and_tune
from evo_ensembles.methods.stochastic import build_child
from evo_ensembles.reporting import _save, markdown_table, plt
from evo_ensembles.subnet import derive_seed, mask_density
from evo_ensembles.train import evaluate_accuracy, parent_train_config
from evo_ensembles.train.parent import train_or_load_parent

RUNS = Path(__file__).resolve().parent / "runs" / "table6_1"
METHODS = ["one-shot", "iterative", "random", "temperature"]
LABELS = {
    "one-shot": "One-shot",
    "iterative": "Iterative",
    "random": "Random annealing",
    "temperature": "Temperature annealing",
}
KEY = ("group", "method", "selection", "lr", "sparsity", "epochs_e", "t0", "seed")


def make_spec(
    method: str, selection: str, sparsity: float, seed: int, e: int, t0: float
) -> ChildSpec:
    """The child descriptor of one run (seeded per run, so methods share masks per seed)."""
    base = {
        "mask_seed": derive_seed(seed, 6),
        "density": round(1.0 - sparsity, 6),
        "selection": selection,
    }
    if method == "one-shot":
        return ChildSpec("prune", **base)
    if method == "iterative":
        return ChildSpec("prune", prune_epochs=e, **base)
    return ChildSpec(
        "stochastic", anneal=method, t0=t0, anneal_epochs=e, anneal_schedule="cosine", **base
    )


def tune_config(args, lr_kind: str, seed: int) -> TrainConfig:
    lr = args.lr_constant if lr_kind == "constant" else args.lr_one_cycle
    return TrainConfig(
        epochs=args.tune_epochs,
        lr=lr,
        optimizer="adam",
        schedule=lr_kind,
        batch_size=args.batch_size,
        seed=seed,
    )


def tune(parent, data, spec: ChildSpec, cfg: TrainConfig, device, progress: bool = False) -> TunedChild:
    """One child from ``parent`` tuned through the library's ``prune_and_tune``.

    (Runs logged before this used ``fit`` directly with the run's seed as the data-order
    seed; ``prune_and_tune`` derives the child's data-order seed from it.)
    """
    done: list[TunedChild] = []
    prune_and_tune(parent, [spec], data.train, cfg, augment=data.augment, device=device,
                   progress=progress, child_factory=build_child, on_child=done.append)
    return done[0]


def run_one(parent, data, run: dict, args, device) -> dict:
    spec = make_spec(
        run["method"], run["selection"], run["sparsity"], run["seed"], run["epochs_e"], run["t0"]
    )
    cfg = tune_config(args, run["lr"], run["seed"])
    child = tune(parent, data, spec, cfg, device, args.progress)
    return {
        **run,
        "density": mask_density(child.mask),
        "val_accuracy": evaluate_accuracy(child.model, data.val, device),
        "test_accuracy": evaluate_accuracy(child.model, data.test, device),
        "tune_seconds": child.seconds,
        "epoch_seconds": [h["seconds"] for h in child.result.history],
    }


def planned_runs(args) -> list[dict]:
    runs = []
    combos = [
        (m, s)
        for s in ("random", "magnitude")
        for m in METHODS
        if not (m == "random" and s == "magnitude")
    ]
    combos = [(m, s) for m, s in combos if m in args.methods and s in args.selections]
    for seed in args.seeds:
        for lr in args.lrs:
            for sparsity in args.sparsities:
                for method, selection in combos:
                    # One-shot pruning has no schedule, so it runs once per cell whatever E is.
                    for e in args.e[:1] if method == "one-shot" else args.e:
                        runs.append(
                            {
                                "group": "main",
                                "method": method,
                                "selection": selection,
                                "lr": lr,
                                "sparsity": sparsity,
                                "epochs_e": e,
                                "t0": args.t0,
                                "seed": seed,
                            }
                        )
        if args.no_sweep:
            continue
        common = {
            "group": "sweep",
            "selection": "random",
            "lr": args.lrs[-1],
            "sparsity": args.sweep_sparsity,
            "seed": seed,
        }
        for e in args.sweep_e:
            for method in ("iterative", "random", "temperature"):
                runs.append({**common, "method": method, "epochs_e": e, "t0": args.t0})
        for t0 in args.sweep_t0:
            runs.append({**common, "method": "temperature", "epochs_e": args.e[0], "t0": t0})
    return runs


def cell(rows: list[dict], metric: str = "test_accuracy") -> str:
    if not rows:
        return "–"
    m, se = mean_se([r[metric] for r in rows])
    return f"{100 * m:.2f} ± {100 * se:.2f}"


def variant(row: dict) -> tuple[str, int | None]:
    """(method, E) of a main-grid row; one-shot pruning has no schedule, so no E."""
    return row["method"], None if row["method"] == "one-shot" else row["epochs_e"]


def variant_label(v: tuple[str, int | None], es: dict[str, list[int]]) -> str:
    method, e = v
    return LABELS[method] if e is None or len(es[method]) == 1 else f"{LABELS[method]}, E={e}"


def report(rows: list[dict], args, parent_acc: dict) -> tuple[str, dict]:
    main = [r for r in rows if r["group"] == "main"]
    sparsities = sorted({r["sparsity"] for r in main})
    es = {m: sorted({r["epochs_e"] for r in main if r["method"] == m}) for m in METHODS}
    variants = [(m, None) if m == "one-shot" else (m, e) for m in METHODS for e in es[m]]
    variants = list(dict.fromkeys(variants))
    parts, summary, ordering = [], {}, []
    for selection in ("random", "magnitude"):
        for lr in ("constant", "one-cycle"):
            panel_rows = [r for r in main if (r["selection"], r["lr"]) == (selection, lr)]
            body, panel = [], {}
            for v in variants:
                sel = [r for r in panel_rows if variant(r) == v]
                if not sel:
                    continue
                label = variant_label(v, es)
                body.append(
                    [label, *[cell([r for r in sel if r["sparsity"] == s]) for s in sparsities]]
                )
                for s in sparsities:
                    vals = {r["seed"]: r["test_accuracy"] for r in sel if r["sparsity"] == s}
                    if vals:
                        m, se = mean_se(list(vals.values()))
                        panel.setdefault(label, {})[str(s)] = {
                            "mean": m,
                            "se": se,
                            "n": len(vals),
                            "by_seed": vals,
                        }
            if not body:
                continue
            summary[f"{selection}/{lr}"] = panel
            parts.append(
                f"### {selection.capitalize()} pruning, {lr} lr (test accuracy %)\n\n"
                + markdown_table(["Method", *[f"{s:g}" for s in sparsities]], body)
            )
            base = panel.get(LABELS["one-shot"], {})
            for s in map(str, sparsities):
                means = {k: v[s]["mean"] for k, v in panel.items() if s in v}
                temps = [k for k in means if k.startswith(LABELS["temperature"])]
                if not temps or s not in base:
                    continue
                deltas = []
                for k in temps:
                    a, b = panel[k][s]["by_seed"], base[s]["by_seed"]
                    d = [a[seed] - b[seed] for seed in a if seed in b]
                    m, se = mean_se(d)
                    deltas.append(f"{k}: {100 * m:+.2f} ± {100 * se:.2f} (n={len(d)})")
                ordering.append([selection, lr, s, max(means, key=means.get), "; ".join(deltas)])
    if ordering:
        wins = sum(1 for o in ordering if o[3].startswith(LABELS["temperature"]))
        parts.append(
            f"### Does temperature annealing beat one-shot pruning?\n\n"
            f"Best row per cell and the paired difference temperature − one-shot (same masks and "
            f"data order per seed; percentage points, mean ± standard error over seeds). "
            f"Temperature annealing is the best row in {wins} of {len(ordering)} cells.\n\n"
            + markdown_table(
                ["selection", "lr", "sparsity", "best row", "temperature − one-shot"], ordering
            )
        )
    sweep = [r for r in rows if r["group"] == "sweep"]
    if sweep:
        body = []
        for method, e, t0 in sorted({(r["method"], r["epochs_e"], r["t0"]) for r in sweep}):
            sel = [r for r in sweep if (r["method"], r["epochs_e"], r["t0"]) == (method, e, t0)]
            body.append([LABELS[method], e, t0, cell(sel, "val_accuracy"), cell(sel), len(sel)])
        best = max(body, key=lambda b: float(b[3].split()[0]))
        parts.append(
            f"### Sweep of E_a / E_p and T0 (sparsity {args.sweep_sparsity}, random selection, "
            f"{args.lrs[-1]} lr)\n\n"
            + markdown_table(
                ["Method", "E_a / E_p", "T0", "val accuracy %", "test accuracy %", "n"], body
            )
            + f"\n\nBest on validation: {best[0]}, E = {best[1]}, T0 = {best[2]} "
            f"(test {best[4]})."
        )
    parts.insert(
        0,
        f"Parent: validation {100 * parent_acc['val']:.2f}%, test {100 * parent_acc['test']:.2f}%.",
    )
    return "\n\n".join(parts), summary


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy vs sparsity per method (and E), one panel per (selection, lr), SE bars."""
    main = [r for r in rows if r["group"] == "main"]
    es = {m: sorted({r["epochs_e"] for r in main if r["method"] == m}) for m in METHODS}
    variants = list(
        dict.fromkeys((m, None) if m == "one-shot" else (m, e) for m in METHODS for e in es[m])
    )
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharey=True)
    for ax, (selection, lr) in zip(
        axes.flat, [(s, lr) for s in ("random", "magnitude") for lr in ("constant", "one-cycle")]
    ):
        for v in variants:
            sel = [
                r for r in main if variant(r) == v and (r["selection"], r["lr"]) == (selection, lr)
            ]
            xs = sorted({r["sparsity"] for r in sel})
            if not xs:
                continue
            stats = [mean_se([r["test_accuracy"] for r in sel if r["sparsity"] == x]) for x in xs]
            ax.errorbar(
                xs,
                [m for m, _ in stats],
                yerr=[se for _, se in stats],
                marker="o",
                ms=3,
                capsize=2,
                label=variant_label(v, es),
            )
        ax.set_title(f"{selection} selection, {lr} lr", fontsize=9)
        ax.set_xlabel("sparsity")
        ax.set_ylabel("test accuracy")
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def measure_cost(parent, data, args, device) -> None:
    """Tuning-epoch seconds: stochastic masks (annealing all epochs) vs a plain pruned child."""
    times: dict[str, list[float]] = {"pruned": [], "stochastic": []}
    cfg = TrainConfig(epochs=args.cost_epochs, lr=1e-3, batch_size=args.batch_size, seed=0)
    for rep in range(args.cost_reps):
        for kind in ("pruned", "stochastic") if rep % 2 == 0 else ("stochastic", "pruned"):
            method = "one-shot" if kind == "pruned" else "temperature"
            spec = make_spec(method, "random", 0.9, rep, args.cost_epochs, 0.5)
            child = tune(parent, data, spec, cfg, device)
            times[kind] += [h["seconds"] for h in child.result.history]
    p, s = mean_se(times["pruned"]), mean_se(times["stochastic"])
    ratio = s[0] / p[0]
    info = header()
    md = (
        "\n\n".join(
            [
                "# Cost of per-forward Bernoulli masks (table6_1 --cost)",
                f"{args.model}, {len(data.train)} training examples, batch {args.batch_size}, "
                f"{torch.get_num_threads()} threads, device {device}; {args.cost_reps} alternated repetitions "
                f"× {args.cost_epochs} epochs each; sparsity 0.9, temperature annealing over every epoch.",
                markdown_table(
                    ["child", "seconds per tuning epoch", "n epochs"],
                    [
                        [
                            "plain pruned (KeepPruned)",
                            f"{p[0]:.3f} ± {p[1]:.3f}",
                            len(times["pruned"]),
                        ],
                        ["stochastic masks", f"{s[0]:.3f} ± {s[1]:.3f}", len(times["stochastic"])],
                    ],
                ),
                f"**Ratio stochastic / pruned: {ratio:.3f}**",
                *footer(info),
            ]
        )
        + "\n"
    )
    print(md)
    save("table6_1_cost", {**info, "args": vars(args), "seconds": times, "ratio": ratio}, md)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="lenet-5")
    ap.add_argument("--subset", type=int, default=None, help="training examples (default: all)")
    ap.add_argument("--parent-epochs", type=int, default=10)
    ap.add_argument("--tune-epochs", type=int, default=3)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.7, 0.9, 0.95, 0.98])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--lrs", nargs="+", default=["constant", "one-cycle"], choices=["constant", "one-cycle"]
    )
    ap.add_argument("--lr-constant", type=float, default=1e-3)
    ap.add_argument("--lr-one-cycle", type=float, default=1e-3, help="one-cycle peak lr")
    ap.add_argument(
        "--e",
        type=int,
        nargs="+",
        default=[1],
        help="E_a = E_p values of the main grid (default 1)",
    )
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument(
        "--selections", nargs="+", default=["random", "magnitude"], choices=["random", "magnitude"]
    )
    ap.add_argument("--t0", type=float, default=0.5)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-sparsity", type=float, default=0.9)
    ap.add_argument("--sweep-e", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--sweep-t0", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="table6_1")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument(
        "--report-only", action="store_true", help="only rebuild the table from the log"
    )
    ap.add_argument("--cost", action="store_true", help="measure the sampling cost instead")
    ap.add_argument("--cost-epochs", type=int, default=2)
    ap.add_argument("--cost-reps", type=int, default=4)
    args = ap.parse_args()

    set_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset("fashion-mnist", subset=args.subset, seed=0)
    out = RUNS / f"{args.model}_sub{args.subset}_ep{args.parent_epochs}"
    parent, _, _ = train_or_load_parent(
        out,
        data,
        args.model,
        parent_train_config(args.parent_epochs, 1e-3, "adam", 128, 0),
        parent_path=None,
        device=device,
        progress=args.progress,
    )
    if args.cost:
        measure_cost(parent, data, args, device)
        return
    parent_acc = {
        "val": evaluate_accuracy(parent, data.val, device),
        "test": evaluate_accuracy(parent, data.test, device),
    }
    log = RunLog(args.name)
    rows = log.rows
    done = {tuple(r[k] for k in KEY) for r in rows}
    t0 = time.perf_counter()
    todo = (
        []
        if args.report_only
        else [r for r in planned_runs(args) if tuple(r[k] for k in KEY) not in done]
    )
    for i, run in enumerate(todo):
        row = log.append(run_one(parent, data, run, args, device))
        print(
            f"[{i + 1}/{len(todo)}] {run['group']} {run['method']:11s} {run['selection']:9s} "
            f"{run['lr']:9s} s={run['sparsity']} E={run['epochs_e']} T0={run['t0']} seed {run['seed']}: "
            f"val {row['val_accuracy']:.4f} test {row['test_accuracy']:.4f} ({row['tune_seconds']:.0f}s)",
            flush=True,
        )
    if not rows:
        print("nothing logged yet")
        return
    plot(rows, RESULTS / f"{args.name}_accuracy_vs_sparsity.png")
    md_body, summary = report(rows, args, parent_acc)
    info = header()
    wall = sum(r["tune_seconds"] for r in rows)
    md = (
        "\n\n".join(
            [
                "# Table 6.1 analogue — pruning baselines vs stochastic annealing on Fashion-MNIST",
                f"Parent {args.model} ({args.parent_epochs} epochs Adam 1e-3) on {len(data.train)} training "
                f"examples; each child tuned {args.tune_epochs} epochs with Adam (constant {args.lr_constant} or "
                f"one-cycle peak {args.lr_one_cycle}), batch {args.batch_size}; main grid E_a = E_p ∈ {args.e}, "
                f"T0 = {args.t0}, cosine annealing; layerwise unstructured masks. Test split "
                f"({len(data.test)} images) for the numbers, validation ({len(data.val)}) for choosing the sweep's "
                f"best; mean ± standard error over seeds {args.seeds}.",
                md_body,
                f"![accuracy vs sparsity]({args.name}_accuracy_vs_sparsity.png)",
                f"Hardware: {info['hardware'].get('cpu')} ({info['hardware']['torch_threads']} threads); "
                f"{describe_code([info])}; date {info['date']}; summed tuning time {wall / 60:.1f} min "
                f"(this invocation {(time.perf_counter() - t0) / 60:.1f} min).",
                f"Command: `{info['command']}`",
            ]
        )
        + "\n"
    )
    print(md)
    save(
        args.name,
        {**info, "args": vars(args), "parent": parent_acc, "summary": summary, "runs": rows},
        md,
    )


if __name__ == "__main__":
    main()
