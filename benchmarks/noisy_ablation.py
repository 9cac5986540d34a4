"""Fashion-MNIST ablation of Noisy Subnetwork Ensembles (issue #3b; Figure 4.3 analogue).

Parent: LeNet-S, 10 epochs Adam 1e-3 (shared with table4_1.py, seed 0). Three parts:
  1. KL vs σ for densities 0.05 … 1.0 (mean over 8 mirrored children per cell; probe = the
     first 1,000 validation examples; no partitioning so every density is allowed).
  2. Child accuracy vs KL: every child of part 1, accuracy on the remaining validation data.
  3. Vote vs average: for 10 values of σ at density 0.5, 16 mirrored + partitioned children,
     the top 4 by validation accuracy, combined by mean of probabilities and by majority
     vote; test accuracy and NLL against the members' mean test KL. Three child seeds
     (mean ± s.e.).
Selection uses validation only; test is used for the reported curves.

    .venv/bin/python benchmarks/noisy_ablation.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import RESULTS, header, mean_se, save
from _parents import fashion_parent

from evo_ensembles.ensemble import combine, predict_probs
from evo_ensembles.es import (
    ClassifierFitness,
    NoiseSampling,
    SubnetworkES,
    evaluate_children,
    kl_grid,
)
from evo_ensembles.methods.noisy import NoisyEnsemble
from evo_ensembles.metrics import accuracy, mean_kl, nll
from evo_ensembles.reporting import _save, markdown_table, plot_kl_vs_sigma, plt
from evo_ensembles.subnet import InPlacePerturber

DENSITIES = [0.05, 0.1, 0.25, 0.5, 0.75, 1.0]
SIGMAS = [float(s) for s in np.geomspace(1e-3, 0.2, 14)]
ENSEMBLE_SIGMAS = [float(s) for s in np.geomspace(0.004, 0.08, 10)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    parent, data = fashion_parent(args.model)
    probe_x, probe_y = data.val.x[:1000], data.val.y[:1000]
    sel_x, sel_y = data.val.x[1000:], data.val.y[1000:]
    perturber = InPlacePerturber(parent)

    # 1 + 2: KL vs σ per density; accuracy (on the selection part of validation) vs KL.
    probe = ClassifierFitness(probe_x, probe_y, reference=parent)
    grid = kl_grid(perturber, probe, sigmas=SIGMAS, densities=DENSITIES, children=8,
                   sampling=NoiseSampling(sigma=0.0, partitioned=False), progress=True)
    plot_kl_vs_sigma(RESULTS / "noisy_ablation_kl_vs_sigma.png", grid, target=0.02,
                     title=f"{args.model} on Fashion-MNIST: KL vs σ")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for d in DENSITIES:
        rows = [r for r in grid if r["density"] == d]
        ax.plot([max(r["kl"], 1e-6) for r in rows], [r["accuracy"] for r in rows], marker="o", ms=3,
                label=f"density {d:g}")
    parent_probe_acc = accuracy(predict_probs(parent, probe_x), probe_y)
    ax.axhline(parent_probe_acc, color="#444", ls="--", lw=1, label="parent")
    ax.set_xscale("log")
    ax.set_xlabel("mean KL(parent ‖ child) on probe")
    ax.set_ylabel("mean child accuracy on probe")
    ax.legend(fontsize=7)
    _save(fig, RESULTS / "noisy_ablation_accuracy_vs_kl.png")

    # 3: top-4-of-16 ensembles by vote vs by average, across σ.
    parent_test = predict_probs(parent, data.test.x)
    fitness = ClassifierFitness(sel_x, sel_y, reference=parent)
    curves = []
    for sigma in ENSEMBLE_SIGMAS:
        per_seed = []
        for seed in args.seeds:
            es = SubnetworkES(16, 4, sampling=NoiseSampling(sigma=sigma, density=0.5))
            state = es.init(seed)
            specs, state = es.ask(state)
            state = es.tell(state, specs, evaluate_children(parent, specs, fitness, perturber=perturber,
                                                            progress=False))
            ens = NoisyEnsemble(parent, [c.spec for c in state.best])
            probs = ens.member_probs(data.test.x)
            per_seed.append({
                "mean": {"accuracy": accuracy(combine(probs, "mean"), data.test.y),
                         "nll": nll(combine(probs, "mean"), data.test.y)},
                "vote": {"accuracy": accuracy(combine(probs, "vote"), data.test.y),
                         "nll": nll(combine(probs, "vote"), data.test.y)},
                "member_accuracy": float(np.mean([accuracy(p, data.test.y) for p in probs])),
                "kl": float(np.mean([mean_kl(parent_test, p) for p in probs])),
            })
        row = {"sigma": sigma, "seeds": per_seed}
        for key in ("kl", "member_accuracy"):
            row[key] = mean_se([s[key] for s in per_seed])
        for rule in ("mean", "vote"):
            row[rule] = {m: mean_se([s[rule][m] for s in per_seed]) for m in ("accuracy", "nll")}
        curves.append(row)
        print(f"σ {sigma:.4f}: KL {row['kl'][0]:.4f} member {row['member_accuracy'][0]:.4f} "
              f"mean {row['mean']['accuracy'][0]:.4f} vote {row['vote']['accuracy'][0]:.4f}", flush=True)
    parent_acc = accuracy(parent_test, data.test.y)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    kl = [r["kl"][0] for r in curves]
    for label, key, style in [("average (top 4 of 16)", "mean", "-o"), ("vote (top 4 of 16)", "vote", "-s")]:
        ax.errorbar(kl, [r[key]["accuracy"][0] for r in curves], yerr=[r[key]["accuracy"][1] for r in curves],
                    fmt=style, ms=3, capsize=2, label=label)
    ax.plot(kl, [r["member_accuracy"][0] for r in curves], ":^", ms=3, label="mean member")
    ax.axhline(parent_acc, color="#444", ls="--", lw=1, label=f"parent {parent_acc:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel("members' mean KL(parent ‖ child) on test")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{args.model}: vote vs average")
    ax.legend(fontsize=7)
    _save(fig, RESULTS / "noisy_ablation_vote_vs_average.png")

    def f(ms, d=4, scale=1.0):
        return f"{scale * ms[0]:.{d}f} ± {scale * ms[1]:.{d}f}"

    table = [[r["sigma"], f(r["kl"]), f(r["member_accuracy"], 2, 100), f(r["mean"]["accuracy"], 2, 100),
              f(r["vote"]["accuracy"], 2, 100), f(r["mean"]["nll"]), f(r["vote"]["nll"])] for r in curves]
    kl_table = [[d] + [next(r["kl"] for r in grid if r["density"] == d and r["sigma"] == s) for s in SIGMAS[::2]]
                for d in DENSITIES]
    md = "\n\n".join([
        f"# Noisy Subnetwork Ensembles: Fashion-MNIST ablation ({args.model})",
        f"Parent test accuracy {100 * parent_acc:.2f}% (NLL {nll(parent_test, data.test.y):.4f}). "
        "Selection of the top 4 of 16 on validation (examples 1,000+); curves on the 10k test split; "
        f"child seeds {args.seeds}, mean ± s.e.",
        "## Mean KL(parent ‖ child) on the probe set, by density (rows) and σ (columns)",
        markdown_table(["density \\ σ"] + [f"{s:.4g}" for s in SIGMAS[::2]], kl_table),
        "![KL vs sigma](noisy_ablation_kl_vs_sigma.png) ![accuracy vs KL](noisy_ablation_accuracy_vs_kl.png)",
        "## Top-4-of-16 ensembles: average vs vote (test)",
        markdown_table(["σ", "KL", "member acc %", "average acc %", "vote acc %", "average NLL", "vote NLL"], table),
        "![vote vs average](noisy_ablation_vote_vs_average.png)",
    ]) + "\n"
    save("noisy_ablation", {**header(), "model": args.model, "parent_accuracy": parent_acc, "grid": grid,
                            "curves": curves}, md)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
