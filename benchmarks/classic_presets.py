"""Do the gymnasium presets train classic control reliably? (issue #13, item 5)

For each environment, train PPO with its preset (``classic`` by default) from ``--seeds``
training seeds for ``--timesteps`` steps (or the preset's own for an environment it has
settings for, e.g. MountainCar's 1M), then score the agent (sampled actions) and a
uniform-random policy over the same evaluation episodes. A seed "learns" when its mean
return beats random by more than ``--margin`` of the random policy's spread plus the 95%
interval of both means. Target: at least 9 of 10 seeds per environment. Resumable.

    .venv/bin/python benchmarks/classic_presets.py --threads 1
    .venv/bin/python benchmarks/classic_presets.py --envs gym:Acrobot-v1 --seeds 0 1 --timesteps 2000  # smoke
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from _common import RunLog, footer, header, save
from rl_minatar import RandomPolicy

from evo_ensembles.agents import RLTrainConfig, get_preset, load_agent, train_agent
from evo_ensembles.agents.ensemble_policy import PolicyPredictor
from evo_ensembles.agents.evaluate import run_episodes
from evo_ensembles.devices import set_threads
from evo_ensembles.reporting import markdown_table

RUNS = Path(__file__).resolve().parent / "runs" / "classic_presets"
ENVS = ["gym:CartPole-v1", "gym:Acrobot-v1", "gym:MountainCar-v0", "gym:Pendulum-v1"]


def ci95(r: dict) -> float:
    return 1.96 * r["std_return"] / math.sqrt(r["episodes"])


def steps_for(env: str, preset: str, default: int) -> int:
    """``default``, unless the preset sets this environment's own step count."""
    own, base = get_preset(preset, env).timesteps, get_preset(preset).timesteps
    return own if own != base else default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=ENVS[:3])
    ap.add_argument("--preset", default="classic")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    ap.add_argument("--timesteps", type=int, default=20_000)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="classic_presets")
    args = ap.parse_args()
    set_threads(args.threads)
    log = RunLog(args.name)
    steps_of = {env: steps_for(env, args.preset, args.timesteps) for env in args.envs}
    for env in args.envs:
        steps = steps_of[env]
        for seed in args.seeds:
            if log.find(env=env, seed=seed, preset=args.preset, timesteps=steps):
                continue
            out = RUNS / args.name / f"{env.split(':')[1]}_{steps}steps_s{seed}"
            info = train_agent(RLTrainConfig(env, args.preset, timesteps=steps, seed=seed,
                                             checkpoint_every=min(steps, 100_000)), out, progress=False)
            model, meta = load_agent(out)
            agent = run_episodes(PolicyPredictor(model.policy, seed=seed), meta, episodes=args.episodes, seed=seed)
            rand = run_episodes(RandomPolicy(model.action_space.n, seed), meta, episodes=args.episodes, seed=seed) \
                if hasattr(model.action_space, "n") else None
            learned = rand is not None and agent["mean_return"] - ci95(agent) > rand["mean_return"] + ci95(rand)
            row = log.append({"env": env, "seed": seed, "preset": args.preset, "timesteps": steps,
                              "agent": agent["mean_return"], "agent_ci": ci95(agent),
                              "random": None if rand is None else rand["mean_return"],
                              "random_ci": None if rand is None else ci95(rand), "learned": learned,
                              "train_seconds": info["train_seconds_this_run"]})
            print(f"{env} seed {seed}: agent {row['agent']:.1f} ± {row['agent_ci']:.1f}, random "
                  f"{row['random']}, learned {learned}", flush=True)
    body = []
    for env in args.envs:
        steps = steps_of[env]
        rows = log.where(env=env, preset=args.preset, timesteps=steps)
        if rows:
            ok = sum(r["learned"] for r in rows)
            body.append([env, args.preset, steps, f"{ok} / {len(rows)}",
                         ", ".join(f"{r['agent']:.0f}" for r in rows), f"{rows[0]['random']:.1f}",
                         "yes" if ok >= 0.9 * len(rows) else "**no**",
                         f"{sum(r['train_seconds'] for r in rows) / len(rows):.0f}"])
    info = header()
    md = "\n\n".join([
        "# Classic-control presets: does PPO learn from every seed?",
        f"Steps per seed as in the table ({args.timesteps}, or the preset's own for an environment it has "
        f"settings for); {args.episodes} evaluation episodes (sampled actions) per agent and "
        "for a uniform-random policy on the same seeds; a seed learns when the two 95% intervals of the means "
        "do not overlap and the agent is above. Target: ≥ 9 of 10 seeds.",
        markdown_table(["env", "preset", "steps", "seeds that learn", "agent returns", "random", "target met",
                        "train s / seed"], body),
        *footer(info),
    ]) + "\n"
    save(args.name, {**info, "args": vars(args), "rows": log.rows}, md)


if __name__ == "__main__":
    main()
