"""RL generalisation study (issue #33): does the noisy ensemble policy help where a
generalisation gap exists, and does the gain grow with the gap?

MiniGrid tasks with procedural layouts × training-level counts N (a small N overfits its
levels; unlimited levels are the no-gap control) × training seeds. PPO with the
``minigrid`` preset (per-task budgets in the preset). Every evaluation goes through the
library's ``rl evaluate`` run, so parent and ensemble always act under the same rule on the
same episodes; held-out levels never overlap training levels (evo_ensembles.envs.minigrid).

1. Train every (task, N, seed) agent (resumable, under benchmarks/runs/<name>/agents/).
   An agent *learned its training levels* when its training-level return right after
   training, under the better of the two action rules, reaches ``--learned`` (MiniGrid's success reward is
   1 − 0.9·steps/max_steps, so 0.5 means it solves most levels); the page lists any that did not.
2. Screen the ensemble's settings one factor at a time on VALIDATION episodes drawn from the
   *training* levels (env seed ``--val-seed``), on ``--screen-seeds`` of every (task, N),
   carrying the best setting forward as benchmarks/rl_regime.py does:
   rule × σ (trust region or fixed), density, size K, top-K selection.
3. Confirm the chosen setting (and the library default, when it differs) on HELD-OUT levels
   for every training seed, with the parent's training-level returns (the gap) and every
   action rule (the rule table) in the same evaluation.

Reported per (task, N): the parent's generalisation gap (training-level − held-out return)
and the ensemble − parent gain on held-out levels, each with 95% intervals over episodes
and over training seeds; the gain against the gap across agents (Spearman ρ with a
bootstrap interval); the rule table (parent and ensemble under sampling and under arg-max),
here on held-out levels and for MinAtar from the regime study's validation rows.

    .venv/bin/python benchmarks/rl_generalization.py --threads 1
    .venv/bin/python benchmarks/rl_generalization.py --threads 1 &   # a second copy shares the work
    .venv/bin/python benchmarks/rl_generalization.py --report        # tables and figure only
    .venv/bin/python benchmarks/rl_generalization.py --preset smoke --timesteps 512 \\
        --tasks MiniGrid-Empty-Random-5x5-v0 --levels 3 0 --seeds 0 --screen-seeds 0 \\
        --val-episodes 2 --test-episodes 2 --selection-episodes 2 --name rl_generalization_smoke
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import time
from pathlib import Path

from _common import (
    RESULTS,
    RunLog,
    claim,
    code_of,
    describe_code,
    header,
    made_at,
    save,
    trained_by,
)
from rl_regime import rel_return, t95

from evo_ensembles.agents import RLTrainConfig, train_agent
from evo_ensembles.agents.train import read_agent_record
from evo_ensembles.devices import set_threads
from evo_ensembles.recipes.rl import RLEvalConfig, run_rl_evaluate
from evo_ensembles.reporting import _save, markdown_table, plt
from evo_ensembles.run_folder import LAYOUT

HERE = Path(__file__).resolve().parent
TASKS = ["MiniGrid-DoorKey-6x6-v0", "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-LavaGapS6-v0"]
LEVELS = [25, 100, 0]  # 0: unlimited training levels, the no-gap control
# The library's `rl evaluate` defaults (the MinAtar regime study's choice): the screen starts here.
DEFAULT = {"action": "argmax", "sigma": 0.01, "target_kl": 0.02, "density": 0.5, "members": 8,
           "population": 16}
RULES = ("sample", "argmax")


def stages(carried: dict) -> dict[str, list[dict]]:
    """Configurations of each screening stage, given the settings carried so far."""
    sigmas = [{"sigma": None, "target_kl": 0.02}, {"sigma": 0.01, "target_kl": 0.02},
              {"sigma": 0.05, "target_kl": 0.02}]
    k = carried["members"]
    return {
        "rule_sigma": [{**carried, "action": a, **s} for a in RULES for s in sigmas],
        "density": [{**carried, "density": d} for d in (0.2, 0.5)],
        "size": [{**carried, "members": m, "population": 2 * m if carried["population"] else None}
                 for m in (4, 8)],
        "topk": [{**carried, "population": p} for p in (None, 2 * k)],
    }


STAGES = list(stages(DEFAULT))


def label(cfg: dict) -> str:
    sigma = f"σ={cfg['sigma']:g}" if cfg["sigma"] is not None else f"TR KL {cfg['target_kl']:g}"
    top = f", top {cfg['members']}/{cfg['population']}" if cfg["population"] else ", no selection"
    return f"{cfg['action']}, {sigma}, d={cfg['density']:g}, K={cfg['members']}{top}"


def ckey(cfg: dict) -> str:
    return json.dumps({k: cfg[k] for k in sorted(DEFAULT)}, sort_keys=True)


def nlabel(n: int) -> str:
    return "unlimited" if n == 0 else str(n)


def short(task: str) -> str:
    return task.removeprefix("MiniGrid-").removesuffix("-v0")


class Study:
    def __init__(self, args) -> None:
        self.args = args
        self.log = RunLog(args.name)
        self.rows = self.log.rows
        self.runs = HERE / "runs" / args.name
        self.agents = [(t, n, s) for t in args.tasks for n in args.levels for s in args.seeds]

    # --- agents -----------------------------------------------------------------------
    def train_config(self, task: str, n: int, seed: int) -> RLTrainConfig:
        return RLTrainConfig(f"minigrid:{task}", self.args.preset, timesteps=self.args.timesteps, seed=seed,
                             train_levels=n or None, checkpoint_every=100_000)

    def agent_dir(self, task: str, n: int, seed: int) -> Path:
        return self.runs / "agents" / f"{short(task)}_N{nlabel(n)}_s{seed}"

    def agent(self, task: str, n: int, seed: int) -> Path:
        """The agent directory of (task, N, seed), once its training is complete."""
        out = self.agent_dir(task, n, seed)
        record = read_agent_record(out / LAYOUT.agent) if (out / LAYOUT.agent).is_file() else None
        cfg = self.train_config(task, n, seed)
        if record is None or not record.get("complete") or \
                record.get("timesteps_target") != (cfg.timesteps or cfg.preset_spec().timesteps):
            raise LookupError(out)
        return out

    def train_agents(self) -> None:
        """Train (or resume) every agent, sharing them with other copies of this script."""
        for wait in (False, True):
            for task, n, seed in self.agents:
                out = self.agent_dir(task, n, seed)
                with claim(out.with_name(out.name + ".lock"), wait=wait) as mine:
                    if not mine:
                        continue
                    try:
                        self.agent(task, n, seed)
                    except LookupError:
                        t0 = time.perf_counter()
                        info = train_agent(self.train_config(task, n, seed), out, progress=self.args.progress)
                        if not info["complete"]:
                            raise SystemExit(f"{out}: training incomplete") from None
                        print(f"  trained {short(task)} N={nlabel(n)} s{seed}: {info['timesteps_done']} steps "
                              f"({time.perf_counter() - t0:.0f}s)", flush=True)
                    self.log.reload()
                    if self.learned_row(task, n, seed) is None:
                        self.check_learned(task, n, seed)

    def learned_row(self, task: str, n: int, seed: int) -> dict | None:
        return next((r for r in self.rows if r["stage"] == "learned"
                     and (r["task"], r["train_levels"], r["train_seed"]) == (task, n, seed)), None)

    def check_learned(self, task: str, n: int, seed: int) -> dict:
        """The parent's return on its own training levels under each action rule, right after
        training (a seed stream of its own): did the budget let it learn them?"""
        from evo_ensembles.agents.ensemble_policy import PolicyPredictor
        from evo_ensembles.agents.evaluate import run_episodes
        from evo_ensembles.agents.train import load_agent

        t0 = time.perf_counter()
        model, meta = load_agent(self.agent(task, n, seed), device="cpu")
        policy, seed_stream = model.policy.eval(), self.args.val_seed + 1000
        returns = {action: run_episodes(PolicyPredictor(policy, action=action, seed=seed_stream), meta,
                                        episodes=self.args.learned_episodes, levels="train", seed=seed_stream,
                                        n_envs=4)["mean_return"] for action in RULES}
        row = {"stage": "learned", "task": task, "train_levels": n, "train_seed": seed, "key": None,
               "episodes": self.args.learned_episodes, "eval_seed": seed_stream, **returns,
               "agent_timesteps": meta.get("timesteps_done"), "seconds": time.perf_counter() - t0}
        self.log.append(row)
        print(f"  learned?   {short(task):18s} N={nlabel(n):9s} s{seed} training-level return "
              + ", ".join(f"{a} {v:.3f}" for a, v in returns.items()), flush=True)
        return row

    # --- evaluations ------------------------------------------------------------------
    def eval_dir(self, stage: str, task: str, n: int, seed: int, cfg: dict) -> Path:
        digest = hashlib.sha1(ckey(cfg).encode()).hexdigest()[:10]
        return self.runs / "evals" / f"{short(task)}_N{nlabel(n)}_s{seed}" / f"{stage}_{digest}"

    def find(self, stage: str, task: str, n: int, seed: int, cfg: dict) -> dict | None:
        """The logged evaluation of ``cfg``; a screening stage reuses the same setting's
        evaluation from an earlier stage (same validation episodes: the same numbers)."""
        k = ckey(cfg)
        same = [r for r in self.rows if (r["task"], r["train_levels"], r["train_seed"], r["key"]) == (task, n, seed, k)]
        exact = next((r for r in same if r["stage"] == stage), None)
        if exact is not None or stage == "confirm":
            return exact
        return next((r for r in same if r["stage"] != "confirm"), None)

    def work(self, stage: str, items: list[tuple[str, int, int, dict]]) -> None:
        """Evaluate the unlogged ``items`` (task, N, seed, config), sharing them with other copies."""
        for wait in (False, True):
            for task, n, seed, cfg in items:
                if self.find(stage, task, n, seed, cfg) is not None:
                    continue
                with claim(self.eval_dir(stage, task, n, seed, cfg).with_suffix(".lock"), wait=wait) as mine:
                    if not mine:
                        continue
                    self.log.reload()
                    if self.find(stage, task, n, seed, cfg) is None:
                        self.evaluate(stage, task, n, seed, cfg)
        self.log.reload()

    def evaluate(self, stage: str, task: str, n: int, seed: int, cfg: dict) -> dict:
        confirm = stage == "confirm"
        a = self.args
        episodes, eval_seed = (a.test_episodes, a.test_seed) if confirm else (a.val_episodes, a.val_seed)
        levels = "held-out" if confirm else "train"
        out = self.eval_dir(stage, task, n, seed, cfg)
        t0 = time.perf_counter()
        settings = {**cfg, "population": cfg["population"] or cfg["members"]}  # None: no selection
        settings["top_k"] = settings.pop("members")  # the study's key for the config's top_k
        res = run_rl_evaluate(RLEvalConfig(agent=str(self.agent(task, n, seed)), episodes=episodes, seed=eval_seed,
                                           levels=levels, selection_episodes=a.selection_episodes,
                                           probe_steps=a.probe_steps, train_returns=confirm, both_rules=confirm,
                                           **settings), out, progress=False)
        p, e = res["parent"], res["ensemble"]
        row = {"stage": stage, "task": task, "train_levels": n, "train_seed": seed, "key": ckey(cfg), "config": cfg,
               "levels": levels, "eval_seed": eval_seed, "episodes": episodes,
               "parent": p["mean_return"], "parent_std": p["std_return"], "parent_returns": p["returns"],
               "ensemble": e["mean_return"], "ensemble_std": e["std_return"], "ensemble_returns": e["returns"],
               "scores": [{k: s[k] for k in ("policy", "levels", "action", "mean_return", "std_return", "episodes",
                                             "returns")} for s in res["scores"]],
               "sigma": res["sigma"], "agent_timesteps": res["agent_timesteps"],
               "seconds": time.perf_counter() - t0, **code_of(res)}
        self.log.append(row)
        print(f"  {stage:10s} {short(task):18s} N={nlabel(n):9s} s{seed} {label(cfg):50s} parent {row['parent']:.3f} "
              f"ens {row['ensemble']:.3f} (σ {row['sigma']:.4g}, {row['seconds']:.0f}s)", flush=True)
        return row

    def screen_items(self, cfgs: list[dict]) -> list[tuple[str, int, int, dict]]:
        return [(t, n, s, c) for t in self.args.tasks for n in self.args.levels for s in self.args.screen_seeds
                for c in cfgs]

    def choose(self, stage: str, cfgs: list[dict], carried: dict) -> dict:
        """The stage's best setting: mean over (task, N, screening seed) of the ensemble's
        validation return relative to the parent of the setting carried in (ties keep it)."""
        scored = []
        for cfg in cfgs:
            pairs = [(self.find(stage, t, n, s, cfg), self.find(stage, t, n, s, carried))
                     for t, n, s, _ in self.screen_items([cfg])]
            pairs = [(r, ref) for r, ref in pairs if r is not None and ref is not None]
            if pairs:
                scored.append((statistics.fmean(rel_return(r, ref) for r, ref in pairs), cfg == carried, cfg))
        return max(scored, key=lambda x: x[:2])[2] if scored else carried

    def run(self, only_report: bool) -> dict:
        carried, chosen = dict(DEFAULT), {}
        if not only_report:
            self.train_agents()
        for stage in STAGES:
            cfgs = stages(carried)[stage]
            if not only_report:
                self.work(stage, self.screen_items(cfgs))
            carried = self.choose(stage, cfgs, carried)
            chosen[stage] = carried
            print(f"{stage}: carried {label(carried)}", flush=True)
        if not only_report:
            finals = [carried] + ([DEFAULT] if carried != DEFAULT else [])
            self.work("confirm", [(t, n, s, c) for t, n, s in self.agents for c in finals])
        return chosen


# --- statistics -----------------------------------------------------------------------
def score(row: dict, policy: str, levels: str, action: str) -> dict | None:
    return next((s for s in row["scores"] if (s["policy"], s["levels"], s["action"]) == (policy, levels, action)),
                None)


def paired_stats(pairs: list[tuple[dict, dict]]) -> dict:
    """Mean of b − a over agents, with 95% intervals over episodes (pooled) and over training
    seeds (Student t on the per-seed differences)."""
    n = len(pairs)
    diffs = [b["mean_return"] - a["mean_return"] for a, b in pairs]
    var_ep = sum(a["std_return"] ** 2 / a["episodes"] + b["std_return"] ** 2 / b["episodes"] for a, b in pairs)
    return {"n_seeds": n, "a": statistics.fmean(a["mean_return"] for a, _ in pairs),
            "b": statistics.fmean(b["mean_return"] for _, b in pairs), "diff": statistics.fmean(diffs),
            "per_seed": diffs, "ci_episodes": 1.96 * math.sqrt(var_ep) / n,
            "ci_seeds": t95(n) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else float("nan")}


def fmt_diff(s: dict) -> str:
    seeds = f"; seeds ±{s['ci_seeds']:.3f}" if s["n_seeds"] > 1 else ""
    return f"{s['diff']:+.3f} (episodes ±{s['ci_episodes']:.3f}{seeds})"


def spearman_with_interval(x: list[float], y: list[float], *, draws: int = 2000, seed: int = 0) -> dict:
    """Spearman's ρ of ``x`` and ``y`` and a 95% percentile bootstrap interval over the pairs."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:  # ρ is undefined for a constant input
        return {"rho": math.nan, "ci": [math.nan, math.nan], "n": len(x)}
    rho = float(spearmanr(x, y).statistic)
    rng, boots = random.Random(seed), []
    for _ in range(draws):
        idx = [rng.randrange(len(x)) for _ in x]
        bx, by = [x[i] for i in idx], [y[i] for i in idx]
        if len(set(bx)) > 1 and len(set(by)) > 1:
            boots.append(float(spearmanr(bx, by).statistic))
    boots.sort()
    lo, hi = (boots[int(0.025 * len(boots))], boots[int(0.975 * len(boots)) - 1]) if boots else (math.nan, math.nan)
    return {"rho": rho, "ci": [lo, hi], "n": len(x)}


