"""Do sparse-subnetwork siblings differ more than snapshot checkpoints? (issue 17, SPEC §5)

The dissertation (chapter 7) compares the members' feature visualisations with 64-bit
perceptual hashes and says the siblings of a Sparse Subnetwork Ensemble differ more than the
checkpoints of a Snapshot Ensemble, on every hash. This reads the lenet-s runs of
benchmarks/compare.py (same 16-epoch budget; sparse: parent 8 epochs + 4 children x 2 epochs
with the regime study's settings; snapshot: 4 cosine cycles of 4 epochs), runs
``evo-ensembles analyze`` on each (feature visualisation of one unit of the last conv layer
in every member, Adam lr 0.05, 1,024 steps; SmoothGrad maps of 8 test images; hashes) and
compares the mean pairwise distance between members, per hash and for RMSE, over seeds.

    .venv/bin/python benchmarks/hash_siblings.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import RESULTS, RunLog, footer, header, mean_se, save

from evo_ensembles.config.analyze import AnalyzeConfig
from evo_ensembles.recipes.analyze import run_analyze
from evo_ensembles.reporting import markdown_table

RUNS = Path(__file__).resolve().parent / "runs"
METHODS = ("sparse", "snapshot")
KINDS = ("average", "perceptual", "difference", "wavelet", "colour", "rmse")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="compare", help="the compare.py run name whose run directories are read")
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--channel", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1024)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    log = RunLog("hash_siblings")
    for seed in args.seeds:
        for method in METHODS:
            if log.find(method=method, seed=seed, channel=args.channel, steps=args.steps):
                continue
            run_dir = RUNS / "compare" / args.source / f"{args.model}_{method}_seed{seed}"
            if not (run_dir / "results.json").is_file():
                print(f"skip {method} seed {seed}: {run_dir} has not finished", flush=True)
                continue
            cfg = AnalyzeConfig(run_dir=str(run_dir), parts=("features", "saliency", "hashes"), channel=args.channel,
                                steps=args.steps, images=args.images, seed=seed, threads=args.threads)
            record = run_analyze(cfg, RUNS / "hash_siblings" / f"{method}_seed{seed}", progress=False)
            h = record["parts"]["hashes"]["result"]
            log.append({"method": method, "seed": seed, "channel": args.channel, "steps": args.steps,
                        "members": len(h["models"]) - int("parent" in h["models"]),
                        "features": h["features"], "saliency": h["saliency"]})
            print(f"{method} seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in h["features"].items()), flush=True)

    rows, verdict = [], {}
    seeds = sorted({r["seed"] for r in log if r["seed"] in args.seeds})
    for images in ("features", "saliency"):
        for kind in KINDS:
            cells, per = [], {}
            for method in METHODS:
                vals = {r["seed"]: r[images][kind] for r in log.where(method=method) if r["seed"] in args.seeds}
                per[method] = vals
                mu, se = mean_se(list(vals.values())) if vals else (float("nan"), float("nan"))
                cells.append(f"{mu:.4g} ± {se:.2g}")
            both = [s for s in seeds if s in per["sparse"] and s in per["snapshot"]]
            wins = sum(per["sparse"][s] > per["snapshot"][s] for s in both)
            verdict[f"{images}/{kind}"] = (wins, len(both))
            rows.append([images, kind, *cells, f"{wins}/{len(both)}"])
    info = header()
    holds = all(w == n and n > 0 for k, (w, n) in verdict.items() if k.startswith("features/") and "rmse" not in k)
    md = "\n\n".join([
        "# Do sparse-subnetwork siblings differ more than snapshot checkpoints?",
        f"Mean pairwise distance between the members of each ensemble ({args.model} on Fashion-MNIST, the "
        f"runs of compare.py `{args.source}`): Hamming distance (bits) between 64-bit hashes (colour: 70 bits) "
        f"and RMSE between the images, of the feature visualisations of unit {args.channel} of the last conv "
        f"layer ({args.steps} Adam steps) and of SmoothGrad maps of {args.images} test images (mean over images). "
        f"Mean ± s.e. over seeds {seeds}; the last column counts the seeds where the sparse siblings are farther "
        "apart than the snapshot checkpoints.",
        markdown_table(["images", "distance", "sparse siblings", "snapshot checkpoints", "sparse > snapshot"], rows),
        f"The paper's claim (siblings differ more on every hash of the feature visualisations): "
        f"{'holds' if holds else 'does not hold'} here, in every seed.",
        *footer(info),
    ]) + "\n"
    save("hash_siblings", {**info, "rows": [r for r in log if r["seed"] in args.seeds],
                           "verdict": {k: list(v) for k, v in verdict.items()}, "claim_holds": holds}, md)
    if seeds:  # the figures of seed 0's analyses, for the README
        for method in METHODS:
            src = RUNS / "hash_siblings" / f"{method}_seed{seeds[0]}" / "figures" / "features.png"
            if src.is_file():
                (RESULTS / f"hash_siblings_{method}_features.png").write_bytes(src.read_bytes())


if __name__ == "__main__":
    main()
