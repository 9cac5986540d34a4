"""Table 7.1 analogue (issue 16): how different the members of each ensemble are.

Part A reads the members' diversity (pairwise prediction disagreement, KL, output
correlation; off-diagonal means, SPEC §5) from the run logs of benchmarks/compare.py
(``--source compare`` or ``table5_2``, results/<source>.runs.jsonl): no training.

Part B trains, per seed, one parent (lenet-s, 8 epochs, Adam 1e-3, as Table 5.1) and three
Sparse Subnetwork Ensembles of 8 children x 1 epoch at density 0.5 from it, like the
paper's Figure 7.1:
  R         independent random masks
  NP        neural partitioning (4 mask/anti-mask pairs)
  NP + BAG  the same partitions, each child tuned on its own random 90% of train (the
            paper's bagging share; without replacement)
and reports each ensemble's accuracy and its members' output correlation (mean ± s.e. over
seeds; the correlation matrix of seed 0 as a figure). Test split throughout.

    .venv/bin/python benchmarks/table7_1.py --source compare --seeds 0 1 2
    .venv/bin/python benchmarks/table7_1.py --source compare table5_2 --skip-training   # after the large run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS, RunLog, describe_code, footer, header, mean_se, save

from evo_ensembles.config.sparse import SparseRunConfig
from evo_ensembles.devices import set_threads
from evo_ensembles.recipes.sparse import run_sparse
from evo_ensembles.reporting import markdown_table, plot_heatmap
from evo_ensembles.run_folder import LAYOUT

RUNS = Path(__file__).resolve().parent / "runs"
VARIANTS = {"R": {"partition": False, "density": 0.5}, "NP": {"partition": True},
            "NP + BAG": {"partition": True, "child_bagging": 0.9}}
PAPER_A = {"sparse": (0.036, 0.090), "deep-ensemble": (0.032, 0.086), "snapshot": (0.034, 0.068)}
PAPER_B = {"R": (0.840, 0.893), "NP": (0.844, 0.884), "NP + BAG": (0.839, 0.868)}


def member_diversity(source: str, model: str, seeds: list[int]) -> dict[str, list[dict]]:
    """Per method, one diversity record per seed (disagreement, KL, correlation, members), from
    the rows of ``results/<source>.runs.jsonl`` that compare.py logged (rows logged before it
    kept KL and correlation read them from their run's results.json, when it still exists).
    Rows of diverged runs and single-member methods are left out."""
    from types import SimpleNamespace

    from compare import diverged, run_dir

    args = SimpleNamespace(name=source, model=model)
    keys = ("disagreement", "kl", "correlation")
    found: dict[str, dict[int, dict]] = {}
    for row in RunLog(source):
        if row.get("kind") == "lr-probe" or row.get("model") != model or row.get("seed") not in seeds:
            continue
        if (row.get("members") or 0) < 2 or ("lr" in row and diverged(row, args)):
            continue
        record = {k: row.get(k) for k in keys}
        if record["kl"] is None:
            lr = row.get("lr")
            path = (run_dir(args, row["method"], row["seed"], lr, row.get("base_lr", lr)) if lr is not None
                    else RUNS / "compare" / source / f"{model}_{row['method']}_seed{row['seed']}") / LAYOUT.results
            if not path.is_file():
                continue
            record = {k: json.loads(path.read_text())["diversity"][k] for k in keys}
        found.setdefault(row["method"], {})[row["seed"]] = {**record, "members": row["members"]}
    return {m: [by_seed[s] for s in sorted(by_seed)] for m, by_seed in sorted(found.items())}


def part_a(source: str, model: str, seeds: list[int]) -> tuple[list[str], list[list[object]]]:
    rows = []
    for method, found in member_diversity(source, model, seeds).items():
        cells = []
        for k in ("disagreement", "kl", "correlation"):
            mu, se = mean_se([r[k] for r in found])
            cells.append(f"{mu:.4f} ± {se:.4f}")
        paper = PAPER_A.get(method)
        rows.append([method, found[0]["members"], len(found), *cells,
                     f"{paper[0]:.3f} / {paper[1]:.3f}" if paper else ""])
    return ["method", "M", "seeds", "disagreement", "KL", "correlation", "paper (WRN-28-10, CIFAR-10)"], rows


def part_b(seeds: list[int], threads: int, log: RunLog) -> None:
    for seed in seeds:
        first = RUNS / "table7_1" / f"R_seed{seed}"
        for name, opts in VARIANTS.items():
            if log.find(variant=name, seed=seed):
                continue
            parent = None if name == "R" else str(first / LAYOUT.parent)
            cfg = SparseRunConfig(model="lenet-s", parent_epochs=8, parent=parent, children=8, child_epochs=1,
                                  seed=seed, threads=threads, **opts)
            out = RUNS / "table7_1" / f"{name.replace(' + ', '_')}_seed{seed}"
            r = run_sparse(cfg, out, progress=False)
            row = log.append({"variant": name, "seed": seed, "accuracy": r["ensemble"]["accuracy"],
                              "nll": r["ensemble"]["nll"], "correlation": r["diversity"]["correlation"],
                              "disagreement": r["diversity"]["disagreement"],
                              "matrix": r["diversity"]["matrices"]["correlation"]})
            print(f"{name:9s} seed {seed}: acc {row['accuracy']:.4f} correlation {row['correlation']:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", nargs="+", default=["compare"],
                    help="the compare.py run names to read diversity from (compare: small budget; table5_2: large)")
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-training", action="store_true", help="part A only")
    args = ap.parse_args()
    set_threads(args.threads)
    log = RunLog("table7_1")
    if not args.skip_training:
        part_b(args.seeds, args.threads, log)
    parts_a = {src: part_a(src, args.model, args.seeds) for src in args.source}
    # A source whose rows and run directories are gone (a fresh machine) keeps its section from
    # the previous table7_1.json, and the page says so.
    before = json.loads((RESULTS / "table7_1.json").read_text()) if (RESULTS / "table7_1.json").is_file() else {}
    kept = {}
    for src, section in before.get("part_a", {}).items():
        if src not in parts_a or not parts_a[src][1]:
            parts_a[src] = (section["headers"], section["rows"])
            kept[src] = section.get("written") or f"{before.get('date')}, {describe_code([before])}"
    rows_b = []
    for name in VARIANTS:
        rs = [r for r in log.where(variant=name) if r["seed"] in args.seeds]
        if rs:
            acc, corr = mean_se([r["accuracy"] for r in rs]), mean_se([r["correlation"] for r in rs])
            dis = mean_se([r["disagreement"] for r in rs])
            rows_b.append([name, len(rs), f"{acc[0]:.4f} ± {acc[1]:.4f}", f"{corr[0]:.4f} ± {corr[1]:.4f}",
                           f"{dis[0]:.4f} ± {dis[1]:.4f}", f"{PAPER_B[name][0]:.3f} / {PAPER_B[name][1]:.3f}"])
            if 0 in [r["seed"] for r in rs]:
                m = next(r for r in rs if r["seed"] == 0)["matrix"]
                plot_heatmap(RESULTS / f"table7_1_correlation_{name.replace(' + ', '_')}.png", m,
                             f"{name}: member output correlation (seed 0)", "Pearson r")
    info = header()
    section_a = []
    for src, (head_a, rows_a) in parts_a.items():
        section_a += [f"### compare.py `{src}` ({args.model})",
                      *([f"(kept from the run of {kept[src]}: its run directories are not on this machine)"]
                        if src in kept else []),
                      markdown_table(head_a, rows_a) if rows_a else "(no comparison runs yet)"]
    md = "\n\n".join([
        "# Table 7.1 analogue — member diversity on Fashion-MNIST",
        "## A. Diversity of each ensemble's members",
        "Off-diagonal means over member pairs on the test split: prediction disagreement, KL(f_i ‖ f_j), "
        "Pearson correlation of the output vectors; mean ± s.e. over seeds. `compare` is the small-budget "
        "comparison (equal epochs, Adam), `table5_2` the large-budget one (SPEC §3 recipe, paper budget ratios).",
        *section_a,
        "## B. Random pruning vs neural partitioning vs partitioning + bagging (lenet-s, Figure 7.1)",
        "One parent per seed (8 epochs, Adam 1e-3), 8 children x 1 epoch at density 0.5 each; ensemble "
        "accuracy and the members' output correlation on the test split.",
        markdown_table(["children", "seeds", "ensemble accuracy", "correlation", "disagreement",
                        "paper acc / corr (ResNet-18, CIFAR-10)"], rows_b) if rows_b else "(not run yet)",
        *footer(info),
    ]) + "\n"
    written = {src: kept.get(src, f"{info['date']}, {describe_code([info])}") for src in parts_a}
    save("table7_1", {**info, "part_a": {src: {"headers": h, "rows": r, "written": written[src]}
                                         for src, (h, r) in parts_a.items()},
                      "part_b": [r for r in log if r["seed"] in args.seeds]}, md)


if __name__ == "__main__":
    main()