def cell_rows(study: Study, cfg: dict, task: str, n: int) -> list[dict]:
    return [r for s in study.args.seeds if (r := study.find("confirm", task, n, s, cfg)) is not None]


def learned(study: Study) -> dict:
    """Per agent: its training-level return right after training, under the better rule."""
    return {(r["task"], r["train_levels"], r["train_seed"]): max(r[a] for a in RULES)
            for r in study.rows if r["stage"] == "learned"}


def minatar_rule_table() -> list[list[str]]:
    """The rule table on MinAtar from the regime study's validation rows (stage rule_sigma,
    fixed σ 0.01): parent and ensemble under each rule, mean over training seeds."""
    path = RESULTS / "rl_regime.runs.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["stage"] == "rule_sigma" and r["config"]["sigma"] == 0.01]
    table = []
    for game in sorted({r["game"] for r in rows}):
        cells = {}
        for action in RULES:
            rs = [r for r in rows if r["game"] == game and r["config"]["action"] == action]
            if rs:
                cells[action] = (statistics.fmean(r["parent"] for r in rs), statistics.fmean(r["ensemble"] for r in rs),
                                 len(rs))
        if len(cells) == 2:
            (ps, es, k), (pa, ea, _) = cells["sample"], cells["argmax"]
            table.append([game, k, f"{ps:.2f}", f"{pa:.2f}", f"{es:.2f}", f"{ea:.2f}", f"{pa - ps:+.2f}",
                          f"{ea - ps:+.2f}"])
    return table


