"""Decision boundaries of noisy subnetwork children on two interleaved spirals (SPEC §2, issue #3a).

A 3-layer MLP (64 units per hidden layer, ``mlp-64x3``) is trained with the library loop
(Adam 1e-3, 10 epochs, batch 16) on 2,500 points of two interleaved spirals, then
perturbed with mirrored sparse Gaussian noise for every σ ∈ {0.05, …, 0.25} × sparsity
∈ {0, 0.3, 0.6, 0.9} (density = 1 − sparsity; no partitioning, so every sparsity is
allowed). Each panel draws the parent's boundary (black, dashed) and the boundaries of 4
children (colour) over 250 held-out test points, titled with the children's mean test
accuracy and mean KL(parent ‖ child) on those points. The data are synthetic by definition
(the paper's toy problem): 2,500 training, 500 validation and 250 test points, generated
from separate seeds.

    .venv/bin/python benchmarks/two_spirals.py
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from _common import RESULTS, header, save

from evo_ensembles import TrainConfig, build_model, fit
from evo_ensembles.data import ArrayData
from evo_ensembles.ensemble import predict_probs
from evo_ensembles.es import ClassifierFitness, NoiseSampling, evaluate_children, make_noisy_specs
from evo_ensembles.reporting import _save, markdown_table, plt
from evo_ensembles.subnet import InPlacePerturber

SIGMAS = [0.05, 0.10, 0.15, 0.20, 0.25]
SPARSITIES = [0.0, 0.3, 0.6, 0.9]


def two_spirals(n: int, seed: int, noise: float = 0.3, turns: float = 1.75) -> ArrayData:
    """``n`` points of two interleaved spirals (classes 0/1, balanced), as in the classic task."""
    g = np.random.default_rng(seed)
    half = n // 2
    theta = np.sqrt(g.uniform(size=half)) * turns * 2 * math.pi
    arm = np.stack([theta * np.cos(theta), theta * np.sin(theta)], 1)
    pts = np.concatenate([arm, -arm]) + g.normal(scale=noise, size=(2 * half, 2))
    labels = np.concatenate([np.zeros(half), np.ones(half)]).astype(np.int64)
    order = g.permutation(2 * half)
    x = torch.tensor(pts[order] / (turns * 2 * math.pi), dtype=torch.float32)  # scale to ~[-1, 1]
    # Shaped (N, 1, 1, 2): the model registry takes (C, H, W) inputs.
    return ArrayData(x.view(-1, 1, 1, 2), torch.tensor(labels[order]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    train, val, test = (two_spirals(2500, args.seed), two_spirals(500, args.seed + 1000),
                        two_spirals(250, args.seed + 2000))
    model = build_model("mlp-64x3", (1, 1, 2), 2, seed=args.seed)
    res = fit(model, train, TrainConfig(epochs=args.epochs, lr=1e-3, batch_size=16, seed=args.seed),
              val=val, device="cpu", progress=False)
    model.eval()
    parent_acc = float((predict_probs(model, test.x).argmax(1) == test.y).float().mean())
    print(f"parent: test accuracy {parent_acc:.4f} after {args.epochs} epochs "
          f"(val {res.history[-1].get('val_accuracy', float('nan')):.4f})")

    lim = 1.25
    xs = torch.linspace(-lim, lim, 200)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).view(-1, 1, 1, 2)
    parent_field = predict_probs(model, grid)[:, 1].reshape(200, 200)
    perturber = InPlacePerturber(model)
    fitness = ClassifierFitness(test.x, test.y, reference=model)
    fig, axes = plt.subplots(len(SPARSITIES), len(SIGMAS), figsize=(3 * len(SIGMAS), 3 * len(SPARSITIES)),
                             sharex=True, sharey=True)
    rows = []
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    for i, sparsity in enumerate(SPARSITIES):
        for j, sigma in enumerate(SIGMAS):
            sampling = NoiseSampling(sigma=sigma, density=1.0 - sparsity, partitioned=False)
            specs = make_noisy_specs(4, seed=args.seed, sampling=sampling)
            recs = evaluate_children(model, specs, fitness, perturber=perturber, progress=False)
            ax = axes[i][j]
            ax.scatter(test.x[:, 0, 0, 0], test.x[:, 0, 0, 1], c=test.y, cmap="coolwarm", s=4, alpha=0.6)
            ax.contour(gx, gy, parent_field, levels=[0.5], colors="k", linestyles="--", linewidths=1)
            for spec, color in zip(specs, colors):
                with perturber.child(spec):
                    field = predict_probs(model, grid)[:, 1].reshape(200, 200)
                ax.contour(gx, gy, field, levels=[0.5], colors=color, linewidths=0.8)
            acc = float(np.mean([r["accuracy"] for r in recs]))
            kl = float(np.mean([r["kl"] for r in recs]))
            ax.set_title(f"σ={sigma:g}, sparsity={sparsity:g}\nacc {acc:.3f}, KL {kl:.3f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            rows.append({"sigma": sigma, "sparsity": sparsity, "child_accuracy": acc, "kl": kl,
                         "children": [{"accuracy": r["accuracy"], "kl": r["kl"]} for r in recs]})
    fig.suptitle(f"Two spirals, mlp-64x3 parent (test acc {parent_acc:.3f}): parent boundary dashed, "
                 "4 mirrored noisy children coloured", fontsize=10)
    _save(fig, RESULTS / "two_spirals_boundaries.png")
    table = [[r["sigma"], r["sparsity"], r["child_accuracy"], r["kl"]] for r in rows]
    md = "\n\n".join([
        "# Two spirals: noisy subnetwork children (σ × sparsity)",
        f"Parent mlp-64x3, {args.epochs} epochs Adam 1e-3 batch 16: test accuracy {parent_acc:.4f} "
        "(250 points). Each cell: 4 mirrored children (2 draws), mean test accuracy and mean "
        "KL(parent ‖ child) on the test points. Figure: two_spirals_boundaries.png.",
        markdown_table(["σ", "sparsity", "child accuracy", "KL"], table),
    ]) + "\n"
    meta = header()
    save("two_spirals", {**meta, "parent_accuracy": parent_acc, "seed": args.seed, "rows": rows}, md)


if __name__ == "__main__":
    main()
