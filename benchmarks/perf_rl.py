"""Performance of the RL pieces (issue #4, P5). Run on an idle machine.

1. ProcGen adapter: steps/s of ``ProcgenVecEnv.step`` vs raw gym3 ``act`` + ``observe`` on
   the same game, seed and actions (target: adapter adds ≤ 5%, i.e. ratio ≥ 0.95).
2. PPO: steps/s of ``evo_ensembles.agents.train_agent`` (our env stack, checkpoints, CSV
   logs; progress bar off) vs plain SB3 ``PPO(...).learn`` with the same Impala network and
   hyper-parameters on the bare adapter (target ≥ 0.95).
3. Ensemble action selection: K = 8 members in one batched forward (vmap) vs 8 forwards of
   the single policy, paper Impala [32, 64, 128], for several batch sizes (target ≤ 0.5×).
4. MiniGrid (issue #33): steps/s of the library's stack (``make_vec_env("minigrid:…")``:
   level seeds, MiniGridVecEnv, VecMonitor, one-hot view) vs raw gymnasium ``step`` of the same
   task on the same actions (target ratio ≥ 0.95), with SB3's DummyVecEnv + VecMonitor over the
   raw envs timed beside them to separate SB3's cost from the library's; and PPO steps/s of
   ``train_agent`` with the ``minigrid`` preset vs plain SB3 PPO on the same network and settings.
Interleaved repeats, medians; one torch thread unless --threads. ``--parts`` runs some parts
only, into ``perf_rl_<parts>.json``/``.md``.

    .venv/bin/python benchmarks/perf_rl.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import describe_code, header, save

from evo_ensembles.agents import RLTrainConfig, get_preset, train_agent
from evo_ensembles.agents.ensemble_policy import ActorLogits, NoisyEnsemblePolicy
from evo_ensembles.envs import ProcgenVecEnv, parse_env_id
from evo_ensembles.es import make_noisy_specs
from evo_ensembles.reporting import markdown_table


def interleaved(*fns, repeats: int) -> list[list[float]]:
    """Seconds of each ``fn(i)`` over ``repeats`` rounds, rotating which goes first so the
    machine's drift hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            times[j].append(fns[j](i))
    return times


def adapter(game: str, steps: int, repeats: int, n: int = 16) -> dict:
    from procgen import ProcgenGym3Env

    acts = np.random.default_rng(0).integers(0, 15, (steps, n)).astype(np.int32)

    def raw(_: int) -> float:
        env = ProcgenGym3Env(num=n, env_name=game, distribution_mode="easy", rand_seed=0, num_threads=1)
        t = time.perf_counter()
        for a in acts:
            env.act(a)
            env.observe()
            env.get_info()
        return time.perf_counter() - t

    def ours(_: int) -> float:
        env = ProcgenVecEnv(game, n, rand_seed=0)
        env.reset()
        t = time.perf_counter()
        for a in acts:
            env.step(a)
        return time.perf_counter() - t

    raw_t, ad_t = interleaved(raw, ours, repeats=repeats)
    r, a = statistics.median(raw_t), statistics.median(ad_t)
    return {"game": game, "num_envs": n, "steps": steps, "repeats": repeats, "raw_steps_per_s": steps * n / r,
            "adapter_steps_per_s": steps * n / a, "ratio": r / a, "ratio_of_minima": min(raw_t) / min(ad_t)}


def ppo_versus_plain(cfg_of, plain_env_of, preset, env_id: str, timesteps: int, repeats: int) -> dict:
    """Steps/s of ``train_agent(cfg_of(seed))`` vs plain SB3 PPO on ``plain_env_of(seed)`` with the
    preset's network and PPO settings, interleaved; the ratio is plain / ours time."""
    from stable_baselines3 import PPO

    policy, kwargs = preset.policy_for(parse_env_id(env_id))

    def run_ours(i: int) -> float:
        tmp = Path(tempfile.mkdtemp())
        t = time.perf_counter()
        train_agent(cfg_of(i), tmp / "agent", progress=False)
        seconds = time.perf_counter() - t
        shutil.rmtree(tmp)
        return seconds

    def run_plain(i: int) -> float:
        t = time.perf_counter()
        PPO(policy, plain_env_of(i), policy_kwargs=kwargs, seed=i, verbose=0, device="cpu",
            **preset.ppo).learn(timesteps)
        return time.perf_counter() - t

    ours, plain = interleaved(run_ours, run_plain, repeats=repeats)
    o, p = statistics.median(ours), statistics.median(plain)
    return {"timesteps": timesteps, "repeats": repeats, "ours_steps_per_s": timesteps / o,
            "plain_sb3_steps_per_s": timesteps / p, "ratio": p / o, "ratio_of_minima": min(plain) / min(ours)}


