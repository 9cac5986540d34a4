"""Table 4.1 analogue (issue #3): parent vs Noisy Subnetwork Ensemble on Fashion-MNIST.

For each architecture and seed: train a parent with the core loop (Adam 1e-3, constant,
batch 128, crop+flip), then run the library's ``noisy`` recipe with its defaults — σ from
the KL trust region (target 0.02, σ × density grid on the first 1,000 validation
examples), 16 mirrored + partitioned children at density 0.5, top 8 by validation
accuracy, mean of probabilities, parent not voting. Test split (10k) only for the final
numbers. Each finished (model, seed) is appended to table4_1.runs.jsonl; run directories
(with the parents, reusable) go to benchmarks/runs/table4_1/.

    .venv/bin/python benchmarks/table4_1.py --models mlp lenet-5 lenet-s resnet-8 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import RunLog, code_of, describe_code, header, mean_se, save

from evo_ensembles.recipes.noisy import NoisyRunConfig, run_noisy
from evo_ensembles.reporting import markdown_table

EPOCHS = {"mlp": 10, "lenet-5": 10, "lenet-s": 10, "resnet-8": 4}
RUNS = Path(__file__).resolve().parent / "runs" / "table4_1"
METRICS = ["accuracy", "nll", "ece"]


def run_one(model: str, seed: int, args) -> dict:
    cfg = NoisyRunConfig(model=model, parent_epochs=args.epochs or EPOCHS.get(model, 10), seed=seed,
                         population=16, top_k=8, target_kl=args.target_kl, subset=args.subset)
    r = run_noisy(cfg, RUNS / f"{model}_seed{seed}", progress=False)
    row = {"model": model, "seed": seed, "parent_epochs": cfg.parent_epochs,
           "parent": {k: r["parent"][k] for k in METRICS}, "ensemble": {k: r["ensemble"][k] for k in METRICS},
           "sigma": r["sigma"], "mean_kl": r["mean_kl"], "delta_accuracy": r["delta_accuracy"],
           "member_accuracy_mean": sum(m["accuracy"] for m in r["members"]) / len(r["members"]),
           "validation": {"parent": r["validation"]["parent"]["accuracy"],
                          "ensemble": r["validation"]["ensemble"]["accuracy"]},
           "trust_region_status": r["trust_region"]["status"][str(cfg.density)],
           "timing": r["timing"], **code_of(r)}
    print(f"  {model} seed {seed}: parent {row['parent']['accuracy']:.4f} -> ensemble "
          f"{row['ensemble']['accuracy']:.4f} (nll {row['parent']['nll']:.4f} -> {row['ensemble']['nll']:.4f}, "
          f"ece {row['parent']['ece']:.4f} -> {row['ensemble']['ece']:.4f}) sigma {row['sigma']:.4g} "
          f"KL {row['mean_kl']:.4f}", flush=True)
    return row


def report(rows: list[dict], meta: dict) -> None:
    models = list(dict.fromkeys(r["model"] for r in rows))
    table = []
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        cell = []
        for part in ("parent", "ensemble"):
            for k in METRICS:
                mu, se = mean_se([(100 if k == "accuracy" else 1) * r[part][k] for r in rs])
                cell.append(f"{mu:.2f} ± {se:.2f}" if k == "accuracy" else f"{mu:.4f} ± {se:.4f}")
        sig, sig_se = mean_se([r["sigma"] for r in rs])
        kl, kl_se = mean_se([r["mean_kl"] for r in rs])
        d, d_se = mean_se([100 * r["delta_accuracy"] for r in rs])
        wins = sum(r["delta_accuracy"] > 0 for r in rs)
        table.append([f"{m} (n={len(rs)})", *cell, f"{sig:.4f} ± {sig_se:.4f}", f"{kl:.4f} ± {kl_se:.4f}",
                      f"{d:+.2f} ± {d_se:.2f} ({wins}/{len(rs)} up)"])
    md = "\n\n".join([
        "# Table 4.1 analogue — Noisy Subnetwork Ensembles on Fashion-MNIST",
        "Parent → ensemble of the top 8 of 16 noisy children (mirrored + partitioned, density 0.5, "
        "σ from the KL trust region with target 0.02, selection on validation accuracy). Test split, "
        "10,000 images; ECE with 15 equal-width bins; mean ± standard error over seeds; KL is the "
        "members' mean KL(parent ‖ child) on test.",
        markdown_table(["Model", "Acc", "NLL", "ECE", "eAcc", "eNLL", "eECE", "σ", "KL", "ΔAcc (points)"],
                       table),
        f"Command: `{meta['command']}`; {describe_code([meta])}; {meta['hardware'].get('cpu', '')}; "
        f"{meta['date']}.",
    ]) + "\n"
    save("table4_1", {**meta, "rows": rows}, md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(EPOCHS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="parent epochs (default per model)")
    ap.add_argument("--target-kl", type=float, default=0.02)
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    log = RunLog("table4_1")
    rows = log.rows
    if not args.report_only:
        for seed in args.seeds:
            for model in args.models:
                if log.find(model=model, seed=seed):
                    continue
                log.append(run_one(model, seed, args))
                report(rows, header())
    report(rows, header())


if __name__ == "__main__":
    main()
