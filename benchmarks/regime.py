"""Regime study (issue #10): where does a Sparse Subnetwork Ensemble beat its parent?

Fashion-MNIST, full training split (54,000 train / 6,000 validation, seeded), test split
(10,000) untouched until reporting. Every choice below is made on the validation split.
A screen varies one or two factors at a time around the current best settings, then the
best settings are confirmed over more seeds:

  aug       parent augmentation on/off x children's augmentation on/off
  scope     pruning scope (all Linear/Conv weights, or first and last layer kept dense)
            x masks (0.5 mask/anti-mask partitions, or 0.75-density independent masks)
  tuning    child tuning epochs 1/2/3 x one-cycle peak lr 1x/3x the parent's (1e-3)
  confirm   the best settings on seeds 0, 1, 2 (parent and children re-drawn per seed)
  size      ensemble size 4/8/16 (nested: the first 4 of 8 of 16 children)
  split     a 16-epoch budget split 50/50 (parent 8 + 4 x 2) vs 75/25 (parent 12 + 4 x 1),
            beside one model trained all 16 epochs
  capacity  the best settings on lenet-5, lenet-m, lenet-l and resnet-8 (lenet-s above)

Parents: Adam 1e-3 constant (the library's parent recipe), batch 128. Children are built
with the public ``prune_and_tune`` (one call per child with ``first_index``, so child i is
the same child the ``sparse`` command makes) and tuned with one-cycle Adam. Each trained
child's validation/test probabilities are cached under benchmarks/runs/regime/ and every
finished configuration is appended to results/regime.runs.jsonl, so an interrupted study
resumes where it stopped and ``--report`` rebuilds the tables at any time.

    .venv/bin/python benchmarks/regime.py --threads 2            # the whole study (~2 h here)
    .venv/bin/python benchmarks/regime.py --stages aug scope      # part of it
    .venv/bin/python benchmarks/regime.py --report                # tables from what has run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _common import RESULTS, RunLog, describe_code, header, mean_se, save
from safetensors import safe_open
from safetensors.torch import save_file

from evo_ensembles import (
    TrainConfig,
    build_model,
    combine,
    load_dataset,
    make_child_specs,
    predict_probs,
)
from evo_ensembles.devices import resolve_device, set_threads
from evo_ensembles.methods.sparse import prune_and_tune
from evo_ensembles.metrics import classification_metrics, diversity
from evo_ensembles.reporting import _save, markdown_table, plt
from evo_ensembles.train import load_state_into, load_tensors, parent_train_config, save_model
from evo_ensembles.train.parent import train_or_load_parent

RUNS = Path(__file__).resolve().parent / "runs" / "regime"
LOG = RunLog("regime")
NAME = "regime"
META: dict = {}  # this invocation's provenance, recorded in every row it adds
STAGES = ["aug", "scope", "tuning", "confirm", "size", "split", "capacity"]
BASE = {"model": "lenet-s", "seed": 0, "parent_epochs": 8, "parent_aug": True, "child_aug": True,
        "dense": "none", "masks": "np", "child_epochs": 2, "lr_mult": 1.0, "members": 4}
MASKS = {"np": {"density": 0.5, "partition": True}, "r75": {"density": 0.75, "partition": False}}
DENSE = {"none": (), "first+last": ("first", "last")}
LR = 1e-3
FACTORS = {  # what each stage varies, for the effects table
    "aug": ["parent_aug", "child_aug"], "scope": ["dense", "masks"],
    "tuning": ["child_epochs", "lr_mult"], "confirm": ["seed"], "size": ["members"],
    "split": ["parent_epochs", "child_epochs"], "capacity": ["model"],
}


def key(cfg: dict) -> str:
    return json.dumps({k: cfg[k] for k in sorted(cfg)}, sort_keys=True)


def tag(cfg: dict, *fields: str) -> str:
    return "_".join(f"{f}={cfg[f]}" for f in fields).replace("+", "-")


class Study:
    """Trains parents and children on demand and caches what they predict."""

    def __init__(self, device, progress: bool, subset: int | None = None) -> None:
        self.device, self.progress, self.subset = device, progress, subset
        self._data: dict = {}
        self._parents: dict = {}

    def data(self, seed: int, aug: bool):
        if (seed, aug) not in self._data:
            self._data[(seed, aug)] = load_dataset("fashion-mnist", seed=seed, augment=aug,
                                                    subset=self.subset)
        return self._data[(seed, aug)]

    def parent(self, cfg: dict):
        """(model, {split: probs}, seconds) of the parent ``cfg`` describes (trained once).

        ``cfg["init_seed"]`` (default: the run's seed) seeds initialisation and data order
        only, so independently trained members share the run's data split.
        """
        init = cfg.get("init_seed", cfg["seed"])
        k = (cfg["model"], cfg["seed"], cfg["parent_epochs"], cfg["parent_aug"], init)
        if k not in self._parents:
            data = self.data(cfg["seed"], cfg["parent_aug"])
            name = tag(cfg, "model", "seed", "parent_epochs", "parent_aug")
            out = RUNS / "parents" / (name if init == cfg["seed"] else f"{name}_init={init}")
            t0 = time.perf_counter()
            model, meta, _ = train_or_load_parent(
                out, data, cfg["model"], parent_train_config(cfg["parent_epochs"], LR, "adam", 128, init),
                parent_path=None, device=self.device, progress=self.progress)
            seconds = sum(h["seconds"] for h in meta.get("history", [])) or time.perf_counter() - t0
            model.eval()
            probs = {s: predict_probs(model, getattr(data, s).x) for s in ("val", "test")}
            self._parents[k] = (model, probs, seconds)
        return self._parents[k]

    def _child_path(self, cfg: dict, i: int) -> Path:
        return (RUNS / "children" / tag(cfg, "model", "seed", "parent_epochs", "parent_aug")
                / tag(cfg, "masks", "dense", "child_epochs", "lr_mult", "child_aug") / f"child_{i}.safetensors")

    def child(self, cfg: dict, i: int) -> tuple[dict, float]:
        """({split: probs}, tune seconds) of child ``i`` of ``cfg`` (trained once)."""
        path = self._child_path(cfg, i)
        if not path.is_file():
            self._tune(cfg, i)
        with safe_open(str(path), "pt") as f:
            return {s: f.get_tensor(s) for s in ("val", "test")}, float(f.metadata()["seconds"])

    def child_model(self, cfg: dict, i: int):
        """Child ``i`` of ``cfg`` as a model (its weights are cached beside its probabilities)."""
        weights = self._child_path(cfg, i).with_suffix(".weights.safetensors")
        if not weights.is_file():
            return self._tune(cfg, i)
        data = self.data(cfg["seed"], cfg["child_aug"])
        model = build_model(cfg["model"], data.input_shape, data.num_classes)
        load_state_into(model, load_tensors(weights), str(weights))
        return model.to(self.device).eval()

    def _tune(self, cfg: dict, i: int):
        """Prune and tune child ``i`` of ``cfg``; cache its probabilities and weights."""
        parent, _, _ = self.parent(cfg)
        data = self.data(cfg["seed"], cfg["child_aug"])
        specs = make_child_specs(i + 1, seed=cfg["seed"], dense_layers=DENSE[cfg["dense"]],
                                 **MASKS[cfg["masks"]])
        tune = TrainConfig(epochs=cfg["child_epochs"], lr=LR * cfg["lr_mult"], optimizer="adam",
                           schedule="one-cycle", seed=cfg["seed"])
        t0 = time.perf_counter()
        ens = prune_and_tune(parent, specs[i:], data.train, tune, augment=data.augment,
                             device=self.device, progress=self.progress, first_index=i)
        seconds = time.perf_counter() - t0
        child = ens.members[0].eval()
        probs = {s: predict_probs(child, getattr(data, s).x).contiguous() for s in ("val", "test")}
        path = self._child_path(cfg, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(path.with_suffix(".weights.safetensors"), child, {"descriptor": specs[i].to_dict()})
        save_file(probs, str(path), metadata={"seconds": repr(seconds)})
        return child

    def run(self, cfg: dict, sizes: tuple[int, ...]) -> list[dict]:
        """Rows (one per ensemble size) for ``cfg``: parent and ensemble on val and test."""
        _, parent_p, parent_s = self.parent(cfg)
        data = self.data(cfg["seed"], cfg["parent_aug"])
        members, child_s = [], []
        for i in range(max(sizes)):
            p, s = self.child(cfg, i)
            members.append(p)
            child_s.append(s)
        rows = []
        for m in sizes:
            row = {**cfg, "members": m, "epochs": cfg["parent_epochs"] + m * cfg["child_epochs"],
                   "parent_seconds": parent_s, "children_seconds": sum(child_s[:m])}
            for split in ("val", "test"):
                y = getattr(data, split).y
                mp = torch.stack([c[split] for c in members[:m]])
                row[split] = {
                    "parent": classification_metrics(parent_p[split], y),
                    "ensemble": classification_metrics(combine(mp), y),
                    "member_accuracy": sum(classification_metrics(p, y)["accuracy"] for p in mp) / m,
                    "disagreement": diversity(mp)["disagreement"],
                }
            rows.append(row)
        return rows

    def single(self, cfg: dict) -> dict:
        """A row for the parent of ``cfg`` alone (one model, its whole budget)."""
        _, parent_p, parent_s = self.parent(cfg)
        data = self.data(cfg["seed"], cfg["parent_aug"])
        row = {**cfg, "members": 0, "epochs": cfg["parent_epochs"], "parent_seconds": parent_s,
               "children_seconds": 0.0}
        for split in ("val", "test"):
            m = classification_metrics(parent_p[split], getattr(data, split).y)
            row[split] = {"parent": m, "ensemble": m, "member_accuracy": m["accuracy"], "disagreement": 0.0}
        return row


def load_rows() -> list[dict]:
    return LOG.rows


def score(row: dict) -> tuple[float, float]:
    """Validation ranking: ensemble accuracy, then (lower) NLL."""
    e = row["val"]["ensemble"]
    return (round(e["accuracy"], 4), -e["nll"])


def best(rows: list[dict], stage: str) -> dict:
    cands = [r for r in rows if r["stage"] == stage and r["members"] > 0]
    return max(cands, key=score)


CFG_KEYS = list(BASE)


def plan(stage: str, b: dict) -> list[tuple[dict, tuple[int, ...]]]:
    """The configurations of ``stage`` around the current best ``b`` (and the sizes to report)."""
    if stage == "aug":
        return [({**b, "parent_aug": pa, "child_aug": ca}, (4,)) for pa in (True, False) for ca in (True, False)]
    if stage == "scope":
        return [({**b, "dense": d, "masks": m}, (4,)) for d in DENSE for m in MASKS]
    if stage == "tuning":
        return [({**b, "child_epochs": e, "lr_mult": lr}, (4,)) for e in (1, 2, 3) for lr in (1.0, 3.0)]
    if stage == "confirm":
        return [({**b, "seed": s}, (4,)) for s in (0, 1, 2)]
    if stage == "size":
        return [(b, (4, 8, 16))]
    if stage == "split":
        return [({**b, "parent_epochs": 8, "child_epochs": 2}, (4,)),
                ({**b, "parent_epochs": 12, "child_epochs": 1}, (4,)),
                ({**b, "parent_epochs": 16}, ())]
    if stage == "capacity":
        return [({**b, "model": m}, (4,)) for m in ("lenet-5", "lenet-s", "resnet-8", "lenet-m", "lenet-l")]
    raise ValueError(stage)


def carry(rows: list[dict], stages: list[str]) -> dict:
    """The best settings so far: each screening stage's validation winner, in order."""
    b = dict(BASE)
    for stage in ("aug", "scope", "tuning"):
        if stage in stages and any(r["stage"] == stage for r in rows):
            w = best(rows, stage)
            b.update({f: w[f] for f in FACTORS[stage]})
    return b


def run_stage(study: Study, stage: str, rows: list[dict]) -> None:
    b = carry(rows, STAGES[:STAGES.index(stage)])
    done = {(r["stage"], key({k: r[k] for k in CFG_KEYS})) for r in rows}
    for cfg, sizes in plan(stage, b):
        wanted = [{**cfg, "members": m} for m in sizes] if sizes else [{**cfg, "members": 0}]
        if all((stage, key(w)) in done for w in wanted):
            continue
        t0 = time.perf_counter()
        new = study.run(cfg, sizes) if sizes else [study.single(cfg)]
        for r in new:
            r.update(stage=stage, wall_seconds=time.perf_counter() - t0, run_commit=META["commit"],
                     run_command=META["command"])
            LOG.append(r)  # rows is LOG.rows
            v, t = r["val"], r["test"]
            name = tag(r, *dict.fromkeys([*FACTORS[stage], "members"]))
            print(f"[{stage}] {name}: val acc {v['parent']['accuracy']:.4f}"
                  f"->{v['ensemble']['accuracy']:.4f}  test acc {t['parent']['accuracy']:.4f}->"
                  f"{t['ensemble']['accuracy']:.4f} nll {t['parent']['nll']:.4f}->{t['ensemble']['nll']:.4f}"
                  f"  ({r['wall_seconds']:.0f}s)", flush=True)


# ---------------------------------------------------------------- report
def _fmt_cfg(r: dict, stage: str) -> list[object]:
    return [r[f] for f in FACTORS[stage]] + ([r["members"]] if stage == "size" else [])


def stage_table(rows: list[dict], stage: str) -> str:
    rs = [r for r in rows if r["stage"] == stage]
    if not rs:
        return "_not run yet_"
    win = best(rows, stage) if any(r["members"] for r in rs) else None
    heads = FACTORS[stage] + (["members"] if stage == "size" else []) + [
        "val Δacc", "val ΔNLL", "parent acc", "ens acc", "Δacc", "parent NLL", "ens NLL", "ΔNLL",
        "parent ECE", "ens ECE", "member acc", "disagr.", "epochs", "child s", "chosen"]
    body = []
    for r in rs:
        v, t = r["val"], r["test"]
        body.append(_fmt_cfg(r, stage) + [
            100 * (v["ensemble"]["accuracy"] - v["parent"]["accuracy"]), v["ensemble"]["nll"] - v["parent"]["nll"],
            100 * t["parent"]["accuracy"], 100 * t["ensemble"]["accuracy"],
            100 * (t["ensemble"]["accuracy"] - t["parent"]["accuracy"]),
            t["parent"]["nll"], t["ensemble"]["nll"], t["ensemble"]["nll"] - t["parent"]["nll"],
            t["parent"]["ece"], t["ensemble"]["ece"], 100 * t["member_accuracy"], t["disagreement"],
            r["epochs"], round(r["children_seconds"]), "**yes**" if r is win else ""])
    return markdown_table(heads, body)


def effects(rows: list[dict]) -> str:
    """For each screened factor and level: the ensemble on val and test, and Δ vs its parent.

    Means over the stage's other settings; where a factor changes the parent (augmentation,
    capacity) the absolute ensemble numbers matter, not only Δ.
    """
    out = []
    for stage in ("aug", "scope", "tuning", "size", "split", "capacity"):
        rs = [r for r in rows if r["stage"] == stage and r["members"] > 0]
        for f in dict.fromkeys(FACTORS[stage] + (["members"] if stage == "size" else [])):
            levels = sorted({json.dumps(r[f]) for r in rs}, key=json.loads)
            if len(levels) < 2:
                continue
            for lv in levels:
                sel = [r for r in rs if json.dumps(r[f]) == lv]

                def mean(get, sel=sel):
                    return sum(get(r) for r in sel) / len(sel)

                out.append([stage, f, json.loads(lv), len(sel),
                            100 * mean(lambda r: r["val"]["ensemble"]["accuracy"]),
                            100 * mean(lambda r: r["test"]["ensemble"]["accuracy"]),
                            100 * mean(lambda r: r["test"]["ensemble"]["accuracy"] - r["test"]["parent"]["accuracy"]),
                            mean(lambda r: r["test"]["ensemble"]["nll"]),
                            mean(lambda r: r["test"]["ensemble"]["nll"] - r["test"]["parent"]["nll"])])
    heads = ["stage", "factor", "level", "n", "val ens acc", "test ens acc", "test Δacc", "test ens NLL", "test ΔNLL"]
    return markdown_table(heads, out) if out else "_not run yet_"


def confirm_summary(rows: list[dict]) -> tuple[str, dict]:
    rs = [r for r in rows if r["stage"] == "confirm"]
    if not rs:
        return "_not run yet_", {}
    summ, body = {}, []
    for who in ("parent", "ensemble"):
        vals = {m: mean_se([r["test"][who][m] for r in rs]) for m in ("accuracy", "nll", "ece")}
        summ[who] = {m: {"mean": a, "se": s} for m, (a, s) in vals.items()}
        body.append([who, f"{100 * vals['accuracy'][0]:.2f} ± {100 * vals['accuracy'][1]:.2f}",
                     f"{vals['nll'][0]:.4f} ± {vals['nll'][1]:.4f}", f"{vals['ece'][0]:.4f} ± {vals['ece'][1]:.4f}"])
    wins = sum(r["test"]["ensemble"]["accuracy"] > r["test"]["parent"]["accuracy"]
               and r["test"]["ensemble"]["nll"] < r["test"]["parent"]["nll"] for r in rs)
    summ.update(seeds=[r["seed"] for r in rs], wins=wins,
                settings={k: rs[0][k] for k in CFG_KEYS if k != "seed"},
                epochs=rs[0]["epochs"], children_seconds=mean_se([r["children_seconds"] for r in rs]),
                parent_seconds=mean_se([r["parent_seconds"] for r in rs]))
    text = markdown_table(["test (mean ± s.e.)", "accuracy %", "NLL", "ECE"], body)
    text += (f"\n\nThe ensemble beats its parent on both test accuracy and NLL in {wins} of {len(rs)} seeds "
             f"({', '.join(str(r['seed']) for r in rs)}).")
    return text, summ


def plot(rows: list[dict], path: Path) -> None:
    stages = [s for s in STAGES if any(r["stage"] == s and r["members"] for r in rows)]
    if not stages:
        return
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 3.6), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rs = [r for r in rows if r["stage"] == stage and r["members"]]
        labels = ["\n".join(str(x) for x in _fmt_cfg(r, stage)) for r in rs]
        da = [100 * (r["test"]["ensemble"]["accuracy"] - r["test"]["parent"]["accuracy"]) for r in rs]
        ax.bar(range(len(rs)), da, color=["tab:green" if d > 0 else "tab:red" for d in da])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(rs)), labels, fontsize=6)
        ax.set_title(f"{stage}: {', '.join(FACTORS[stage])}", fontsize=8)
        ax.set_ylabel("test accuracy, ensemble − parent (pt)", fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def defaults_note(rows: list[dict]) -> str:
    """Which of the library's defaults (the demo's) are this study's validation winners, and
    which were chosen for cost: the size and capacity stages are reported, never carried."""
    from evo_ensembles.config.sparse import CHILD_LR_FACTOR, SparseRunConfig

    cfg = SparseRunConfig()
    c = carry(rows, STAGES)
    library = {"parent_aug": cfg.augment, "child_aug": cfg.augment if cfg.child_augment is None else cfg.child_augment,
               "dense": next((k for k, v in DENSE.items() if v == tuple(cfg.dense_layers)), cfg.dense_layers),
               "masks": next((k for k, v in MASKS.items() if v == {"density": cfg.density, "partition": cfg.partition}),
                             f"density {cfg.density}"),
               "child_epochs": cfg.child_epochs, "lr_mult": CHILD_LR_FACTOR}
    screened = [f for s in ("aug", "scope", "tuning") if any(r["stage"] == s for r in rows) for f in FACTORS[s]]
    won = [f"`{f}` {c[f]}" for f in screened if library[f] == c[f]]
    differ = [f"`{f}` {library[f]} (the winner: {c[f]})" for f in screened if library[f] != c[f]]
    text = ["**Which defaults are validation winners, and which were chosen for cost.** The library's "
            f"defaults (the README's demo: {cfg.model}, parent {cfg.parent_epochs} epochs, {cfg.children} "
            "children) take " + (", ".join(won) or "none") + " from the screens' validation winners"
            + (f"; they differ in {', '.join(differ)}" if differ else "") + "."]

    def pct(r: dict, split: str) -> str:
        return f"{100 * r[split]['ensemble']['accuracy']:.2f} %"

    for stage, field, mine in (("size", "members", cfg.children), ("capacity", "model", cfg.model)):
        rs = [r for r in rows if r["stage"] == stage and r["members"] > 0]
        ours = [r for r in rs if r[field] == mine]
        if not rs or not ours:
            continue
        w, o = best(rows, stage), ours[0]
        if w[field] == mine:
            text.append(f"`{field}` {mine} won the {stage} stage on validation ({pct(w, 'val')}).")
        else:
            text.append(f"`{field}` {mine} was chosen for cost: {w[field]} won the {stage} stage on validation "
                        f"(ensemble {pct(w, 'val')} vs {pct(o, 'val')}; test {pct(w, 'test')} vs {pct(o, 'test')}) "
                        f"but costs {w['epochs']} epochs and {w['children_seconds']:.0f} s of child tuning vs "
                        f"{o['epochs']} and {o['children_seconds']:.0f} s.")
    return " ".join(text)


def report(rows: list[dict], meta: dict) -> None:
    conf_text, conf = confirm_summary(rows)
    wall = sum(r["wall_seconds"] for r in rows)
    made = sorted({f"`{r['run_command']}` at {describe_code([r if 'commit' in r else {'commit': r['run_commit']}])}"
                   for r in rows if "run_commit" in r})
    parts = [
        "# Regime study: where Sparse Subnetwork Ensembles beat their parent (Fashion-MNIST)",
        f"Runs made by {'; '.join(made) or 'this command'}. "
        f"Tables written by `{meta['command']}` on {meta['date']}; {describe_code([meta])}; "
        f"{meta['hardware'].get('cpu', meta['hardware'])}; summed wall time of the runs so far "
        f"{wall / 60:.0f} min (parents trained once and shared).",
        "Full training split (54,000 train / 6,000 validation, seeded by the run's seed), the "
        "10,000-image test split for the numbers. **Every choice (the `chosen` column) is made on "
        "validation**; Δ = ensemble − parent. Parents: Adam 1e-3 constant, batch 128, 8 epochs unless "
        "stated. Children: `prune_and_tune`, one-cycle Adam with peak `lr_mult` × 1e-3; masks `np` = "
        "mask/anti-mask pairs at density 0.5, `r75` = independent random masks at density 0.75; "
        "`dense` = pruning scope (`first+last`: the first conv and the output layer are never pruned). "
        "Epochs count parent + children at full cost. ECE: 15 equal-width bins. `child s` is the "
        "children's summed tuning time; some runs shared the 2-core box with test runs, so time "
        "the demo alone for costs (README).",
        defaults_note(rows),
        "## Which factors matter (per level, averaged over the screen's other settings)",
        effects(rows),
        "## Confirmation of the chosen settings over seeds",
        conf_text,
    ]
    for stage in STAGES:
        parts += [f"## Stage `{stage}` (varies {', '.join(FACTORS[stage])})", stage_table(rows, stage)]
    parts.append(f"![test Δaccuracy per stage]({NAME}_stages.png)")
    plot(rows, RESULTS / f"{NAME}_stages.png")
    save(NAME, {**meta, "confirm": conf, "carried_settings": carry(rows, STAGES), "rows": rows},
         "\n\n".join(parts) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=STAGES)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--report", action="store_true", help="only rebuild the tables from runs.jsonl")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--subset", type=int, default=None, help="training examples (smoke runs)")
    ap.add_argument("--name", default="regime", help="result/cache name (smoke runs: another name)")
    args = ap.parse_args()
    global RUNS, LOG, NAME
    RUNS, LOG, NAME = RUNS.parent / args.name, RunLog(args.name), args.name
    set_threads(args.threads)
    rows = load_rows()
    meta = header()
    META.update(meta)
    if not args.report:
        study = Study(resolve_device(args.device), args.progress, args.subset)
        for stage in args.stages:
            run_stage(study, stage, rows)
            report(rows, meta)
    report(rows, meta)


if __name__ == "__main__":
    main()
