"""One model's budget against four (issue #10, beyond the paper).

The best subnetwork ensemble the toolkit builds for ONE model's training budget (16
epoch-equivalents, children counted at full epoch cost) against a dense deep ensemble of 4
independently trained models (4 x 16 epochs), on Fashion-MNIST test, over seeds.

Candidates at 16 epoch-equivalents (settings the regime study chose on validation:
augmentation, pruning scope, masks, child lr; read from results/regime.json):

  sse 8+4x2          parent 8 epochs, 4 children x 2 epochs
  sse 10+2x3         parent 10 epochs, 2 children x 3 epochs
  sse 12+4x1         parent 12 epochs, 4 children x 1 epoch
  sse 8+4x2 + noisy  the same 4 tuned children, each with its top 4 of 8 noisy children
                     (trust-region σ, KL 0.02, chosen on validation; no training)
  noisy 16           one model trained 16 epochs + its top 8 of 16 noisy children

Baselines (never chosen): the single model trained 16 epochs (the deep ensemble's first
member, so it costs nothing extra) and the deep ensemble itself.

One candidate is chosen on the validation split (mean over seeds of ensemble accuracy, then
NLL); all are reported on test. Parents and children come from the regime study's cache
(benchmarks/runs/regime/), so what that study trained is reused; finished rows go to
results/one_vs_four.runs.jsonl (resumable).

    .venv/bin/python benchmarks/one_vs_four.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import regime
import torch
from _common import RESULTS, RunLog, describe_code, header, mean_se, save
from regime import BASE, MASKS, Study

from evo_ensembles import combine
from evo_ensembles.devices import resolve_device, set_threads
from evo_ensembles.methods.noisy import noisy_ensemble
from evo_ensembles.metrics import classification_metrics
from evo_ensembles.reporting import markdown_table
from evo_ensembles.subnet import derive_seed

NAME = "one_vs_four"
CANDIDATES = {
    "sse 8+4x2": {"parent_epochs": 8, "child_epochs": 2, "members": 4},
    "sse 10+2x3": {"parent_epochs": 10, "child_epochs": 3, "members": 2},
    "sse 12+4x1": {"parent_epochs": 12, "child_epochs": 1, "members": 4},
    "sse 8+4x2 + noisy": {"parent_epochs": 8, "child_epochs": 2, "members": 4, "noisy": 4},
    "noisy 16": {"parent_epochs": 16, "child_epochs": 0, "members": 0, "noisy": 8},
}
DEEP = "deep ensemble 4x16"
SINGLE = "single model 16"  # the deep ensemble's first member alone: the budget's dense baseline
BASELINES = (SINGLE, DEEP)


def settings() -> dict:
    """The regime study's validation-chosen child settings (its defaults if it has not run)."""
    path = RESULTS / "regime.json"
    carried = json.loads(path.read_text())["carried_settings"] if path.is_file() else BASE
    return {k: carried[k] for k in ("model", "parent_aug", "child_aug", "dense", "masks", "lr_mult")}


def noisy_members(model, data, seed: int, k: int) -> dict:
    """Top ``k`` of ``2k`` noisy children of ``model`` (σ by the KL trust region on validation)."""
    res = noisy_ensemble(model, data.val.x, data.val.y, target_kl=0.02, density=0.5,
                         popsize=2 * k, top_k=k, seed=seed, progress=False)
    return {s: res.ensemble.member_probs(getattr(data, s).x) for s in ("val", "test")}, res.sigma


def run_candidate(study: Study, name: str, base: dict, seed: int) -> dict:
    spec = CANDIDATES.get(name)
    t0 = time.perf_counter()
    extra: dict = {}
    if name in BASELINES:
        n = 4 if name == DEEP else 1
        parts = [study.parent({**base, "seed": seed, "parent_epochs": 16,
                               "init_seed": seed if j == 0 else derive_seed(seed, 7, j) % 2**31})[1]
                 for j in range(n)]
        probs = {s: torch.stack([p[s] for p in parts]) for s in ("val", "test")}
        epochs, flops = 16 * n, 16.0 * n
    else:
        cfg = {**base, "seed": seed, "parent_epochs": spec["parent_epochs"],
               "child_epochs": max(spec["child_epochs"], 1), "members": spec["members"]}
        lists: dict = {"val": [], "test": []}
        for i in range(spec["members"]):
            p, _ = study.child(cfg, i)
            for s in lists:
                lists[s].append(p[s].unsqueeze(0))
        if spec.get("noisy"):
            sources = ([study.child_model(cfg, i) for i in range(spec["members"])]
                       if spec["members"] else [study.parent(cfg)[0]])
            data = study.data(seed, base["parent_aug"])
            sigmas = []
            for j, model in enumerate(sources):
                p, sigma = noisy_members(model, data, derive_seed(seed, 8, j) % 2**31, spec["noisy"])
                sigmas.append(sigma)
                for s in lists:
                    lists[s].append(p[s])
            extra["sigmas"] = sigmas
        probs = {s: torch.cat(v) for s, v in lists.items()}
        density = MASKS[base["masks"]]["density"]
        epochs = spec["parent_epochs"] + spec["members"] * spec["child_epochs"]
        flops = spec["parent_epochs"] + spec["members"] * spec["child_epochs"] * density
    data = study.data(seed, base["parent_aug"])
    row = {"candidate": name, "seed": seed, "members": int(probs["test"].shape[0]), "epochs": epochs,
           "flop_epochs": flops, "wall_seconds": time.perf_counter() - t0, **extra}
    for s in ("val", "test"):
        row[s] = classification_metrics(combine(probs[s]), getattr(data, s).y)
    return row


