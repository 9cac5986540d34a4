"""ProcGen at the paper's preset on a GPU (issue #4, SPEC Table 4.2): train, then parent vs ensemble.

Trains ``procgen:<game>`` with the ``paper`` preset (Impala [32, 64, 128], 64 envs, 256
steps per rollout, γ 0.999, frame stack 2, reward normalisation) for as long as the time
budget allows — ``--train-seconds`` per invocation, checkpointed, so rerunning the same
command resumes — then (``--evaluate``) runs ``rl evaluate`` with the library defaults: 8
mirrored noisy children of the actor (density 0.2, σ from the action-KL trust region on the
parent's own rollouts), averaged action distributions, sampled actions, parent and ensemble
on the same held-out episodes. Both steps go through the CLI exactly as a user runs them.

The paper trains 10M steps per game; a GPU lease of a few tens of minutes reaches a
fraction of that, which the results state.

    python benchmarks/procgen_paper.py --game starpilot --train-seconds 480              # train (resumes)
    python benchmarks/procgen_paper.py --game starpilot --train-seconds 300 --evaluate   # more, then evaluate
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="starpilot")
    ap.add_argument("--timesteps", type=int, default=10_000_000, help="target (the paper's 10M)")
    ap.add_argument("--train-seconds", type=float, default=480, help="training budget of this invocation")
    ap.add_argument("--evaluate", action="store_true", help="evaluate parent vs ensemble after training")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="evaluation seeds")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the .json/.md/.png go")
    args = ap.parse_args()
    agent = RUNS / f"procgen_{args.game}_paper"
    train = ["rl", "train", "--env", f"procgen:{args.game}", "--preset", "paper", "--timesteps",
             str(args.timesteps), "--max-seconds", str(args.train_seconds), "--checkpoint-every", "65536",
             "--quiet", "--out", str(agent)]
    if args.train_seconds > 0:
        t = time.perf_counter()
        assert cli(train) == 0
        print(f"train invocation: {time.perf_counter() - t:.0f} s", flush=True)
    meta = json.loads((agent / LAYOUT.agent_record).read_text())
    args.results.mkdir(parents=True, exist_ok=True)
    name = f"procgen_paper_{args.game}"
    curve = learning_curve(agent, args.results / f"{name}_curve.png")
    if not args.evaluate:
        (args.results / f"{name}_train.json").write_text(json.dumps({"agent": meta, "curve": curve}, indent=2))
        return
    evals, rows = [], []
    for seed in args.seeds:
        out = RUNS / f"procgen_{args.game}_paper_eval_s{seed}"
        evaluate = ["rl", "evaluate", "--agent", str(agent), "--episodes", str(args.episodes), "--members", "8",
                    "--n-envs", "64", "--seed", str(seed), "--quiet", "--out", str(out)]
        t = time.perf_counter()
        assert cli(evaluate) == 0
        seconds = time.perf_counter() - t
        res = json.loads((out / LAYOUT.results).read_text())
        evals.append({"command": "evo-ensembles " + " ".join(evaluate), "seconds": seconds, "results": res})
        p, e = res["parent"], res["ensemble"]
        rows.append([res["env"], meta["timesteps_done"], seed, f"{p['mean_return']:.2f} ± {p['std_return']:.2f}",
                     f"{e['mean_return']:.2f} ± {e['std_return']:.2f}", f"{e['mean_return'] - p['mean_return']:+.2f}",
                     f"{res['sigma']:.4f}", p["episodes"], f"{seconds:.0f}"])
    hdr = header()
    hw = hdr["hardware"]
    machine = f"{hw.get('cuda') or 'CPU'} + {hw.get('cpu_count')} CPU cores"
    md = "\n\n".join([
        f"# ProcGen {args.game}, paper preset (Table 4.2), parent vs Noisy Subnetwork Ensemble policy",
        f"PPO trained {meta['timesteps_done']:,} steps of the paper's {args.timesteps:,} "
        f"({100 * meta['timesteps_done'] / args.timesteps:.0f}%) on {machine}; "
        "mean ± std of raw returns over the same held-out episodes for parent and ensemble; "
        "8 mirrored noisy children, density 0.2, σ from the action-KL trust region (target 0.02), "
        "sampled actions from the averaged distribution.",
        f"Training: `evo-ensembles {' '.join(train)}` (rerun until the budget was spent), "
        f"{describe_code([hdr])}. Learning curve: `{name}_curve.png`.",
        markdown_table(["env", "PPO steps", "eval seed", "parent", "ensemble", "Δ", "σ", "episodes", "evaluate s"],
                       rows),
        "Paper (10M steps, 10 runs): starpilot 20.1 → 39.1." if args.game == "starpilot" else "",
    ]) + "\n"
    (args.results / f"{name}.json").write_text(json.dumps({**hdr, "agent": meta, "curve": curve,
                                                           "evaluations": evals}, indent=2) + "\n")
    (args.results / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