RULE_HEADERS = ["", "training seeds", "parent, sample", "parent, argmax", "ensemble, sample", "ensemble, argmax",
                "argmax parent − sample parent", "argmax ensemble − sample parent"]


def report(study: Study, chosen: dict, meta: dict) -> None:
    rows, a = study.rows, study.args
    if not rows:
        print("nothing logged yet")
        return
    final = chosen.get(STAGES[-1], DEFAULT)
    summary: dict = {"chosen": final, "stages": {}, "cells": {}, "learned": {}, "gain_vs_gap": None}
    parts = []
    # Screening tables.
    carried = dict(DEFAULT)
    for stage in STAGES:
        body = []
        for cfg in stages(carried)[stage]:
            items = [(t, n, s) for t, n, s, _ in study.screen_items([cfg])]
            got = [(r, ref) for t, n, s in items
                   if (r := study.find(stage, t, n, s, cfg)) and (ref := study.find(stage, t, n, s, carried))]
            if not got:
                continue
            vs = statistics.fmean(rel_return(r, ref) for r, ref in got)
            gain = statistics.fmean(r["ensemble"] - r["parent"] for r, _ in got)
            mark = " **(chosen)**" if cfg == chosen.get(stage) else ""
            body.append([label(cfg) + mark, len(got), f"{statistics.fmean(r['parent'] for r, _ in got):.3f}",
                         f"{statistics.fmean(r['ensemble'] for r, _ in got):.3f}", f"{gain:+.3f}", f"{100 * vs:+.1f}%"])
            summary["stages"].setdefault(stage, []).append({"config": cfg, "n": len(got), "gain": gain,
                                                            "rel_vs_carried_parent": vs})
        if body:
            parts.append(f"### Screen `{stage}` (validation episodes on training levels, seeds {a.screen_seeds})\n\n"
                         + markdown_table(["setting", "agents", "parent", "ensemble", "ensemble − parent",
                                           f"ensemble vs parent of `{label(carried)}`"], body))
        carried = chosen.get(stage, carried)
    # Confirmation: gap and gain per (task, N).
    body, rule_body, gaps, gains = [], [], [], []
    for task in a.tasks:
        for n in a.levels:
            rs = cell_rows(study, final, task, n)
            if not rs:
                continue
            act = final["action"]
            gap = paired_stats([(score(r, "parent", "held-out", act), score(r, "parent", "train", act)) for r in rs])
            gain = paired_stats([(score(r, "parent", "held-out", act), score(r, "ensemble", "held-out", act))
                                 for r in rs])
            summary["cells"][f"{task}|{nlabel(n)}"] = {"gap": gap, "gain": gain,
                                                       "sigma": statistics.fmean(r["sigma"] for r in rs)}
            body.append([short(task), nlabel(n), len(rs), f"{gap['b']:.3f}", f"{gap['a']:.3f}", fmt_diff(gap),
                         f"{gain['b']:.3f}", fmt_diff(gain)])
            gaps.append((task, n, gap["per_seed"]))
            gains.append(gain["per_seed"])
            cells = {(p, ac): statistics.fmean(score(r, p, "held-out", ac)["mean_return"] for r in rs)
                     for p in ("parent", "ensemble") for ac in RULES}
            rule_body.append([f"{short(task)} N={nlabel(n)}", len(rs), *(f"{cells[(p, ac)]:.3f}" for p in
                              ("parent", "ensemble") for ac in RULES),
                              f"{cells[('parent', 'argmax')] - cells[('parent', 'sample')]:+.3f}",
                              f"{cells[('ensemble', 'argmax')] - cells[('parent', 'sample')]:+.3f}"])
    if body:
        parts.insert(0, "## Generalisation gap and ensemble gain on held-out levels\n\n"
                     f"Setting `{label(final)}` (chosen on validation episodes of training levels). "
                     f"{a.test_episodes} episodes per agent on held-out levels (env seed {a.test_seed}) and on its "
                     "training levels; mean over training seeds; ± is the 95% interval over episodes (pooled) and "
                     "over training seeds (Student t). Gap = training-level − held-out return of the parent.\n\n"
                     + markdown_table(["task", "training levels", "seeds", "parent, training levels",
                                       "parent, held-out", "gap", "ensemble, held-out", "ensemble − parent, held-out"],
                                      body))
    xs, ys = [x for *_, g in gaps for x in g], [y for g in gains for y in g]
    if len(xs) > 2:
        corr = spearman_with_interval(xs, ys)
        summary["gain_vs_gap"] = corr
        rho = ("undefined (a constant gap or gain)" if math.isnan(corr["rho"]) else
               f"{corr['rho']:+.2f} (95% bootstrap interval {corr['ci'][0]:+.2f} … {corr['ci'][1]:+.2f})")
        parts.insert(1, f"**Does the gain grow with the gap?** Spearman ρ between each agent's gap and its "
                     f"ensemble − parent gain on held-out levels: {rho}; {corr['n']} agents.\n\n"
                     f"![gain vs gap]({a.name}_gap.png)")
        plot(study, [(t, n, g, gn) for (t, n, g), gn in zip(gaps, gains)], RESULTS / f"{a.name}_gap.png")
    if rule_body:
        parts.append("## The action rule alone (held-out levels)\n\nParent and ensemble under each rule on the same "
                     "episodes (children selected under the chosen rule). A comparison of an arg-max ensemble with a "
                     "sampling parent credits the ensemble with the last column minus the first difference.\n\n"
                     + markdown_table(RULE_HEADERS, rule_body))
    minatar = minatar_rule_table()
    if minatar:
        parts.append("### MinAtar (the RL regime study's agents; validation episodes, stage rule_sigma, fixed σ 0.01, "
                     "density 0.2; each rule's ensemble selected under that rule)\n\n"
                     + markdown_table(["game", *RULE_HEADERS[1:]], minatar))
    done = learned(study)
    threshold = a.learned
    failed = [f"{short(t)} N={nlabel(n)} s{s} ({v:.2f})" for (t, n, s), v in sorted(done.items()) if v < threshold]
    summary["learned"] = {"threshold": threshold, "failed": failed, "checked": len(done)}
    parts.append(f"Agents that learned their training levels (training-level return right after training, "
                 f"{a.learned_episodes} episodes, the better rule, ≥ {threshold}): "
                 f"{len(done) - len(failed)} of {len(done)} checked"
                 + (f"; not: {', '.join(failed)}." if failed else "."))
    records = [read_agent_record(z) for t, n, s in study.agents
               if (z := study.agent_dir(t, n, s) / LAYOUT.agent).is_file()]
    train_h = sum(r.get("train_seconds_this_run") or 0.0 for r in records) / 3600
    sps = [r["steps_per_second_this_run"] for r in records if r.get("steps_per_second_this_run")]
    md = "\n\n".join([
        "# RL generalisation study: noisy ensemble policy where a generalisation gap exists (MiniGrid)",
        f"Tasks {[short(t) for t in a.tasks]}; training levels {[nlabel(n) for n in a.levels]}; training seeds "
        f"{a.seeds}; `{a.preset}` preset" + (f", {a.timesteps} steps" if a.timesteps else " (per-task budgets)") + ".",
        *parts,
        f"Hardware: {meta['hardware'].get('cpu')}; {describe_code([meta])}; date {meta['date']}; evaluations "
        f"{sum(r['seconds'] for r in rows) / 3600:.2f} h summed; agent training {train_h:.2f} h summed over "
        f"{len(records)} agents" + (f" (PPO {statistics.median(sps):.0f} steps/s median)" if sps else "") + ".",
        f"Rows made by {trained_by(rows)} at {made_at(rows)}; this page: `{meta['command']}`.",
    ]) + "\n"
    save(a.name, {**meta, "args": vars(a), "summary": summary}, md)


