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
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import RunLog, footer, header, mean_se, save

from evo_ensembles.config.baseline import PEERS, BaselineRunConfig
from evo_ensembles.config.noisy import NoisyRunConfig
from evo_ensembles.config.sparse import SparseRunConfig, StochasticRunConfig
from evo_ensembles.devices import set_threads
from evo_ensembles.recipes.baseline import TITLES
from evo_ensembles.reporting import markdown_table

SUBNETWORK = ("sparse", "stochastic", "noisy")
DEFAULT_METHODS = [p for p in PEERS if p not in ("dropout", "mothernets")] + list(SUBNETWORK)
LABELS = {**TITLES, "sparse": "Sparse Subnetworks", "stochastic": "Stochastic Annealing",
          "noisy": "Noisy Subnetworks"}
RUNS = Path(__file__).resolve().parent / "runs" / "compare"


def run_method(method: str, model: str, epochs: int, seed: int, out: Path, threads: int | None,
               subset: int | None = None, corrupted_examples: int | None = None) -> dict:
    """One (method, seed) through the library's own run, resumable in ``out``."""
    common = {"model": model, "seed": seed, "threads": threads, "subset": subset,
              "corrupted_examples": corrupted_examples}
    if method in PEERS:
        from evo_ensembles.recipes.baseline import run_baseline

        return run_baseline(BaselineRunConfig(method=method, epochs=epochs, **common), out, progress=False)
    if method == "noisy":
        from evo_ensembles.recipes.noisy import run_noisy

        return run_noisy(NoisyRunConfig(parent_epochs=epochs, **common), out, progress=False)
    from evo_ensembles.recipes.sparse import run_sparse

    half, children = max(1, epochs // 2), 4
    cls = StochasticRunConfig if method == "stochastic" else SparseRunConfig
    cfg = cls(parent_epochs=half, children=children, child_epochs=max(1, (epochs - half) // children), **common)
    return run_sparse(cfg, out, progress=False)


def row_of(method: str, model: str, seed: int, results: dict, seconds: float) -> dict:
    e = results["ensemble"]
    c = (results.get("corrupted") or {}).get("ensemble") or {}
    return {"c_accuracy": c.get("accuracy"), "c_nll": c.get("nll"), "c_ece": c.get("ece"),
            "c_accuracy_by_severity": c.get("accuracy_by_severity"),"method": method, "model": model, "seed": seed, "accuracy": e["accuracy"], "nll": e["nll"],
            "ece": e["ece"], "members": e["size"], "training_flops": results.get("training_flops"),
            "epochs": results.get("epochs"), "wall_seconds": seconds,
            "parent_accuracy": (results.get("parent") or {}).get("accuracy"),
            "disagreement": results["diversity"]["disagreement"], "commit": results.get("commit")}


def table(rows: list[dict], methods: list[str]) -> tuple[list[str], list[list[object]]]:
    keys = ["accuracy", "nll", "ece"]
    corrupted = any(r.get("c_accuracy") is not None for r in rows)
    if corrupted:
        keys += ["c_accuracy", "c_nll", "c_ece"]
    names = {"accuracy": "Acc", "nll": "NLL", "ece": "ECE", "c_accuracy": "cAcc", "c_nll": "cNLL", "c_ece": "cECE"}
    headers = ["method", "M", "seeds", *(names[k] for k in keys), "FLOPs", "epochs", "wall (min)"]
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
                    f"{sum(r['wall_seconds'] for r in rs) / len(rs) / 60:.1f}"])
    return headers, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--epochs", type=int, default=16, help="the budget: one model's full training")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=[*PEERS, *SUBNETWORK])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="compare")
    ap.add_argument("--subset", type=int, default=None, help="training examples (smoke runs only)")
    ap.add_argument("--corrupted-examples", type=int, default=500,
                    help="images per corruption type x severity scored (when Fashion-MNIST-C is generated)")
    ap.add_argument("--report-only", action="store_true", help="write the table from the rows so far")
    args = ap.parse_args()
    set_threads(args.threads)
    log = RunLog(args.name)
    if not args.report_only:
        for seed in args.seeds:  # seed-major: a partial run still compares every method
            for method in args.methods:
                key = {"method": method, "model": args.model, "seed": seed}
                if log.find(**key):
                    continue
                out = RUNS / args.name / f"{args.model}_{method}_seed{seed}"
                t0 = time.perf_counter()
                results = run_method(method, args.model, args.epochs, seed, out, args.threads, args.subset,
                                     args.corrupted_examples)
                row = log.append(row_of(method, args.model, seed, results, time.perf_counter() - t0))
                print(f"{method:14s} seed {seed}: acc {row['accuracy']:.4f} nll {row['nll']:.4f} "
                      f"ece {row['ece']:.4f} flops {row['training_flops'] or float('nan'):.2f}x "
                      f"({row['wall_seconds'] / 60:.1f} min)", flush=True)
    rows = [r for r in log if r["model"] == args.model and r["seed"] in args.seeds]
    info = header()
    headers, body = table(rows, args.methods)
    md = "\n\n".join([
        f"# Method comparison — {args.model} on Fashion-MNIST, budget {args.epochs} epochs",
        "Every method at the same epoch budget (one model's full training); FLOPs relative to one dense "
        f"{args.model} trained {args.epochs} epochs, counted with torch.utils.flop_counter on a real training "
        "step (masked layers at their density); epochs summed over separately trained models; wall time on "
        "this machine. Test split (10,000 images); mean ± standard error over seeds "
        f"{sorted({r['seed'] for r in rows})}; ECE with 15 bins. cAcc/cNLL/cECE: means over the 23 corruption "
        f"types x 5 severities of Fashion-MNIST-C, the first {args.corrupted_examples} test images of each "
        "(evo_ensembles.data.corruptions; generate with `python -m evo_ensembles.data.corruptions fashion-mnist`).",
        markdown_table(headers, body),
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "model": args.model, "epochs": args.epochs, "rows": rows}, md)


if __name__ == "__main__":
    main()