def report(rows: list[dict], base: dict, meta: dict) -> None:
    names = [n for n in [*CANDIDATES, *BASELINES] if any(r["candidate"] == n for r in rows)]
    if not names:
        return
    by = {n: [r for r in rows if r["candidate"] == n] for n in names}
    cands = [n for n in names if n not in BASELINES]
    chosen = max(cands, key=lambda n: (round(mean_se([r["val"]["accuracy"] for r in by[n]])[0], 4),
                                       -mean_se([r["val"]["nll"] for r in by[n]])[0])) if cands else None
    body, summary = [], {}
    for n in names:
        rs = by[n]
        cells = [n + (" (**chosen on val**)" if n == chosen else ""), len(rs), rs[0]["epochs"],
                 f"{rs[0]['flop_epochs']:.1f}", rs[0]["members"]]
        summary[n] = {}
        for m in ("accuracy", "nll", "ece"):
            a, se = mean_se([r["test"][m] for r in rs])
            summary[n][m] = {"mean": a, "se": se, "values": [r["test"][m] for r in rs]}
            cells.append(f"{100 * a:.2f} ± {100 * se:.2f}" if m == "accuracy" else f"{a:.4f} ± {se:.4f}")
        va, _ = mean_se([r["val"]["accuracy"] for r in rs])
        cells.append(f"{100 * va:.2f}")
        body.append(cells)
    verdict = ""
    if chosen and DEEP in by:
        seeds = sorted({r["seed"] for r in by[chosen]} & {r["seed"] for r in by[DEEP]})
        pair = {m: [next(r for r in by[chosen] if r["seed"] == s)["test"][m]
                    - next(r for r in by[DEEP] if r["seed"] == s)["test"][m] for s in seeds]
                for m in ("accuracy", "nll", "ece")}
        d = {m: mean_se(v) for m, v in pair.items()}
        verdict = (f"Chosen `{chosen}` minus the deep ensemble, paired by seed ({len(seeds)} seeds): "
                   f"accuracy {100 * d['accuracy'][0]:+.2f} ± {100 * d['accuracy'][1]:.2f} pt, "
                   f"NLL {d['nll'][0]:+.4f} ± {d['nll'][1]:.4f}, ECE {d['ece'][0]:+.4f} ± {d['ece'][1]:.4f}, "
                   f"at {by[chosen][0]['epochs']} / 64 epochs of training.")
        summary["paired_delta"] = {m: {"mean": a, "se": se} for m, (a, se) in d.items()}
    md = "\n\n".join([
        "# One model's budget against four (Fashion-MNIST)",
        f"Produced by `{meta['command']}` on {meta['date']}; {describe_code([meta])}; "
        f"{meta['hardware'].get('cpu')}. Settings from the regime study (chosen on validation): "
        f"`{json.dumps(base)}`. Epochs count children at full cost; FLOP-epochs count a child "
        "epoch at its density. Test split, mean ± s.e. over seeds; ECE 15 bins; the candidate is "
        "chosen on validation.",
        markdown_table(["method", "seeds", "epochs", "FLOP-epochs", "members", "test acc %", "test NLL",
                        "test ECE", "val acc %"], body),
        verdict,
    ]) + "\n"
    save(NAME, {**meta, "settings": base, "chosen": chosen, "summary": summary, "rows": rows}, md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--candidates", nargs="+", default=[*CANDIDATES, *BASELINES],
                    choices=[*CANDIDATES, *BASELINES])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--report", action="store_true", help="only rebuild the table")
    ap.add_argument("--subset", type=int, default=None, help="training examples (smoke runs)")
    ap.add_argument("--name", default="one_vs_four", help="result/cache name (smoke runs: another name)")
    args = ap.parse_args()
    global NAME
    if args.name != NAME:  # a smoke run keeps its own cache and results
        regime.RUNS = regime.RUNS.parent / args.name
        NAME = args.name
    set_threads(args.threads)
    base = settings()
    log = RunLog(NAME)
    rows = log.rows
    meta = header()
    study = Study(resolve_device(args.device), progress=False, subset=args.subset)
    for seed in [] if args.report else args.seeds:
        for name in args.candidates:
            if log.find(candidate=name, seed=seed):
                continue
            row = log.append(run_candidate(study, name, base, seed))
            t = row["test"]
            print(f"seed {seed} {name}: test acc {t['accuracy']:.4f} nll {t['nll']:.4f} ece {t['ece']:.4f} "
                  f"({row['wall_seconds']:.0f}s)", flush=True)
            report(rows, base, meta)
    report(rows, base, meta)


if __name__ == "__main__":
    main()