def plot(study: Study, cells: list[tuple[str, int, list[float], list[float]]], path: Path) -> None:
    """Each agent's ensemble − parent gain on held-out levels against its generalisation gap
    (``cells``: task, N, per-seed gaps, per-seed gains)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    markers = dict(zip(study.args.tasks, "os^vD"))
    colours = {n: f"C{i}" for i, n in enumerate(study.args.levels)}
    for task, n, xs, ys in cells:
        ax.scatter(xs, ys, marker=markers[task], color=colours[n], label=f"{short(task)} N={nlabel(n)}", s=22)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("parent's gap (training − held-out return)")
    ax.set_ylabel("ensemble − parent (held-out)")
    if ax.has_data():
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    _save(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--levels", nargs="+", type=int, default=LEVELS, help="training levels N (0 = unlimited)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="training seeds")
    ap.add_argument("--screen-seeds", nargs="+", type=int, default=[0, 1, 2],
                    help="training seeds whose agents screen the ensemble settings")
    ap.add_argument("--preset", default="minigrid")
    ap.add_argument("--timesteps", type=int, default=None, help="PPO steps (default: the preset's per task)")
    ap.add_argument("--val-episodes", type=int, default=50)
    ap.add_argument("--test-episodes", type=int, default=100)
    ap.add_argument("--selection-episodes", type=int, default=10)
    ap.add_argument("--val-seed", type=int, default=500)
    ap.add_argument("--test-seed", type=int, default=0)
    ap.add_argument("--probe-steps", type=int, default=1024)
    ap.add_argument("--learned", type=float, default=0.5, help="training-level return that counts as learned")
    ap.add_argument("--learned-episodes", type=int, default=20, help="episodes of that check per agent")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small nets: 1 is fastest)")
    ap.add_argument("--report", action="store_true", help="only rebuild the tables and the figure")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--name", default="rl_generalization", help="results/cache name (smoke runs: another name)")
    args = ap.parse_args()
    bad = [n for n in args.levels if n < 0]
    if bad:
        ap.error(f"--levels must be >= 0 (0 = unlimited), got {bad}")
    set_threads(args.threads)
    study = Study(args)
    chosen = study.run(only_report=args.report)
    with claim(RESULTS / f"{args.name}.report.lock", wait=True):
        report(study, chosen, header())


if __name__ == "__main__":
    main()
