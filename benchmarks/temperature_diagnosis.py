"""Why a temperature fit on validation may not help on test (issue 32, item 7).

For finished run directories (``sparse``, ``stochastic``, ``noisy``, ``baseline``), this
re-opens each run, recomputes its members' logits on the validation and test splits, and asks
three questions, for the parent (where there is one) and the ensemble:

1. *Shift*: does the model look different on the two splits? NLL and ECE at T = 1 on
   validation and on test, and the temperature each split would fit on its own (the test
   fit is a diagnostic only: nothing is chosen with it, and every run's reported T stays
   the validation one).
2. *Split size*: how much does the validation temperature move under resampling? log T over
   20 bootstrap resamples of the validation split (seeded), and T fit on each half.
3. *How the ensemble's T is applied*: one T on every member's logits before averaging (the
   library's rule) against one T on the log of the averaged probabilities, each fit on
   validation, scored on test.

    .venv/bin/python benchmarks/temperature_diagnosis.py benchmarks/runs/compare/compare/*_seed0 \\
        --name temperature_diagnosis
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from _common import footer, header, save

from evo_ensembles.analysis.runs import open_run
from evo_ensembles.calibration import fit_temperature, tempered_probs
from evo_ensembles.devices import set_threads
from evo_ensembles.ensemble import predict_logits
from evo_ensembles.metrics import ece, nll
from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT


def logits_of(run, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(parent logits or None, (M, B, C) voter logits) of an opened run on ``x``."""
    parent = run.parent()
    p = predict_logits(parent, x) if parent is not None else None
    members = []
    for m in run.members():
        from contextlib import nullcontext

        from evo_ensembles.baselines.dropout_passes import MCDropoutPass

        with m.seeded() if isinstance(m, MCDropoutPass) else nullcontext():
            members.append(predict_logits(m, x))
    voters = torch.stack(members)
    if run.config.get("include_parent") and p is not None:
        voters = torch.cat([p.unsqueeze(0), voters])
    return p, voters


def bootstrap_log_t(logits: torch.Tensor, y: torch.Tensor, reps: int, seed: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(reps):
        idx = torch.randint(0, len(y), (len(y),), generator=g)
        out.append(math.log(fit_temperature(logits[..., idx, :], y[idx]).temperature))
    return out


def diagnose(logits_val: torch.Tensor, y_val: torch.Tensor, logits_test: torch.Tensor, y_test: torch.Tensor,
             reps: int, seed: int) -> dict:
    t_val = fit_temperature(logits_val, y_val).temperature
    t_test = fit_temperature(logits_test, y_test).temperature  # diagnostic only: chooses nothing
    half = len(y_val) // 2
    t_a = fit_temperature(logits_val[..., :half, :], y_val[:half]).temperature
    t_b = fit_temperature(logits_val[..., half:, :], y_val[half:]).temperature
    boot = bootstrap_log_t(logits_val, y_val, reps, seed)
    mu = sum(boot) / len(boot)
    sd = (sum((b - mu) ** 2 for b in boot) / max(1, len(boot) - 1)) ** 0.5

    def scores(z, y, t):
        p = tempered_probs(z, t)
        return nll(p, y), ece(p, y)

    v1, t1 = scores(logits_val, y_val, 1.0), scores(logits_test, y_test, 1.0)
    out = {"t_val": t_val, "t_test_diagnostic": t_test, "t_val_halves": [t_a, t_b], "bootstrap_log_t_sd": sd,
           "val_nll_t1": v1[0], "val_ece_t1": v1[1], "test_nll_t1": t1[0], "test_ece_t1": t1[1],
           "test_nll_tval": scores(logits_test, y_test, t_val)[0]}
    if logits_val.dim() == 3:
        fit_c = fit_temperature(logits_val, y_val, where="combined")
        out["t_val_combined"] = fit_c.temperature
        out["test_nll_combined"] = nll(tempered_probs(logits_test, fit_c.temperature, where="combined"), y_test)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--name", default="temperature_diagnosis")
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    rows, table = [], []
    for path in args.runs:
        if not (path / LAYOUT.results).is_file():
            continue
        run = open_run(path)
        if run.kind == "rl":
            continue
        data = run.data()
        pv, ev = logits_of(run, data.val.x)
        pt, et = logits_of(run, data.test.x)
        seed = int(run.results.get("seed", 0))
        for who, zv, zt in (("parent", pv, pt), ("ensemble", ev, et)):
            if zv is None:
                continue
            d = diagnose(zv, data.val.y, zt, data.test.y, args.bootstrap, seed)
            rows.append({"run": path.name, "method": run.method, "seed": seed, "who": who, **d})
            table.append([path.name, who, f"{d['t_val']:.3f}", f"{d['t_test_diagnostic']:.3f}",
                          " / ".join(f"{t:.3f}" for t in d["t_val_halves"]), f"{d['bootstrap_log_t_sd']:.3f}",
                          d["val_nll_t1"], d["test_nll_t1"], d["val_ece_t1"], d["test_ece_t1"], d["test_nll_tval"],
                          f"{d['t_val_combined']:.3f}" if "t_val_combined" in d else "–",
                          d.get("test_nll_combined", "–")])
            print(table[-1], flush=True)
    info = header()
    md = "\n\n".join([
        "# Why a validation temperature may not help on test",
        __doc__.split("\n\n")[1].replace("\n", " "),
        markdown_table(["run", "", "T (val)", "T (test, diagnostic)", "T (val halves)", "sd log T (bootstrap)",
                        "val NLL", "test NLL", "val ECE", "test ECE", "test NLL + T(val)", "T combined (val)",
                        "test NLL, T combined"], table),
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "rows": rows}, md)


if __name__ == "__main__":
    main()
