"""Is evolving beyond one population worth it? (issue #3, item 5b)

Parent: LeNet-S, 10 epochs Adam 1e-3 (shared with table4_1.py, seed 0). For each child seed,
four ways to get an 8-member ensemble, all selected on validation and scored on test:
  population-16   one population of 16 mirrored + partitioned noisy children, top 8
                  (the method's default; 16 evaluations)
  population-64   the same with 64 children, top 8 (64 evaluations: the budget of the next two)
  pgpe-4          EvoTorch PGPE from the parent (centre = parent, σ from the trust region,
                  ClipUp, subnetwork density 0.5), 4 generations × 16, top 8 of the last one
  snes-4          EvoTorch SNES, same set-up
σ comes from the trust region (target KL 0.02) of the seed's population-16 run.

    .venv/bin/python benchmarks/evolution.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import header, mean_se, save
from _parents import fashion_parent

from evo_ensembles.ensemble import combine, predict_probs
from evo_ensembles.es import ClassifierFitness, evolve
from evo_ensembles.methods.noisy import noisy_ensemble
from evo_ensembles.metrics import classification_metrics
from evo_ensembles.reporting import markdown_table

METHODS = ["population-16", "population-64", "pgpe-4", "snes-4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--generations", type=int, default=4)
    args = ap.parse_args()
    parent, data = fashion_parent("lenet-s")
    val_x, val_y = data.val.x, data.val.y
    parent_test = classification_metrics(predict_probs(parent, data.test.x), data.test.y)
    rows = []
    for seed in args.seeds:
        t = time.perf_counter()
        base = noisy_ensemble(parent, val_x, val_y, popsize=16, top_k=8, seed=seed, progress=False)
        sigma = base.sigma
        runs = {"population-16": (base.ensemble.member_probs(data.test.x), 16, time.perf_counter() - t,
                                  max(r["fitness"] for r in base.records))}
        t = time.perf_counter()
        big = noisy_ensemble(parent, val_x, val_y, popsize=64, top_k=8, sigma=sigma, seed=seed, progress=False)
        runs["population-64"] = (big.ensemble.member_probs(data.test.x), 64, time.perf_counter() - t,
                                 max(r["fitness"] for r in big.records))
        fitness = ClassifierFitness(val_x, val_y, reference=parent)
        for algo in ("pgpe", "snes"):
            t = time.perf_counter()
            evo = evolve(parent, fitness, algorithm=algo, generations=args.generations, popsize=16, top_k=8,
                         sigma=sigma, density=0.5, seed=seed, progress=False)
            probs = torch.stack([predict_probs(evo.child(i), data.test.x) for i in range(8)])
            runs[f"{algo}-{args.generations}"] = (probs, 16 * args.generations, time.perf_counter() - t,
                                                  max(h["best"] for h in evo.history))
        for name, (probs, evals, secs, best_val) in runs.items():
            m = classification_metrics(combine(probs), data.test.y)
            rows.append({"seed": seed, "method": name, "sigma": sigma, "evaluations": evals, "seconds": secs,
                         "best_validation_accuracy": best_val, **m,
                         "member_accuracy": float(sum(classification_metrics(p, data.test.y)["accuracy"]
                                                      for p in probs) / len(probs))})
            print(f"seed {seed} {name:14s} acc {m['accuracy']:.4f} nll {m['nll']:.4f} ece {m['ece']:.4f} "
                  f"best val {best_val:.4f} ({evals} evals, {secs:.0f}s)", flush=True)
    table = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for name in methods:
        rs = [r for r in rows if r["method"] == name]

        def f(key, scale=1.0, d=4, rs=rs):
            m, se = mean_se([scale * r[key] for r in rs])
            return f"{m:.{d}f} ± {se:.{d}f}"

        table.append([name, rs[0]["evaluations"], f("accuracy", 100, 2), f("nll"), f("ece"),
                      f("member_accuracy", 100, 2), f("best_validation_accuracy", 100, 2), f("seconds", 1, 1)])
    md = "\n\n".join([
        "# Noisy ensembles: one population vs continued evolution (LeNet-S, Fashion-MNIST)",
        f"Parent test accuracy {100 * parent_test['accuracy']:.2f}%, NLL {parent_test['nll']:.4f}, "
        f"ECE {parent_test['ece']:.4f}. 8-member ensembles (mean of probabilities), selection on "
        f"validation, test 10k; child seeds {args.seeds}, mean ± s.e.",
        markdown_table(["method", "evaluations", "test acc %", "NLL", "ECE", "member acc %",
                        "best val acc %", "seconds"], table),
    ]) + "\n"
    save("evolution", {**header(), "parent": parent_test, "rows": rows}, md)


if __name__ == "__main__":
    torch.set_num_threads(1)  # timings are single-threaded (other benchmarks may share the box)
    main()
