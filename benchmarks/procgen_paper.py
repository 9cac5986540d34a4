"""ProcGen at the paper's preset on a GPU (issue #4, SPEC Table 4.2): train, then parent vs ensemble.

Trains ``procgen:<game>`` with the ``paper`` preset (Impala [32, 64, 128], 64 envs, 256
steps per rollout, γ 0.999, frame stack 2, reward normalisation) for as long as the time
budget allows — ``--train-seconds`` per invocation, checkpointed, so rerunning the same
command resumes — then (``--evaluate``) runs ``rl evaluate`` with the library defaults of
the commit (the RL regime study's choice: the top 8 of 16 mirrored noisy children of the actor
by selection episodes, σ 0.01 on half its weights, arg-max of the averaged distribution),
parent and ensemble on the same held-out levels. ``--train-levels N`` trains on levels
0…N−1 only (ProcGen's ``num_levels``), and then the evaluation also scores the training
levels (the generalisation gap); ``--both-rules`` adds the sampling rule with the same
children. Both steps go through the CLI exactly as a user runs them.

The paper trains 10M steps per game; a GPU lease of a few tens of minutes reaches a
fraction of that, which the results state.

    python benchmarks/procgen_paper.py --game starpilot --train-seconds 480              # train (resumes)
    python benchmarks/procgen_paper.py --game starpilot --train-seconds 300 --evaluate   # more, then evaluate
    python benchmarks/procgen_paper.py --game starpilot --train-levels 200 --train-seconds 300 \
        --evaluate --both-rules                                   # num_levels 200: the generalisation gap
    python benchmarks/procgen_paper.py --preset smoke --timesteps 512 --train-levels 20 --train-seconds 60 \
        --evaluate --episodes 4 --n-envs 2 --both-rules --results /tmp/try   # the script, in a minute on a CPU
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from _common import RESULTS, describe_code, header

from evo_ensembles.cli import main as cli
from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT

RUNS = Path(__file__).resolve().parent / "runs" / "rl"


def learning_curve(agent: Path, png: Path) -> list[dict]:
    """(steps, mean training-episode return) from SB3's progress.csv, plotted to ``png``."""
    rows = []
    path = agent / "logs" / "progress.csv"
    if path.exists():
        with path.open() as f:
            for r in csv.DictReader(f):
                if r.get("rollout/ep_rew_mean") and r.get("time/total_timesteps"):
                    rows.append({"steps": int(float(r["time/total_timesteps"])),
                                 "ep_rew_mean": float(r["rollout/ep_rew_mean"]),
                                 "fps": float(r.get("time/fps") or 0)})
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([r["steps"] for r in rows], [r["ep_rew_mean"] for r in rows])
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean training return (last 100 episodes)")
        ax.set_title(agent.name)
        fig.tight_layout()
        fig.savefig(png, dpi=120)
        plt.close(fig)
    return rows


