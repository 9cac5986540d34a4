"""RL regime study (issue #11): where does the Noisy Subnetwork Ensemble policy help?

MinAtar games × training seeds, PPO with the ``minatar`` preset (2M steps; agents trained
once, resumable, under benchmarks/runs/rl_regime/agents/). Every evaluation goes through
the library's ``rl evaluate`` run (``run_rl_evaluate``), so parent and ensemble always act
under the same rule on the same episodes.

Screen one factor at a time on VALIDATION episodes (the training seed stream, env seed
``--val-seed``; disjoint from the top-K selection episodes and the σ probe), carrying the
best setting forward, then confirm on HELD-OUT episodes (another seed stream):

  rule_sigma  action rule {sample, argmax} × σ {trust region at KL 0.01/0.02/0.05,
              fixed 0.01/0.02/0.05/0.10}
  density     0.2 vs 0.5 of the actor weights perturbed
  size        K = 4 / 8 / 16
  topk        top K of 2K children by selection episodes vs no selection
  scope       perturb the whole actor vs the action head only
  confirm     the chosen settings and the previous default, ``--test-episodes`` held-out
              episodes per training seed

A setting is chosen by the mean over (game, training seed) of the ensemble's validation return
relative to the parent of the setting carried in, (ensemble − parent₀) / max(|parent₀|, 1):
within one action rule that is the gain over the parent; across rules it picks the rule whose
ensemble policy scores higher (each row still compares parent and ensemble under one rule).
Per-game gains under one rule are reported for every setting.
Intervals: 95% over episodes (pooled over training seeds) and 95% over training seeds
(Student t on the per-seed gains). Each finished evaluation is appended to
results/<name>.runs.jsonl, so an interrupted study resumes where it stopped. Several copies
of the same command share the study: each claims an agent or an evaluation (a lock file) before
it does it and waits for the others at the end of every stage, so two copies of one thread each
use both cores of a 2-core machine; the numbers do not depend on how many copies ran.

    .venv/bin/python benchmarks/rl_regime.py --threads 1
    .venv/bin/python benchmarks/rl_regime.py --threads 1 &     # a second copy shares the work
    .venv/bin/python benchmarks/rl_regime.py --report          # rebuild tables and plots only
    .venv/bin/python benchmarks/rl_regime.py --preset smoke --timesteps 2048 --games breakout \
        --seeds 0 --val-episodes 4 --test-episodes 4 --name rl_regime_smoke   # minutes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time
from pathlib import Path

from _common import RESULTS, RunLog, claim, code_of, describe_code, header, made_at, save

from evo_ensembles.agents import RLTrainConfig, train_agent
from evo_ensembles.agents.train import read_agent_record
from evo_ensembles.devices import set_threads
from evo_ensembles.recipes.rl import RLEvalConfig, run_rl_evaluate
from evo_ensembles.reporting import _save, markdown_table, plt
from evo_ensembles.run_folder import LAYOUT

RUNS = Path(__file__).resolve().parent / "runs" / "rl_regime"
GAMES = ["breakout", "space_invaders", "asterix", "seaquest"]
# The defaults `rl evaluate` had before this study: the screen starts from them.
START = {"action": "sample", "sigma": None, "target_kl": 0.02, "density": 0.2, "members": 8,
         "population": None, "perturb": "actor"}
SIGMA_GRID = [0.01, 0.02, 0.05, 0.10]
TR_TARGETS = [0.01, 0.02, 0.05]


def stages(carried: dict) -> dict[str, list[dict]]:
    """Configurations of each screening stage, given the settings carried so far."""
    return {
        "rule_sigma": [{**carried, "action": a, **s} for a in ("sample", "argmax")
                       for s in [*({"sigma": None, "target_kl": t} for t in TR_TARGETS),
                                 *({"sigma": g, "target_kl": 0.02} for g in SIGMA_GRID)]],
        "density": [{**carried, "density": d} for d in (0.2, 0.5)],
        "size": [{**carried, "members": k} for k in (4, 8, 16)],
        "topk": [{**carried, "population": p} for p in (None, 2 * carried["members"])],
        "scope": [{**carried, "perturb": p} for p in ("actor", "head")],
    }


STAGES = list(stages(START))


def label(cfg: dict) -> str:
    sigma = f"σ={cfg['sigma']:g}" if cfg["sigma"] is not None else f"TR KL {cfg['target_kl']:g}"
    top = f", top {cfg['members']}/{cfg['population']}" if cfg["population"] else ""
    return f"{cfg['action']}, {sigma}, d={cfg['density']:g}, K={cfg['members']}{top}, {cfg['perturb']}"


def ckey(cfg: dict) -> str:
    return json.dumps({k: cfg[k] for k in sorted(START)}, sort_keys=True)


def rel_return(row: dict, ref: dict) -> float:
    """The ensemble's return in ``row`` relative to the parent's in ``ref``."""
    return (row["ensemble"] - ref["parent"]) / max(abs(ref["parent"]), 1.0)


def rel_gain(row: dict) -> float:
    return rel_return(row, row)


class Study:
    def __init__(self, args) -> None:
        self.args = args
        self.log = RunLog(args.name)
        self.rows = self.log.rows
        self.runs = RUNS if args.name == "rl_regime" else RUNS.parent / args.name
        self.pairs = [(g, s) for g in args.games for s in args.seeds]

    def train_config(self, game: str, seed: int) -> RLTrainConfig:
        return RLTrainConfig(f"minatar:{game}", self.args.preset, timesteps=self.args.timesteps, seed=seed,
                             checkpoint_every=100_000)

    def agent_dir(self, game: str, seed: int) -> Path:
        return self.runs / "agents" / f"minatar_{game}_s{seed}"

    def agent(self, game: str, seed: int) -> Path:
        """The agent directory of (game, training seed), once its training is complete."""
        out = self.agent_dir(game, seed)
        record = read_agent_record(out / LAYOUT.agent) if (out / LAYOUT.agent).is_file() else None
        cfg = self.train_config(game, seed)
        if record is None or not record.get("complete") or \
                record.get("timesteps_target") != (cfg.timesteps or cfg.preset_spec().timesteps):
            raise LookupError(out)
        return out

    def train_agents(self) -> None:
        """Train (or resume) every agent of the study, sharing them with other copies: first
        the agents nobody holds, then wait for those another copy is training."""
        for wait in (False, True):
            for game, seed in self.pairs:
                out = self.agent_dir(game, seed)
                with claim(out.with_name(out.name + ".lock"), wait=wait) as mine:
                    if not mine:
                        continue
                    try:
                        self.agent(game, seed)
                    except LookupError:
                        info = train_agent(self.train_config(game, seed), out, progress=self.args.progress)
                        if not info["complete"]:
                            raise SystemExit(f"{out}: training incomplete") from None

    def work(self, stage: str, items: list[tuple[str, int, dict]]) -> None:
        """Evaluate ``items`` (game, seed, config) of ``stage``, sharing them with other copies:
        claim each unlogged one before evaluating it, then wait for those others hold."""
        for wait in (False, True):
            for game, seed, cfg in items:
                if self.find(stage, game, seed, cfg) is not None:
                    continue
                with claim(self.eval_dir(stage, game, seed, cfg).with_suffix(".lock"), wait=wait) as mine:
                    if not mine:
                        continue
                    self.log.reload()  # another copy may have logged it since
                    self.evaluate(stage, game, seed, cfg)
        self.log.reload()

    def eval_dir(self, stage: str, game: str, seed: int, cfg: dict) -> Path:
        return self.runs / "evals" / f"{game}_s{seed}" / f"{stage}_{hashlib.sha1(ckey(cfg).encode()).hexdigest()[:10]}"

    def find(self, stage: str, game: str, seed: int, cfg: dict) -> dict | None:
        """The logged evaluation of ``cfg`` in ``stage``; a screening stage reuses the same
        setting's evaluation from an earlier stage (same validation episodes, same seeds: the
        same numbers), so the setting each stage carries in is not evaluated twice."""
        k = ckey(cfg)
        same = [r for r in self.rows if (r["game"], r["train_seed"], r["key"]) == (game, seed, k)]
        exact = next((r for r in same if r["stage"] == stage), None)
        if exact is not None or stage == "confirm":
            return exact
        return next((r for r in same if r["stage"] != "confirm"), None)

    def evaluate(self, stage: str, game: str, seed: int, cfg: dict) -> dict:
        """One parent-vs-ensemble evaluation (cached in the log)."""
        row = self.find(stage, game, seed, cfg)
        if row is not None:
            return row
        test = stage == "confirm"
        episodes = self.args.test_episodes if test else self.args.val_episodes
        eval_seed = self.args.test_seed if test else self.args.val_seed
        levels = "held-out" if test else "train"
        agent = self.agent(game, seed)
        out = self.eval_dir(stage, game, seed, cfg)
        t0 = time.perf_counter()
        settings = {**cfg, "population": cfg["population"] or cfg["members"]}  # None: no selection
        settings["top_k"] = settings.pop("members")  # the study's key for the config's top_k
        res = run_rl_evaluate(RLEvalConfig(agent=str(agent), episodes=episodes, seed=eval_seed, levels=levels,
                                           probe_steps=self.args.probe_steps, **settings), out, progress=False)
        p, e = res["parent"], res["ensemble"]
        row = {"stage": stage, "game": game, "train_seed": seed, "key": ckey(cfg), "config": cfg,
               "levels": levels, "eval_seed": eval_seed, "episodes": episodes,
               "parent": p["mean_return"], "parent_std": p["std_return"], "parent_returns": p["returns"],
               "ensemble": e["mean_return"], "ensemble_std": e["std_return"], "ensemble_returns": e["returns"],
               "sigma": res["sigma"], "agent_timesteps": res["agent_timesteps"],
               "seconds": time.perf_counter() - t0, **code_of(res)}
        self.log.append(row)
        print(f"  {stage:10s} {game:14s} s{seed} {label(cfg):55s} parent {row['parent']:7.2f} "
              f"ens {row['ensemble']:7.2f} (σ {row['sigma']:.4g}, {row['seconds']:.0f}s)", flush=True)
        return row

    def choose(self, stage: str, cfgs: list[dict], carried: dict) -> dict:
        """The stage's best configuration: the mean over games and seeds of the ensemble's
        validation return relative to the parent of the setting carried in (a tie keeps that
        setting). Within one action rule this ranks settings by their gain over the parent;
        across rules it asks which rule gives the user the better ensemble policy, while each
        row still compares parent and ensemble under one rule."""
        scored = []
        for cfg in cfgs:
            pairs = [(self.find(stage, g, s, cfg), self.find(stage, g, s, carried))
                     for g in self.args.games for s in self.args.seeds]
            pairs = [(r, ref) for r, ref in pairs if r is not None and ref is not None]
            if pairs:
                score = statistics.fmean(rel_return(r, ref) for r, ref in pairs)
                scored.append((score, cfg == carried, cfg))
        return max(scored, key=lambda x: x[:2])[2] if scored else carried

    def run(self, only_report: bool) -> dict:
        """Screen every stage in order (or, with ``only_report``, replay the choices)."""
        carried, chosen = dict(START), {}
        if not only_report:
            self.train_agents()
        for stage in STAGES:
            cfgs = stages(carried)[stage]
            if not only_report:
                self.work(stage, [(g, s, c) for g, s in self.pairs for c in cfgs])
            carried = self.choose(stage, cfgs, carried)
            chosen[stage] = carried
            print(f"{stage}: carried {label(carried)}", flush=True)
        if not only_report:
            self.work("confirm", [(g, s, c) for g, s in self.pairs for c in (carried, START)])
        return chosen


def t95(n: int) -> float:
    """Two-sided 95% Student-t quantile for n samples (n − 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def gain_stats(rows: list[dict]) -> dict:
    """Parent, ensemble and gain with 95% intervals over episodes and over training seeds."""
    n = len(rows)
    gains = [r["ensemble"] - r["parent"] for r in rows]
    var_ep = sum(r["parent_std"] ** 2 / r["episodes"] + r["ensemble_std"] ** 2 / r["episodes"] for r in rows)
    out = {"n_seeds": n, "parent": statistics.fmean(r["parent"] for r in rows),
           "ensemble": statistics.fmean(r["ensemble"] for r in rows), "gain": statistics.fmean(gains),
           "ci_episodes": 1.96 * math.sqrt(var_ep) / n,
           "ci_seeds": t95(n) * statistics.stdev(gains) / math.sqrt(n) if n > 1 else float("nan"),
           "rel_gain": statistics.fmean(rel_gain(r) for r in rows), "per_seed_gain": gains,
           "sigma": statistics.fmean(r["sigma"] for r in rows)}
    for part in ("parent", "ensemble"):
        var = sum(r[f"{part}_std"] ** 2 / r["episodes"] for r in rows)
        out[f"{part}_ci_episodes"] = 1.96 * math.sqrt(var) / n
    return out


def fmt_gain(s: dict) -> str:
    seeds = f"; seeds ±{s['ci_seeds']:.2f}" if s["n_seeds"] > 1 else ""
    return f"{s['gain']:+.2f} (episodes ±{s['ci_episodes']:.2f}{seeds})"


def report(study: Study, chosen: dict, meta: dict) -> None:
    rows, games = study.rows, study.args.games
    if not rows:
        print("nothing logged yet")
        return
    parts, summary = [], {"chosen": {k: v for k, v in chosen.items()}, "stages": {}, "confirm": {}}
    carried = dict(START)
    for stage in STAGES:
        cfgs = stages(carried)[stage]
        body = []
        for cfg in cfgs:
            per_game, cells, rels, rels0 = {}, [], [], []
            for g in games:
                rs = [r for s in study.args.seeds if (r := study.find(stage, g, s, cfg))]
                if rs:
                    st = gain_stats(rs)
                    per_game[g] = st
                    rels += [rel_gain(r) for r in rs]
                    for s in study.args.seeds:
                        r, ref = study.find(stage, g, s, cfg), study.find(stage, g, s, carried)
                        if r is not None and ref is not None:
                            rels0.append(rel_return(r, ref))
                    cells.append(f"{st['parent']:.2f} → {st['ensemble']:.2f} ({st['gain']:+.2f})")
                else:
                    cells.append("–")
            if not per_game:
                continue
            mark = " **(chosen)**" if cfg == chosen.get(stage) else ""
            vs0 = statistics.fmean(rels0) if rels0 else float("nan")
            body.append([label(cfg) + mark, *cells, f"{100 * statistics.fmean(rels):+.1f}%", f"{100 * vs0:+.1f}%"])
            summary["stages"].setdefault(stage, []).append({"config": cfg, "per_game": per_game,
                                                            "mean_rel_gain": statistics.fmean(rels),
                                                            "mean_rel_vs_carried_parent": vs0})
        if body:
            parts.append(f"### Stage `{stage}` (validation episodes; parent → ensemble (gain), mean over "
                         "training seeds)\n\n"
                         + markdown_table(["setting", *games, "mean relative gain",
                                            f"ensemble vs parent of `{label(carried)}`"], body))
        carried = chosen.get(stage, carried)
    conf = []
    for name, cfg in (("chosen", carried), ("previous default", START)):
        for g in games:
            rs = [r for s in study.args.seeds if (r := study.find("confirm", g, s, cfg))]
            if not rs:
                continue
            st = gain_stats(rs)
            summary["confirm"].setdefault(name, {})[g] = {**st, "config": cfg}
            conf.append([name, g, len(rs), f"{st['parent']:.2f} ± {st['parent_ci_episodes']:.2f}",
                         f"{st['ensemble']:.2f} ± {st['ensemble_ci_episodes']:.2f}", fmt_gain(st),
                         f"{100 * st['rel_gain']:+.1f}%", f"{st['sigma']:.4g}"])
    if conf:
        parts.insert(0, "## Confirmation on held-out episodes\n\n"
                     f"Chosen: `{label(carried)}`; previous default: `{label(START)}`. "
                     f"{study.args.test_episodes} held-out episodes per training seed (env seed "
                     f"{study.args.test_seed}); mean over training seeds; ± is the 95% interval over "
                     "episodes (pooled), and over training seeds (Student t on the per-seed gains).\n\n"
                     + markdown_table(["settings", "game", "training seeds", "parent", "ensemble",
                                       "gain", "relative", "σ"], conf))
    rule = rule_effect(study)
    if rule:
        summary["rule_effect"] = rule
        parts.append(
            "### The action rule alone (the parent under arg-max vs sampling, same validation "
            "episodes)\n\nWhat a comparison gains when the ensemble acts more greedily than the parent "
            "it is compared with; every row above compares both under one rule.\n\n"
            + markdown_table(
                ["game", "parent, sample", "parent, argmax", "difference (seeds ±95%)"],
                [[g, f"{r['sample']:.2f}", f"{r['argmax']:.2f}",
                  f"{r['gain']:+.2f} ± {r['ci_seeds']:.2f}"] for g, r in rule.items()],
            )
        )
    plot(study, RESULTS / f"{study.args.name}_sigma.png")
    wall = sum(r["seconds"] for r in rows)
    zips = [study.agent_dir(g, s) / LAYOUT.agent for g, s in study.pairs]
    records = [read_agent_record(z) for z in zips if z.is_file()]
    train_h = sum(r.get("train_seconds_this_run") or 0.0 for r in records) / 3600
    md = "\n\n".join([
        "# RL regime study: PPO parent vs Noisy Subnetwork Ensemble policy (MinAtar)",
        f"Games {games}; training seeds {study.args.seeds}; agents: `{study.args.preset}` preset, "
        f"{rows[0]['agent_timesteps']} steps. Screening on {study.args.val_episodes} validation episodes "
        f"(training seed stream, env seed {study.args.val_seed}) per (game, training seed, setting); each "
        "stage carries forward the setting whose ensemble scores best relative to the parent of the setting "
        "carried in (mean over games and seeds; the last column).",
        *parts,
        f"![gain vs σ]({study.args.name}_sigma.png)",
        f"Hardware: {meta['hardware'].get('cpu')}; {describe_code([meta])}; date {meta['date']}; "
        f"summed evaluation time {wall / 3600:.2f} h; agent training {train_h:.2f} h summed over "
        f"{len(records)} agents (their last training run).",
        "Run: `.venv/bin/python benchmarks/rl_regime.py --threads 1` (one or more copies share the work); "
        f"this page: `{meta['command']}`; evaluations made at {made_at(rows)}.",
    ]) + "\n"
    save(study.args.name, {**meta, "args": vars(study.args), "summary": summary}, md)


def rule_effect(study: Study) -> dict:
    """Per game: the parent's validation return under each action rule and their difference
    (mean over training seeds, 95% Student-t interval over seeds)."""
    out = {}
    for g in study.args.games:
        per = {}
        for s in study.args.seeds:
            got = {}
            for r in study.rows:
                if r["stage"] != "confirm" and r["game"] == g and r["train_seed"] == s:
                    got.setdefault(r["config"]["action"], r["parent"])
            if len(got) == 2:
                per[s] = got
        if per:
            diffs = [v["argmax"] - v["sample"] for v in per.values()]
            n = len(diffs)
            out[g] = {"sample": statistics.fmean(v["sample"] for v in per.values()),
                      "argmax": statistics.fmean(v["argmax"] for v in per.values()),
                      "gain": statistics.fmean(diffs), "per_seed": diffs,
                      "ci_seeds": t95(n) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else float("nan")}
    return out


def plot(study: Study, path: Path) -> None:
    """Validation gain vs fixed σ per game, one line per action rule (trust-region σ as markers)."""
    games = study.args.games
    fig, axes = plt.subplots(1, len(games), figsize=(3.2 * len(games), 3), squeeze=False)
    for ax, g in zip(axes[0], games):
        for action, colour in (("sample", "C0"), ("argmax", "C1")):
            rows = [r for r in study.rows if r["stage"] == "rule_sigma" and r["game"] == g
                    and r["config"]["action"] == action]
            fixed = sorted({r["config"]["sigma"] for r in rows if r["config"]["sigma"] is not None})
            ys = [statistics.fmean(r["ensemble"] - r["parent"] for r in rows if r["config"]["sigma"] == s)
                  for s in fixed]
            if fixed:
                ax.plot(fixed, ys, "o-", color=colour, label=f"{action}, fixed σ")
            tr = [r for r in rows if r["config"]["sigma"] is None]
            if tr:
                ax.scatter([r["sigma"] for r in tr], [r["ensemble"] - r["parent"] for r in tr], marker="x",
                           color=colour, label=f"{action}, trust region")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(g, fontsize=9)
        ax.set_xlabel("σ")
        ax.set_ylabel("ensemble − parent (validation)")
        if ax.has_data():
            ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", nargs="+", default=GAMES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    ap.add_argument("--preset", default="minatar")
    ap.add_argument("--timesteps", type=int, default=None, help="PPO steps (default: the preset's)")
    ap.add_argument("--val-episodes", type=int, default=50)
    ap.add_argument("--test-episodes", type=int, default=200)
    ap.add_argument("--val-seed", type=int, default=500)
    ap.add_argument("--test-seed", type=int, default=0)
    ap.add_argument("--probe-steps", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small nets: 1 is fastest)")
    ap.add_argument("--report", action="store_true", help="only rebuild the tables and plots")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--name", default="rl_regime", help="results/cache name (smoke runs: another name)")
    args = ap.parse_args()
    set_threads(args.threads)
    study = Study(args)
    chosen = study.run(only_report=args.report)
    with claim(RESULTS / f"{args.name}.report.lock", wait=True):  # copies write the pages one at a time
        report(study, chosen, header())


if __name__ == "__main__":
    main()
