"""MinAtar: PPO parents vs their Noisy Subnetwork Ensemble policies (issue #4, CPU scale).

For each game: train PPO with the ``minatar`` preset (resumable; agents under
benchmarks/runs/rl/), then for each evaluation seed run ``rl evaluate`` with the library
defaults — 8 mirrored noisy children of the actor, density 0.2, σ from the KL trust
region on the parent's own rollouts (target 0.02), averaged action distributions, sampled
actions — and compare parent vs ensemble over the same episodes. A uniform-random policy
gives the "better than random" reference. Mean ± std and a 95% CI (1.96·std/√n) of raw
episode returns.

    .venv/bin/python benchmarks/rl_minatar.py --games breakout space_invaders asterix --timesteps 300000
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from _common import RunLog, header, save

from evo_ensembles.agents import RLTrainConfig, load_agent, train_agent
from evo_ensembles.agents.evaluate import run_episodes
from evo_ensembles.recipes.rl import RLEvalConfig, run_rl_evaluate
from evo_ensembles.reporting import markdown_table

RUNS = Path(__file__).resolve().parent / "runs" / "rl"


class RandomPolicy:
    def __init__(self, n_actions: int, seed: int) -> None:
        self.n, self.rng = n_actions, np.random.default_rng(seed)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return self.rng.integers(0, self.n, len(obs)), None


def ci(r: dict) -> float:
    return 1.96 * r["std_return"] / math.sqrt(r["episodes"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", nargs="+", default=["breakout", "space_invaders", "asterix"])
    ap.add_argument("--timesteps", type=int, default=300_000)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="evaluation seeds")
    ap.add_argument("--episodes", type=int, default=100)
    args = ap.parse_args()
    log = RunLog("rl_minatar")
    rows = log.rows
    for game in args.games:
        agent_dir = RUNS / f"minatar_{game}"
        info = train_agent(RLTrainConfig(f"minatar:{game}", "minatar", timesteps=args.timesteps, seed=0,
                                         checkpoint_every=50_000), agent_dir, progress=False)
        print(f"{game}: trained {info['timesteps_done']} steps", flush=True)
        model, meta = load_agent(agent_dir)
        for seed in args.seeds:
            if any(r["game"] == game and r["seed"] == seed and r["timesteps"] == info["timesteps_done"] for r in rows):
                continue
            rand = run_episodes(RandomPolicy(model.action_space.n, seed), meta, episodes=args.episodes, seed=seed)
            res = run_rl_evaluate(RLEvalConfig(agent=str(agent_dir), episodes=args.episodes, seed=seed),
                                  RUNS / f"minatar_{game}_eval_seed{seed}", progress=False)
            row = {"game": game, "seed": seed, "timesteps": info["timesteps_done"], "random": rand["mean_return"],
                   "random_ci": ci(rand), "parent": res["parent"]["mean_return"],
                   "parent_std": res["parent"]["std_return"],
                   "parent_ci": ci(res["parent"]), "ensemble": res["ensemble"]["mean_return"],
                   "ensemble_std": res["ensemble"]["std_return"], "ensemble_ci": ci(res["ensemble"]),
                   "sigma": res["sigma"], "episodes": args.episodes}
            log.append(row)
            print(f"  seed {seed}: random {row['random']:.2f}, parent {row['parent']:.2f} ± {row['parent_ci']:.2f}, "
                  f"ensemble {row['ensemble']:.2f} ± {row['ensemble_ci']:.2f} (σ {row['sigma']:.4g})", flush=True)
    table = [[r["game"], r["timesteps"], r["seed"], f"{r['random']:.2f} ± {r['random_ci']:.2f}",
              f"{r['parent']:.2f} ± {r['parent_ci']:.2f}", f"{r['ensemble']:.2f} ± {r['ensemble_ci']:.2f}",
              f"{r['ensemble'] - r['parent']:+.2f}", r["sigma"]] for r in rows]
    md = "\n\n".join([
        "# MinAtar: PPO parent vs Noisy Subnetwork Ensemble policy",
        f"{args.episodes} episodes per row (same environment seeds for random, parent and ensemble), mean ± 95% CI "
        "of raw returns; ensemble of 8 mirrored noisy children (density 0.2, σ from the action-KL trust region, "
        "target 0.02), averaged action distributions, sampled actions.",
        markdown_table(["game", "PPO steps", "eval seed", "random", "parent", "ensemble", "Δ", "σ"], table),
    ]) + "\n"
    save("rl_minatar", {**header(), "rows": rows}, md)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # small networks: one thread is as fast and robust to a busy box
    main()