def ppo(game: str, timesteps: int, repeats: int) -> dict:
    overrides = {"impala_channels": (16, 32, 32), "n_envs": 8,
                 "ppo": {"learning_rate": 5e-4, "n_steps": 64, "batch_size": 128, "n_epochs": 1, "gamma": 0.99}}
    env_id = f"procgen:{game}"
    preset = get_preset("smoke", env_id, **overrides)
    row = ppo_versus_plain(
        lambda i: RLTrainConfig(env_id, "smoke", timesteps=timesteps, seed=i, checkpoint_every=timesteps,
                                device="cpu", overrides=overrides),
        lambda i: ProcgenVecEnv(game, 8, rand_seed=i), preset, env_id, timesteps, repeats)
    return {"game": game, **row}


def minigrid_stack(task: str, steps: int, repeats: int, n: int = 8) -> dict:
    """Three ways to step ``n`` copies of ``task`` on the same actions: raw gymnasium envs in a
    loop; SB3's ``DummyVecEnv`` + ``VecMonitor`` over the same envs (image only), what any SB3
    user pays; the library's stack (MiniGridVecEnv, level seeds, one-hot view). ``ratio`` (raw /
    stack time) is the target; ``layers_ratio`` (SB3 vector / stack) compares the stack with what
    a plain SB3 user pays for the image view."""
    import gymnasium as gym
    from minigrid.wrappers import ImgObsWrapper
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    from evo_ensembles.envs import make_vec_env

    acts = np.random.default_rng(0).integers(0, 3, (steps, n))  # turn/forward: episodes of every length

    def raw(_: int) -> float:
        envs = [gym.make(task) for _ in range(n)]
        for i, e in enumerate(envs):
            e.reset(seed=i)
        t = time.perf_counter()
        for a in acts:
            for e, ai in zip(envs, a):
                _, _, done, cut, _ = e.step(int(ai))
                if done or cut:
                    e.reset()
        return time.perf_counter() - t

    def vector(env) -> float:
        env.reset()
        t = time.perf_counter()
        for a in acts:
            env.step(a)
        return time.perf_counter() - t

    def sb3(_: int) -> float:
        return vector(VecMonitor(DummyVecEnv([lambda: ImgObsWrapper(gym.make(task))] * n)))

    def ours(_: int) -> float:
        return vector(make_vec_env(f"minigrid:{task}", n, seed=0, num_levels=100))

    raw_t, sb3_t, our_t = interleaved(raw, sb3, ours, repeats=repeats)
    r, v, o = statistics.median(raw_t), statistics.median(sb3_t), statistics.median(our_t)
    return {"task": task, "num_envs": n, "steps": steps, "repeats": repeats, "raw_steps_per_s": steps * n / r,
            "sb3_vector_steps_per_s": steps * n / v, "stack_steps_per_s": steps * n / o, "ratio": r / o,
            "ratio_of_minima": min(raw_t) / min(our_t), "sb3_vector_ratio": r / v, "layers_ratio": v / o}


