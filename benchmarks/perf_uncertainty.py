"""What calibration, OOD detection and selective scoring cost a run's evaluation (issue 32).

The README demo's evaluation workload (LeNet-S parent + 4 children on Fashion-MNIST: the
6,000-image validation split, the 10,000-image test split, Fashion-MNIST-C at 1,000 images
per cell when it is on disk), timed side by side in one process, alternating, best of
``--reps``:

- ``before``: the evaluation every run did until now: ``Ensemble.evaluate`` on test and on
  validation, plus the corrupted test set;
- ``no OOD``: ``evo_ensembles.scoring.score_run`` without OOD sets (each set through the
  networks once, raw metrics, every temperature fit, reliability bins, selective risks),
  plus the corrupted test set;
- ``now``: the same with the OOD sets on disk (digits, letters, two noises);

and ``fit_temperature`` alone on the 6,000 validation examples, for one model and for the
4-member ensemble. Weights are the untrained networks of the demo's architecture: the cost of
these computations does not depend on what the weights are.

    .venv/bin/python benchmarks/perf_uncertainty.py --threads 2
"""

from __future__ import annotations

import argparse
import time

from _common import footer, header, save

from evo_ensembles.calibration import fit_temperature
from evo_ensembles.data import load_dataset
from evo_ensembles.data.ood import ood_sets
from evo_ensembles.devices import set_threads
from evo_ensembles.ensemble import Ensemble, predict_probs
from evo_ensembles.models import build_model
from evo_ensembles.reporting import markdown_table
from evo_ensembles.scoring import corrupted_scores, score_run


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--children", type=int, default=4)
    args = ap.parse_args()
    set_threads(args.threads)
    data = load_dataset("fashion-mnist", seed=0)
    ood = ood_sets(data)
    parent = build_model("lenet-s", data.input_shape, data.num_classes, seed=0).eval()
    ens = Ensemble([build_model("lenet-s", data.input_shape, data.num_classes, seed=1 + i).eval()
                    for i in range(args.children)], parent=parent)
    corrupted_examples = 1000  # the demo's default

    def corrupted():
        corrupted_scores(data, {"parent": lambda x: predict_probs(parent, x), "ensemble": ens.predict_proba},
                         ece_bins=15, examples=corrupted_examples)

    def before():
        ens.evaluate(data.test.x, data.test.y)
        ens.evaluate(data.val.x, data.val.y)
        corrupted()

    def scored(sets):
        def run():
            score_run(lambda x: ens.member_logits(x, with_parent=False), parent, data.val, data.test, sets)
            corrupted()
        return run

    val_logits = ens.member_logits(data.val.x, with_parent=False)
    parent_val = val_logits[0]
    settings = {"before": before, "no OOD": scored({}), "now": scored(ood),
                "fit T, one model (6,000 val)": lambda: fit_temperature(parent_val, data.val.y),
                f"fit T, {args.children}-member ensemble (6,000 val)": lambda: fit_temperature(val_logits, data.val.y)}
    times: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(args.reps):
        for name, fn in settings.items():
            times[name].append(timed(fn))
    best = {k: min(v) for k, v in times.items()}
    # One-time cost a run pays on its first OOD score: importing scikit-learn's metrics (and
    # SciPy's optimizer for the temperature), in a fresh process, against importing torch alone.
    import subprocess
    import sys

    def fresh(code: str) -> float:
        return min(timed(lambda: subprocess.run([sys.executable, "-c", code], check=True)) for _ in range(args.reps))

    imports = {"import torch": fresh("import torch"),
               "import torch, sklearn.metrics, scipy.optimize": fresh("import torch, sklearn.metrics, scipy.optimize")}
    rows = [[k, f"{best[k]:.3f}", f"{best[k] / best['before']:.3f}" if k in ("before", "no OOD", "now") else "-"]
            for k in settings]
    ood_share = (best["now"] - best["no OOD"]) / best["before"]
    added = (best["now"] - best["before"]) / best["before"]
    info = header()
    md = "\n\n".join([
        "# What calibration, OOD detection and selective scoring cost",
        __doc__.split("\n\n")[1].replace("\n", " "),
        f"OOD sets: {', '.join(f'{k} ({len(v)})' for k, v in ood.items()) or 'none on disk'}; corrupted "
        f"test set: {'on disk' if data.corrupted is not None else 'not on disk'}; {args.children} children; "
        f"{args.threads} threads; best of {args.reps}.",
        markdown_table(["evaluation", "seconds (best)", "× before"], rows),
        f"OOD sets alone add {100 * ood_share:.1f} % to the evaluation as it was (target: at most 10 % for OOD "
        f"and selective scoring); everything new together (temperatures for the parent, each member and the "
        f"ensemble, reliability bins, selective risks, OOD) adds {100 * added:.1f} %.",
        "Once per process, before the first score, the run also imports scikit-learn's metrics and SciPy's "
        "optimizer (not counted above; fresh processes, best of the same reps):",
        markdown_table(["fresh process", "seconds"], [[k, f"{v:.2f}"] for k, v in imports.items()]),
        *footer(info),
    ]) + "\n"
    save("perf_uncertainty", {**info, "seconds": times, "best": best, "ood_share": ood_share, "added": added,
                              "imports": imports, "ood_sets": {k: len(v) for k, v in ood.items()}}, md)
    print(md)


if __name__ == "__main__":
    main()
