"""ProcGen smoke run (issue #4): the whole path on a CPU — train, evaluate, noisy ensemble.

PPO with an Impala CNN on ProcGen runs ~100–250 steps/s on this 2-core machine, so this is
a smoke test of the pipeline, not a result: train ``procgen:<game>`` with the
``procgen-baseline`` preset (Impala [16, 32, 32]) on 8 environments for a few thousand
steps, then ``rl evaluate`` parent vs noisy ensemble on held-out levels. Both steps go
through the CLI entry point exactly as a user would run them.

    .venv/bin/python benchmarks/procgen_smoke.py --game starpilot --timesteps 4096
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import header, save

from evo_ensembles.cli import main as cli
from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT

RUNS = Path(__file__).resolve().parent / "runs" / "rl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="starpilot")
    ap.add_argument("--timesteps", type=int, default=4096)
    ap.add_argument("--episodes", type=int, default=8)
    args = ap.parse_args()
    agent = RUNS / f"procgen_{args.game}_smoke"
    train = ["rl", "train", "--env", f"procgen:{args.game}", "--preset", "procgen-baseline", "--n-envs", "8",
             "--timesteps", str(args.timesteps), "--threads", "1", "--quiet", "--out", str(agent)]
    t = time.perf_counter()
    assert cli(train) == 0
    train_s = time.perf_counter() - t
    out = RUNS / f"procgen_{args.game}_smoke_eval"
    evaluate = ["rl", "evaluate", "--agent", str(agent), "--episodes", str(args.episodes), "--members", "8",
                "--probe-steps", "256", "--n-envs", "4", "--threads", "1", "--quiet", "--out", str(out)]
    t = time.perf_counter()
    assert cli(evaluate) == 0
    eval_s = time.perf_counter() - t
    res = json.loads((out / LAYOUT.results).read_text())
    agent_meta = json.loads((agent / LAYOUT.agent_record).read_text())
    row = [res["env"], agent_meta["timesteps_done"], f"{agent_meta['steps_per_second_this_run']:.0f}",
           f"{res['parent']['mean_return']:.2f} ± {res['parent']['std_return']:.2f}",
           f"{res['ensemble']['mean_return']:.2f} ± {res['ensemble']['std_return']:.2f}", res["sigma"],
           res["parent"]["episodes"], f"{train_s:.0f}", f"{eval_s:.0f}"]
    md = "\n\n".join([
        f"# ProcGen smoke run: {args.game}",
        "A pipeline check, not a result: a few thousand PPO steps are far from the paper's 10M.",
        "Commands: `evo-ensembles " + " ".join(train) + "` then `evo-ensembles " + " ".join(evaluate) + "`.",
        markdown_table(["env", "PPO steps", "train steps/s", "parent return", "ensemble return", "σ", "episodes",
                        "train s", "evaluate s"], [row]),
    ]) + "\n"
    save(f"procgen_smoke_{args.game}", {**header(), "train": agent_meta, "evaluate": res}, md)


if __name__ == "__main__":
    main()
