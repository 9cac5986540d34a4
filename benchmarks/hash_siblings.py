"""Do sparse-subnetwork siblings differ more than snapshot checkpoints? (issue 17, SPEC §5)

The dissertation (chapter 7) compares the members' feature visualisations with 64-bit
perceptual hashes and says the siblings of a Sparse Subnetwork Ensemble differ more than the
checkpoints of a Snapshot Ensemble, on every hash. This reads the lenet-s runs of
benchmarks/compare.py (same 16-epoch budget; sparse: parent 8 epochs + 4 children x 2 epochs
with the regime study's settings; snapshot: 4 cosine cycles of 4 epochs), runs
``evo-ensembles analyze`` on each (feature visualisation of one unit of the last conv layer
in every member, Adam lr 0.05, 1,024 steps; SmoothGrad maps of 8 test images; hashes) and
compares the mean pairwise distance between members, per hash and for RMSE, over seeds.
For the README it then completes the first seed's sparse analysis with the t-SNE and
loss-landscape parts and copies one figure of each kind to
``results/analyze_<figure>.png`` (``--no-gallery`` skips this; with ``--name`` other than
the default the copies are named ``<name>_analyze_<figure>.png``).

    .venv/bin/python benchmarks/hash_siblings.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS, RunLog, footer, header, mean_se, save

from evo_ensembles.baselines import PEERS
from evo_ensembles.config.analyze import AnalyzeConfig
from evo_ensembles.config.baseline import BaselineRunConfig
from evo_ensembles.recipes.analyze import run_analyze
from evo_ensembles.recipes.baseline import run_baseline
from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT

RUNS = Path(__file__).resolve().parent / "runs"
METHODS = ("sparse", "snapshot")
KINDS = ("average", "perceptual", "difference", "wavelet", "colour", "rmse")


def with_checkpoint(run_dir: Path, retrain: Path) -> Path:
    """``run_dir``, or the same peer run redone in ``retrain`` when ``run_dir`` kept no weights.

    Peer runs of compare.py made before peers saved their ensembles hold only results; the
    same config and seed retrains the same ensemble (its test accuracy is checked to match).
    """
    config = json.loads((run_dir / LAYOUT.config).read_text())
    if config.get("method") not in PEERS or (run_dir / LAYOUT.peer_ensemble).is_file():
        return run_dir
    print(f"{run_dir.name} kept no weights: retraining it in {retrain}", flush=True)
    again = run_baseline(BaselineRunConfig(**config), retrain, progress=False)
    before = json.loads((run_dir / LAYOUT.results).read_text())["ensemble"]["accuracy"]
    if abs(again["ensemble"]["accuracy"] - before) > 1e-9:
        raise SystemExit(f"{retrain}: retrained accuracy {again['ensemble']['accuracy']} is not the compare "
                         f"run's {before}; the code changed in between")
    return retrain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="compare", help="the compare.py run name whose run directories are read")
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--channel", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1024)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="hash_siblings", help="results/<name>.*, runs/<name>/ and its run log")
    ap.add_argument("--gallery", action=argparse.BooleanOptionalAction, default=True,
                    help="every part on the first seed's sparse run, its figures copied to results/")
    args = ap.parse_args()
    log = RunLog(args.name)
    for seed in args.seeds:
        for method in METHODS:
            if log.find(method=method, seed=seed, channel=args.channel, steps=args.steps):
                continue
            run_dir = RUNS / "compare" / args.source / f"{args.model}_{method}_seed{seed}"
            if not (run_dir / LAYOUT.results).is_file():
                print(f"skip {method} seed {seed}: {run_dir} has not finished", flush=True)
                continue
            run_dir = with_checkpoint(run_dir, RUNS / args.name / "train" / f"{method}_seed{seed}")
            cfg = AnalyzeConfig(run_dir=str(run_dir), parts=("features", "saliency", "hashes"), channel=args.channel,
                                steps=args.steps, images=args.images, seed=seed, threads=args.threads)
            record = run_analyze(cfg, RUNS / args.name / f"{method}_seed{seed}", progress=False)
            h = record["parts"]["hashes"]["result"]
            log.append({"method": method, "seed": seed, "channel": args.channel, "steps": args.steps,
                        "members": len(h["models"]) - int("parent" in h["models"]),
                        "features": h["features"], "saliency": h["saliency"]})
            print(f"{method} seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in h["features"].items()), flush=True)

    rows, verdict = [], {}
    mine = [r for r in log.where(channel=args.channel, steps=args.steps) if r["seed"] in args.seeds]
    seeds = sorted({r["seed"] for r in mine})
    for images in ("features", "saliency"):
        for kind in KINDS:
            cells, per = [], {}
            for method in METHODS:
                vals = {r["seed"]: r[images][kind] for r in mine if r["method"] == method}
                per[method] = vals
                mu, se = mean_se(list(vals.values())) if vals else (float("nan"), float("nan"))
                cells.append(f"{mu:.4g} ± {se:.2g}")
            both = [s for s in seeds if s in per["sparse"] and s in per["snapshot"]]
            wins = sum(per["sparse"][s] > per["snapshot"][s] for s in both)
            verdict[f"{images}/{kind}"] = (wins, len(both))
            rows.append([images, kind, *cells, f"{wins}/{len(both)}"])
    info = header()
    hashes = [k for k in verdict if k.startswith("features/") and not k.endswith("/rmse")]
    held = [k.split("/")[1] for k in hashes if verdict[k][0] == verdict[k][1] > 0]
    holds = len(held) == len(hashes)
    md = "\n\n".join([
        "# Do sparse-subnetwork siblings differ more than snapshot checkpoints?",
        f"Mean pairwise distance between the members of each ensemble ({args.model} on Fashion-MNIST, the "
        f"runs of compare.py `{args.source}`): Hamming distance (bits) between 64-bit hashes (colour: 70 bits) "
        f"and RMSE between the images, of the feature visualisations of unit {args.channel} of the last conv "
        f"layer ({args.steps} Adam steps) and of SmoothGrad maps of {args.images} test images (mean over images). "
        f"Mean ± s.e. over seeds {seeds}; the last column counts the seeds where the sparse siblings are farther "
        "apart than the snapshot checkpoints.",
        markdown_table(["images", "distance", "sparse siblings", "snapshot checkpoints", "sparse > snapshot"], rows),
        "The paper's claim (siblings differ more on every hash of the feature visualisations), asked of "
        f"every hash in every seed: {'it holds' if holds else 'it does not hold'} here"
        + ("." if holds else f"; the hashes where it held in every seed: {', '.join(held) or 'none'}."),
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "rows": mine,
                     "verdict": {k: list(v) for k, v in verdict.items()}, "claim_holds": holds}, md)
    if seeds:  # the figures of seed 0's analyses, for the README
        for method in METHODS:
            src = RUNS / args.name / f"{method}_seed{seeds[0]}" / LAYOUT.figures / "features.png"
            if src.is_file():
                (RESULTS / f"{args.name}_{method}_features.png").write_bytes(src.read_bytes())
    if seeds and args.gallery:
        gallery(args, seeds[0])


def gallery(args: argparse.Namespace, seed: int) -> None:
    """Every part of ``analyze`` on one sparse run; one figure of each kind copied to results/."""
    run_dir = RUNS / "compare" / args.source / f"{args.model}_sparse_seed{seed}"
    out = RUNS / args.name / f"sparse_seed{seed}"
    cfg = AnalyzeConfig(run_dir=str(run_dir), parts=("tsne", "features", "saliency", "hashes", "landscape"),
                        channel=args.channel, steps=args.steps, images=args.images, seed=seed, threads=args.threads)
    record = run_analyze(cfg, out, progress=False)  # the parts hashed above are reused, not redone
    prefix = "" if args.name == "hash_siblings" else f"{args.name}_"
    run = json.loads((run_dir / LAYOUT.config).read_text())
    info = header()
    lines = ["# `analyze` on a sparse ensemble: one figure of each kind",
             f"`evo-ensembles analyze` on the {args.model} sparse run of compare.py `{args.source}`, seed {seed} "
             f"(parent {run['parent_epochs']} epochs + {run['children']} children x {run['child_epochs']} epochs "
             f"at density {run['density']} on {run['dataset']}), with --channel {args.channel} "
             f"--steps {args.steps} --images {args.images} --seed {seed}."]
    for name in ("tsne", "features", "saliency", "hashes_features", "landscape"):
        src = out / LAYOUT.figures / f"{name}.png"
        if src.is_file():
            target = f"{prefix}analyze_{name}.png"
            (RESULTS / target).write_bytes(src.read_bytes())
            lines.append(f"![{name}]({target})")
    landscape = record["parts"].get("landscape", {}).get("result")
    if landscape:
        lines.append("Loss at the landscape's origin (training subset): " + ", ".join(
            f"{k} {v:.4f}" for k, v in landscape["loss_at_origin"].items()) + ".")
    save(f"{prefix}analyze_gallery", {**info, "record": record}, "\n\n".join([*lines, *footer(info)]) + "\n")


if __name__ == "__main__":
    main()