def score_table(scores: list[dict], seed: int) -> list[list[object]]:
    """One row per (level set, action rule) of ``rl evaluate``'s scores: parent, ensemble and
    their difference with a normal 95% interval (unpaired: with 64 parallel envs episodes end
    in a policy-dependent order, so the i-th episodes of the two are not the same level)."""
    import numpy as np

    rows = []
    for s in scores:
        if s["policy"] != "parent":
            continue
        e = next((x for x in scores if x["policy"] == "ensemble" and x["levels"] == s["levels"]
                  and x["action"] == s["action"]), None)
        if e is None:
            continue
        a, b = np.asarray(s["returns"], float), np.asarray(e["returns"], float)
        diff = b.mean() - a.mean()
        half = 1.96 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if min(len(a), len(b)) > 1 \
            else float("nan")
        rows.append([seed, s["levels"], s["action"], f"{s['mean_return']:.2f} ± {s['std_return']:.2f}",
                     f"{e['mean_return']:.2f} ± {e['std_return']:.2f}",
                     f"{diff:+.2f} ({diff - half:+.2f}, {diff + half:+.2f})"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="starpilot")
    ap.add_argument("--timesteps", type=int, default=10_000_000, help="target (the paper's 10M)")
    ap.add_argument("--train-seconds", type=float, default=480, help="training budget of this invocation")
    ap.add_argument("--evaluate", action="store_true", help="evaluate parent vs ensemble after training")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="evaluation seeds")
    ap.add_argument("--train-levels", type=int, default=None,
                    help="train on levels 0…N-1 only (ProcGen's num_levels; default unlimited, as the paper)")
    ap.add_argument("--preset", default="paper", help="PPO preset (paper; smoke to try the script on a CPU)")
    ap.add_argument("--n-envs", type=int, default=64, help="parallel evaluation envs")
    ap.add_argument("--both-rules", action="store_true", help="also score under the other action rule")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the .json/.md/.png go")
    args = ap.parse_args()
    levels = [] if args.train_levels is None else ["--train-levels", str(args.train_levels)]
    tag = "" if args.train_levels is None else f"_levels{args.train_levels}"
    agent = RUNS / f"procgen_{args.game}_{args.preset}{tag}"
    train = ["rl", "train", "--env", f"procgen:{args.game}", "--preset", args.preset, "--timesteps",
             str(args.timesteps), "--max-seconds", str(args.train_seconds), "--checkpoint-every", "65536",
             *levels, "--quiet", "--out", str(agent)]
    if args.train_seconds > 0:
        t = time.perf_counter()
        assert cli(train) == 0
        print(f"train invocation: {time.perf_counter() - t:.0f} s", flush=True)
    meta = json.loads((agent / LAYOUT.agent_record).read_text())
    args.results.mkdir(parents=True, exist_ok=True)
    name = f"procgen_{args.preset}_{args.game}{tag}"
    curve = learning_curve(agent, args.results / f"{name}_curve.png")
    if not args.evaluate:
        (args.results / f"{name}_train.json").write_text(json.dumps({"agent": meta, "curve": curve}, indent=2))
        return
    evals, rows, score_rows = [], [], []
    extra = (["--train-returns"] if args.train_levels else []) + (["--both-rules"] if args.both_rules else [])
    for seed in args.seeds:
        out = RUNS / f"procgen_{args.game}_{args.preset}{tag}_eval_s{seed}"
        evaluate = ["rl", "evaluate", "--agent", str(agent), "--episodes", str(args.episodes), "--members", "8",
                    "--n-envs", str(args.n_envs), "--seed", str(seed), *extra, "--quiet", "--out", str(out)]
        t = time.perf_counter()
        assert cli(evaluate) == 0
        seconds = time.perf_counter() - t
        res = json.loads((out / LAYOUT.results).read_text())
        evals.append({"command": "evo-ensembles " + " ".join(evaluate), "seconds": seconds, "results": res})
        p, e = res["parent"], res["ensemble"]
        rows.append([res["env"], meta["timesteps_done"], seed, f"{p['mean_return']:.2f} ± {p['std_return']:.2f}",
                     f"{e['mean_return']:.2f} ± {e['std_return']:.2f}", f"{e['mean_return'] - p['mean_return']:+.2f}",
                     f"{res['sigma']:.4f}", p["episodes"], f"{seconds:.0f}"])
        score_rows += score_table(res["scores"], seed)
    hdr = header()
    hw = hdr["hardware"]
    machine = f"{hw.get('cuda') or 'CPU'} + {hw.get('cpu_count')} CPU cores"
    md = "\n\n".join([
        f"# ProcGen {args.game}, {args.preset} preset (Table 4.2)"
        + (f", {args.train_levels} training levels" if args.train_levels else "")
        + ", parent vs Noisy Subnetwork Ensemble policy",
        f"PPO trained {meta['timesteps_done']:,} steps of a target of {args.timesteps:,} (the paper: 10M) "
        f"({100 * meta['timesteps_done'] / args.timesteps:.0f}%) on {machine}"
        + (f", on training levels 0…{args.train_levels - 1} only (ProcGen's num_levels {args.train_levels}); "
           if args.train_levels else ", on unlimited levels; ")
        + "mean ± std of raw returns over the same held-out episodes for parent and ensemble. "
        "The ensemble is `rl evaluate`'s defaults of this commit (the RL regime study's choice): "
        "the top 8 of 16 mirrored noisy children by selection episodes, σ 0.01 on half the actor's "
        "weights, acting on the arg-max of the averaged distribution"
        + (" (the sampling rows use the same children)" if args.both_rules else "") + ".",
        f"Training: `evo-ensembles {' '.join(train)}` (rerun until the budget was spent), "
        f"{describe_code([hdr])}. Learning curve: `{name}_curve.png`.",
        markdown_table(["env", "PPO steps", "eval seed", "parent", "ensemble", "Δ", "σ", "episodes", "evaluate s"],
                       rows),
        *(["## Every score: held-out vs training levels, each action rule (same levels for parent and ensemble)",
            markdown_table(["eval seed", "levels", "action rule", "parent", "ensemble", "Δ (95% CI)"], score_rows)]
          if len(score_rows) > len(args.seeds) else []),
        "Paper (10M steps, 10 runs): starpilot 20.1 → 39.1." if args.game == "starpilot" else "",
    ]) + "\n"
    (args.results / f"{name}.json").write_text(json.dumps({**hdr, "agent": meta, "curve": curve,
                                                           "evaluations": evals}, indent=2) + "\n")
    (args.results / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