def minigrid_ppo(task: str, timesteps: int, repeats: int) -> dict:
    from evo_ensembles.agents.train import build_env

    env_id = f"minigrid:{task}"
    preset = get_preset("minigrid", env_id)
    row = ppo_versus_plain(
        lambda i: RLTrainConfig(env_id, "minigrid", timesteps=timesteps, seed=i, train_levels=100,
                                checkpoint_every=timesteps, device="cpu"),
        lambda i: build_env(env_id, preset, n_envs=preset.n_envs, seed=i, num_levels=100),
        preset, env_id, timesteps, repeats)
    return {"task": task, **row}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ensemble_forward(repeats: int, batches=(1, 8, 64), k: int = 8, device: str = "cpu") -> list[dict]:
    from stable_baselines3 import PPO

    preset = get_preset("paper", "procgen:starpilot")
    policy, kwargs = preset.policy_for(parse_env_id("procgen:starpilot"))
    env = ProcgenVecEnv("starpilot", 1, rand_seed=0)
    from stable_baselines3.common.vec_env import VecFrameStack

    model = PPO(policy, VecFrameStack(env, 2), policy_kwargs=kwargs, n_steps=8, batch_size=8, device=device)
    specs = make_noisy_specs(k, seed=0, sigma=0.01, density=0.2, partitioned=False)
    ens = NoisyEnsemblePolicy(model.policy, specs, batched=True)
    auto = NoisyEnsemblePolicy(model.policy, specs)  # the default: vmap only where it pays
    actor = ActorLogits(model.policy)
    rows = []
    for b in batches:
        obs = torch.rand(b, 6, 64, 64, device=device) * 255
        single, batched, chosen = [], [], []
        with torch.no_grad():
            for _ in range(3):  # warm-up (CUDA kernels, vmap tracing)
                ens.member_probs(obs)
                auto.member_probs(obs)
                actor(obs)
            for _ in range(repeats):
                _sync(device)
                t = time.perf_counter()
                for _ in range(k):
                    torch.softmax(actor(obs), -1)
                _sync(device)
                single.append(time.perf_counter() - t)
                t = time.perf_counter()
                ens.member_probs(obs).mean(0)
                _sync(device)
                batched.append(time.perf_counter() - t)
                t = time.perf_counter()
                auto.member_probs(obs).mean(0)
                _sync(device)
                chosen.append(time.perf_counter() - t)
        s, bt, ch = statistics.median(single), statistics.median(batched), statistics.median(chosen)
        rows.append({"batch": b, "members": k, "single_x8_seconds": s, "batched_seconds": bt, "ratio": bt / s,
                     "default_seconds": ch, "default_ratio": ch / s})
        print(f"ensemble forward batch {b}: vmapped/8 singles = {bt / s:.3f}, default/8 singles = {ch / s:.3f}",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="device of the ensemble-forward part (cpu or cuda)")
    ap.add_argument("--parts", nargs="+", choices=["adapter", "ppo", "ensemble", "minigrid"],
                    default=["adapter", "ppo", "ensemble", "minigrid"])
    ap.add_argument("--minigrid-task", default="MiniGrid-DoorKey-6x6-v0")
    ap.add_argument("--name", default=None, help="result file stem (default perf_rl, perf_rl_cuda on CUDA, "
                    "perf_rl_<parts> for some parts only, so one part never overwrites the others)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sections, payload = [], {}
    if "adapter" in args.parts:
        ad = payload["adapter"] = [adapter(g, 2000, 2 * args.repeats + 1) for g in ("coinrun", "starpilot")]
        for r in ad:
            print(f"adapter {r['game']}: raw/adapter time ratio {r['ratio']:.3f} "
                  f"(of minima {r['ratio_of_minima']:.3f})", flush=True)
        sections += [
            "## ProcGen adapter vs raw gym3 (same actions; target ratio ≥ 0.95)",
            markdown_table(["game", "envs", "repeats", "raw steps/s", "adapter steps/s", "ratio of medians",
                            "ratio of minima"],
                           [[r["game"], r["num_envs"], r["repeats"], r["raw_steps_per_s"], r["adapter_steps_per_s"],
                             r["ratio"], r["ratio_of_minima"]] for r in ad])]
    if "ppo" in args.parts:
        pp = payload["ppo"] = ppo("coinrun", 2048, args.repeats)
        print(f"PPO: ours/plain steps/s = {pp['ratio']:.3f} (of minima {pp['ratio_of_minima']:.3f})", flush=True)
        sections += [
            "## PPO steps/s: evo_ensembles train_agent vs plain SB3 PPO, same Impala [16,32,32] network "
            "(target ≥ 0.95)",
            markdown_table(["game", "timesteps", "repeats", "ours steps/s", "plain SB3 steps/s", "ratio of medians",
                            "ratio of minima"],
                           [[pp["game"], pp["timesteps"], pp["repeats"], pp["ours_steps_per_s"],
                             pp["plain_sb3_steps_per_s"], pp["ratio"], pp["ratio_of_minima"]]])]
    if "ensemble" in args.parts:
        ens = payload["ensemble_forward"] = ensemble_forward(args.repeats * 4, device=args.device)
        sections += [
            f"## Ensemble action selection on {args.device}, K = 8, paper Impala [32,64,128] (target ≤ 0.5)",
            markdown_table(["batch", "8 single forwards s", "one vmapped forward s", "ratio", "default (auto) s",
                            "default ratio"],
                           [[r["batch"], r["single_x8_seconds"], r["batched_seconds"], r["ratio"],
                             r["default_seconds"], r["default_ratio"]] for r in ens])]
    if "minigrid" in args.parts:
        st = payload["minigrid_stack"] = minigrid_stack(args.minigrid_task, 1000, 2 * args.repeats + 1)
        print(f"minigrid stack: raw/stack time ratio {st['ratio']:.3f} (of minima {st['ratio_of_minima']:.3f}); "
              f"raw/SB3 vector {st['sb3_vector_ratio']:.3f}; SB3 vector/stack {st['layers_ratio']:.3f}", flush=True)
        mp = payload["minigrid_ppo"] = minigrid_ppo(args.minigrid_task, 8192, args.repeats)
        print(f"minigrid PPO: {mp['ours_steps_per_s']:.0f} steps/s; ours/plain = {mp['ratio']:.3f}", flush=True)
        sections += [
            "## MiniGrid: the library's env stack vs raw gymnasium stepping (same actions; target ratio ≥ 0.95)",
            "Three ways to step the same envs on the same actions: raw gymnasium envs in a loop; SB3's "
            "`DummyVecEnv` + `VecMonitor` over them (what any SB3 user pays); the library's stack "
            "(`MiniGridVecEnv`, SB3's `DummyVecEnv` without its two deep copies per step, + `VecMonitor`, level "
            "seeds and the one-hot view, encoded for all envs at once). *Stack / raw* is the target; *stack / SB3 "
            "vector* is the stack against what a plain SB3 user pays for the image view.",
            markdown_table(["task", "envs", "repeats", "raw steps/s", "SB3 vector steps/s", "stack steps/s",
                            "stack / raw (medians)", "stack / raw (minima)", "SB3 vector / raw",
                            "stack / SB3 vector"],
                           [[st["task"], st["num_envs"], st["repeats"], st["raw_steps_per_s"],
                             st["sb3_vector_steps_per_s"], st["stack_steps_per_s"], st["ratio"],
                             st["ratio_of_minima"], st["sb3_vector_ratio"], st["layers_ratio"]]]),
            "## MiniGrid PPO steps/s (`minigrid` preset, 100 training levels): train_agent vs plain SB3 PPO",
            markdown_table(["task", "timesteps", "repeats", "ours steps/s", "plain SB3 steps/s", "ratio of medians",
                            "ratio of minima"],
                           [[mp["task"], mp["timesteps"], mp["repeats"], mp["ours_steps_per_s"],
                             mp["plain_sb3_steps_per_s"], mp["ratio"], mp["ratio_of_minima"]]])]
    hdr = header()
    hw = hdr["hardware"]
    md = "\n\n".join([
        f"# RL performance (P5) on {hw.get('cuda') or hw.get('cpu')}, {args.threads} torch thread(s), "
        "medians of interleaved repeats",
        *sections,
        f"Command: `{hdr['command']}`; {describe_code([hdr])}; {hdr['date']}.",
    ]) + "\n"
    every = ["adapter", "ppo", "ensemble", "minigrid"]
    name = args.name or ("perf_rl_cuda" if args.device.startswith("cuda") else "perf_rl")
    if args.name is None and sorted(set(args.parts)) != sorted(every):
        name += "_" + "_".join(p for p in every if p in args.parts)
    save(name, {**hdr, **payload}, md)


if __name__ == "__main__":
    main()
