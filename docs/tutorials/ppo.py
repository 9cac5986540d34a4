"""# A noisy ensemble of a PPO agent

This tutorial trains a small PPO agent on CartPole with `evo-ensembles rl train`, then asks
`evo-ensembles rl evaluate` whether an ensemble of noisy copies of its actor plays better than
the agent itself. It runs the commands through `subprocess` so that what you see is exactly what
the shell commands do; the same runs from a terminal are:

```bash
evo-ensembles rl train --env gym:CartPole-v1 --preset classic --timesteps 16384 --threads 1 --out runs/cartpole
evo-ensembles rl evaluate --agent runs/cartpole --episodes 10 --population 8 --members 4 \\
    --selection-episodes 2 --threads 1 --out runs/cartpole-eval
```

What happens:

1. **Training.** The `classic` preset is RL Zoo's CartPole PPO (an MLP of 64 × 64, 8 environments,
   32 steps per rollout, 20 epochs per update). Its own budget is 100,000 steps; this tutorial
   stops at 16,384 to stay within a minute, so the agent is good but not perfect (CartPole's
   maximum return is 500). The agent directory holds `agent.zip` (SB3's archive, with the agent's
   record inside), `agent.json` (a copy of that record to read), `checkpoints/latest.zip`
   (rerunning the same command resumes from it) and `logs/progress.csv`. How reliably the full
   preset learns, over 10 seeds: [classic presets](../benchmarks/classic_presets.md).
2. **The noisy ensemble policy.** `rl evaluate` draws a population of N children of the actor
   (`--population 8`), each adding Gaussian noise of scale σ to a random half of the actor's
   weights (`--density 0.5`), in mirrored pairs (+noise and −noise). It keeps the K best
   (`--members 4`) by their mean return over `--selection-episodes` episodes on *training*
   seeds, never the evaluation ones. The ensemble acts on the average of its children's action
   distributions.
3. **One action rule for both.** Parent and ensemble act under the same rule (`--action`,
   arg-max by default) on the same evaluation episodes (`--levels held-out`, the default: for
   ProcGen and MiniGrid, levels training never used; for a gymnasium task such as CartPole, which
   has no levels, a stream of episode seeds apart from the selection episodes'). A comparison where the ensemble acted
   greedily and the parent sampled would credit the ensemble with what greediness alone gives;
   `rl evaluate` never does that. `--both-rules` adds the scores under the other rule, with the
   same children and episodes.
4. **σ.** The default is a fixed σ = 0.01; `--sigma auto` instead searches σ with the KL trust
   region on the action distribution over observations from the parent's own rollouts
   (`--target-kl`, 0.02).

The script runs the evaluation twice, with the default σ and with `--sigma auto`, and reads
both `results.json` files. `--threads 1` matters on a small CPU: PPO's tiny network gains
nothing from a second thread, and two threads competing with the environment slowed training
several times over on the 2-core machine these docs are built on.

**How to read the numbers.** Ten evaluation episodes of an under-trained agent, children chosen
on two episodes each: whatever difference this prints is a demonstration of the pipeline, not
a measurement. A careful measurement with 200 held-out episodes per seed, three seeds and four
MinAtar games found no gain that held across games
([RL regime study](../benchmarks/rl_regime.md)); see the
[reinforcement learning guide](../guides/rl.md) for what was measured and where a gain might
exist (levels unseen in training, where there is a generalisation gap).
"""

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

out = Path(tempfile.mkdtemp())
cli = [sys.executable, "-m", "evo_ensembles.cli"]


def run(*args: str) -> None:
    proc = subprocess.run([*cli, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)


# --- 1. Train a PPO agent --------------------------------------------------------------------
agent = out / "cartpole"
run("rl", "train", "--env", "gym:CartPole-v1", "--preset", "classic", "--timesteps", "16384",
    "--threads", "1", "--seed", "0", "--out", str(agent), "--quiet")
record = json.loads((agent / "agent.json").read_text())
print(f"agent: {record['env']}, preset {record['preset']['name']}, {record['timesteps_done']} steps "
      f"in {record['train_seconds_this_run']:.0f} s ({record['steps_per_second_this_run']:.0f} steps/s)")
print("agent directory:", sorted(p.name for p in agent.iterdir()))

# Training returns (sampled actions) over the run, from SB3's log.
rows = list(csv.DictReader((agent / "logs" / "progress.csv").open()))
curve = [(int(r["time/total_timesteps"]), float(r["rollout/ep_rew_mean"])) for r in rows]
print("mean training return at steps:", ", ".join(f"{s}: {v:.0f}" for s, v in curve[::16] + curve[-1:]))

# --- 2. Parent vs noisy ensemble, default sigma, both action rules ----------------------------
common = ["--agent", str(agent), "--episodes", "10", "--population", "8", "--members", "4",
          "--selection-episodes", "2", "--threads", "1", "--quiet"]
run("rl", "evaluate", *common, "--both-rules", "--out", str(out / "eval-fixed"))
run("rl", "evaluate", *common, "--sigma", "auto", "--out", str(out / "eval-auto"))

# --- 3. Read results.json ---------------------------------------------------------------------
for name in ("eval-fixed", "eval-auto"):
    r = json.loads((out / name / "results.json").read_text())
    tr = r["trust_region"]
    how = "fixed" if tr is None else f"trust region at KL {tr['target']}"
    print(f"\n{name}: sigma {r['sigma']:.4g} ({how}), density {r['density']}, "
          f"{r['ensemble']['size']} of {len(r['population'])} children kept, "
          f"{r['timing']['total_seconds']:.0f} s")
    print("  selection (mean return on training seeds):",
          [round(p["fitness"]) for p in r["population"]])
    for s in r["scores"]:
        print(f"  {s['policy']:8} {s['action']:6} on {s['levels']} episodes: "
              f"{s['mean_return']:6.1f} ± {s['std_return']:5.1f} over {s['episodes']}")
    full = {k: sum(x >= 500 for x in r[k]["returns"]) for k in ("parent", "ensemble")}
    print(f"  episodes at CartPole's maximum of 500 ({r['parent']['action']}): "
          f"parent {full['parent']}, ensemble {full['ensemble']}")

print("\nresults.json keys:", ", ".join(json.loads((out / "eval-fixed" / "results.json").read_text())))
