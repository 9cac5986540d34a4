"""Parallel child tuning on Ray (issue #13, item 7): where do worker processes pay?

The same ``sparse`` run (one parent, loaded from a checkpoint; the same children, seeds and
data) is tuned three ways, side by side in one session, rounds interleaved:

  1 x 1   one process, 1 torch thread, children one after another
  1 x 2   one process, 2 torch threads
  2 x 1   2 Ray workers with 1 thread each (``--workers 2``), one child per worker at a time

Wall time covers the whole run after the parent (data loading, Ray start-up, tuning,
evaluation), as a user waits for it. Two scales: short children (start-up matters) and
longer ones. 2 x 1 must give the ensemble 1 x 1 gives (both tune with one thread; 1 x 2
may differ in the last digits, as any change of thread count reorders float sums).

    .venv/bin/python benchmarks/perf_workers.py              # ~10 min on 2 cores; give it the box
    .venv/bin/python benchmarks/perf_workers.py --scales short --rounds 1   # smoke
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import footer, header, save

from evo_ensembles.config.sparse import SparseRunConfig
from evo_ensembles.recipes.sparse import run_sparse
from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT

SETTINGS = {"1 x 1": {"workers": 1, "threads": 1}, "1 x 2": {"workers": 1, "threads": 2},
            "2 x 1": {"workers": 2, "threads": 1}}
SCALES = {  # subset of the training split, children, tuning epochs
    "short": {"subset": 6000, "children": 4, "child_epochs": 1},
    "long": {"subset": 30000, "children": 4, "child_epochs": 2},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-5")
    ap.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perf_workers_"))
    rows, table = [], []
    try:
        for scale in args.scales:
            base = {"model": args.model, "parent_epochs": 1, "seed": 0, **SCALES[scale]}
            # The parent once, then every setting loads it (as a user with --parent does).
            first = run_sparse(SparseRunConfig(**{**base, "children": 1, "child_epochs": 1}), work / f"{scale}_parent",
                               progress=False)
            parent = work / f"{scale}_parent" / LAYOUT.parent
            times: dict[str, list[float]] = {k: [] for k in SETTINGS}
            accs: dict[str, float] = {}
            for r in range(args.rounds):
                for name, s in SETTINGS.items():
                    out = work / f"{scale}_{name.replace(' ', '')}_{r}"
                    t = time.perf_counter()
                    res = run_sparse(SparseRunConfig(**base, parent=str(parent), **s), out, progress=False)
                    times[name].append(time.perf_counter() - t)
                    accs[name] = res["ensemble"]["accuracy"]
                    print(f"{scale} {name} round {r}: {times[name][-1]:.1f}s, ensemble acc {accs[name]:.4f}",
                          flush=True)
                    shutil.rmtree(out)
            med = {k: statistics.median(v) for k, v in times.items()}
            # Same threads per child ⇒ the same floating-point sums ⇒ the same children.
            identical = accs["1 x 1"] == accs["2 x 1"]
            row = {"scale": scale, **SCALES[scale], "model": args.model, "seconds": times, "median": med,
                   "speedup_2x1_vs_1x1": med["1 x 1"] / med["2 x 1"],
                   "speedup_2x1_vs_1x2": med["1 x 2"] / med["2 x 1"],
                   "speedup_1x2_vs_1x1": med["1 x 1"] / med["1 x 2"],
                   "ensemble_accuracy": accs, "identical": identical,
                   "parent_accuracy": first["parent"]["accuracy"]}
            rows.append(row)
            table.append([scale, f"{SCALES[scale]['children']} × {SCALES[scale]['child_epochs']} ep on "
                          f"{SCALES[scale]['subset']}", *(f"{med[k]:.1f}" for k in SETTINGS),
                          f"{row['speedup_2x1_vs_1x1']:.2f}", f"{row['speedup_2x1_vs_1x2']:.2f}",
                          f"{row['speedup_1x2_vs_1x1']:.2f}", "yes" if identical else "**no**"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = header()
    md = "\n\n".join([
        "# Parallel child tuning: 2 Ray workers × 1 thread vs 1 process × 2 threads vs 1 × 1",
        f"`sparse` runs of {args.model} children from one loaded parent, Fashion-MNIST; wall time of the "
        f"whole run after the parent (data, Ray start-up, tuning, evaluation); median of {args.rounds} "
        "interleaved rounds. Speed-up > 1: the first setting is faster.",
        markdown_table(["scale", "children", "1 x 1 s", "1 x 2 s", "2 x 1 s", "2x1 vs 1x1", "2x1 vs 1x2",
                        "1x2 vs 1x1", "2x1 = 1x1 ensemble"], table),
        *footer(info),
    ]) + "\n"
    save("perf_workers", {**info, "args": vars(args), "rows": rows}, md)


if __name__ == "__main__":
    main()
