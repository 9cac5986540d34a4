"""The ``rl evaluate`` run: a trained agent vs its Noisy Subnetwork Ensemble policy.

Steps (SPEC §2, Table 4.2): load the agent; choose σ (``sigma``, fixed 0.01 by default, or
``None``: the KL trust region on the *action distribution* over probe observations from the
parent's own rollouts); draw a population of mirrored noisy children of the actor (density 0.5
by default); keep the top K of N (default 2K) by mean return on validation episodes (training
levels, a fixed seed: common random numbers for every child); then evaluate parent and
ensemble under one action rule (arg-max by default) on the same evaluation episodes (held-out
levels by default). The defaults are the RL regime study's (benchmarks/results/rl_regime.md).
Writes ``config.json``, ``results.json``, ``report.md`` and ``ensemble.json`` (descriptors) into ``out``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..agents.ensemble_policy import (
    ActorLogits,
    NoisyEnsemblePolicy,
    PolicyPredictor,
    actor_dense_layers,
    actor_eligibility,
    policy_perturber,
)
from ..agents.evaluate import collect_observations, run_episodes
from ..agents.train import load_agent, train_agent
from ..config.rl import ACTION_RULES, RLEvalConfig, RLTrainConfig
from ..es import ClassifierFitness, NoiseSampling, NoisySearch, select_children
from ..provenance import provenance
from ..reporting import markdown_table, text_table
from ..run_folder import LAYOUT, RunFolder


class EpisodeFitness:
    """Fitness of a (perturbed in place) policy: mean return over fixed validation episodes."""

    extra_keys = ("mean_return", "std_return")

    def __init__(self, policy, meta: dict, *, episodes: int, seed: int, action: str, n_envs: int) -> None:
        self.predictor = PolicyPredictor(policy, action=action, seed=seed)
        self.meta, self.episodes, self.seed, self.n_envs = meta, episodes, seed, n_envs

    def __call__(self, model) -> dict:
        self.predictor.rng = __import__("numpy").random.default_rng(self.seed)  # same draws for every child
        r = run_episodes(self.predictor, self.meta, episodes=self.episodes, levels="train",
                         seed=self.seed + 17, n_envs=self.n_envs)
        return {"fitness": r["mean_return"], "mean_return": r["mean_return"], "std_return": r["std_return"]}


def run_rl_train(cfg: RLTrainConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Train (or resume training) the agent ``cfg`` describes into ``out``; returns agent.json."""
    return train_agent(cfg, out, progress=progress)


def run_rl_evaluate(cfg: RLEvalConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Evaluate an agent and (optionally) its noisy ensemble; returns the results dict."""
    t0 = time.perf_counter()
    run = RunFolder(out, threads=cfg.threads, device=cfg.device)  # checks only: nothing is made yet
    model, meta = load_agent(cfg.agent, env=cfg.env, device=cfg.device)
    policy = model.policy.eval()
    parent = PolicyPredictor(policy, action=cfg.action, seed=cfg.seed)
    # Built key by key: the keys of evo_ensembles.results.RLResults, plus "trust_region" and
    # "population" with an ensemble (which RLResults does not declare): a plain dict.
    results: dict[str, Any] = {
        "method": "rl-noisy" if cfg.ensemble == "noisy" else "rl", "env": meta["env"],
                               "agent": str(cfg.agent), "preset": meta["preset"]["name"],
                               "agent_timesteps": meta.get("timesteps_done")}
    with run:  # creates out; one writer at a time
        return _run(cfg, run, policy, meta, parent, results, t0, progress)


def _run(cfg: RLEvalConfig, run: RunFolder, policy, meta: dict[str, Any], parent: PolicyPredictor,
         results: dict[str, Any], t0: float, progress: bool) -> dict[str, Any]:
    run.write_config(cfg.to_dict())
    results["parent"] = {**_summary(run_episodes(parent, meta, episodes=cfg.episodes, levels=cfg.levels,
                                                 seed=cfg.seed, n_envs=cfg.n_envs)), "action": cfg.action}
    results.update({"ensemble": None, "sigma": None, "density": cfg.density, "members": []})
    chosen = None
    if cfg.ensemble == "noisy":
        noisy = _noisy(cfg, policy, meta, parent, run, progress)
        chosen = noisy.pop("chosen")
        results.update(noisy)
    results["scores"] = _scores(cfg, policy, meta, chosen, results)
    results.update({"config": cfg.to_dict(), "seed": cfg.seed,
                    "timing": {"total_seconds": time.perf_counter() - t0}, **provenance()})
    run.finish(results, _report(results))
    return results


def _noisy(cfg: RLEvalConfig, policy, meta, parent, run: RunFolder, progress: bool) -> dict[str, Any]:
    perturber = policy_perturber(policy)
    n = cfg.population or cfg.top_k
    sampling = NoiseSampling(sigma=0.0, density=cfg.density, mirrored=cfg.mirrored, partitioned=False,
                             dense_layers=actor_dense_layers(policy, cfg.perturb))
    search = NoisySearch(sampling, sigma=cfg.sigma, target_kl=cfg.target_kl, densities=(cfg.density,),
                         popsize=n, top_k=cfg.top_k)
    probe = fitness = None
    if cfg.sigma is None:  # the KL trust region on the action distribution over the parent's own rollouts
        probe_np = collect_observations(parent, meta, steps=cfg.probe_steps, seed=cfg.seed)
        probe = ClassifierFitness(policy.obs_to_tensor(probe_np)[0], reference=ActorLogits(policy))
    if n > cfg.top_k:
        fitness = EpisodeFitness(policy, meta, episodes=cfg.selection_episodes, seed=cfg.seed,
                                 action=cfg.action, n_envs=cfg.n_envs)
    sel = select_children(perturber, probe, fitness, search, seed=cfg.seed, progress=progress)
    chosen, sigma = sel.members, sel.sigma
    trust = sel.trust_region.to_dict() if sel.trust_region else None
    population = None if sel.records is None else [
        {"descriptor": s.to_dict(), **r} for s, r in zip(sel.population, sel.records)]
    ensemble = NoisyEnsemblePolicy(policy, chosen, action=cfg.action, seed=cfg.seed)
    ens = _summary(run_episodes(ensemble, meta, episodes=cfg.episodes, levels=cfg.levels, seed=cfg.seed,
                                n_envs=cfg.n_envs))
    run.write_json(LAYOUT.ensemble, {"format": "evo_ensembles.noisy_policy/1", "agent": str(cfg.agent),
                                       "eligibility": actor_eligibility(),
                                       "action": cfg.action, "descriptors": [s.to_dict() for s in chosen]})
    return {"ensemble": {**ens, "size": len(chosen), "action": cfg.action, "perturb": cfg.perturb},
            "sigma": float(sigma), "chosen": chosen,
            "members": [s.to_dict() for s in chosen], "trust_region": trust, "population": population}


def _scores(cfg: RLEvalConfig, policy, meta: dict, chosen, results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (policy, level set, action rule) score of the run: the primary pair, then the
    training levels (``train_returns``) and the other action rule (``both_rules``), each on the
    same episodes for parent and ensemble."""
    rows = [{"policy": "parent", "action": cfg.action, **_summary(results["parent"])}]
    if results["ensemble"] is not None:
        rows.append({"policy": "ensemble", "action": cfg.action, **_summary(results["ensemble"])})
    level_sets = [cfg.levels] + (["train"] if cfg.train_returns and cfg.levels != "train" else [])
    rules = [cfg.action] + ([r for r in ACTION_RULES if r != cfg.action] if cfg.both_rules else [])
    for levels in level_sets:
        for action in rules:
            if (levels, action) == (cfg.levels, cfg.action):
                continue
            predictors: dict[str, PolicyPredictor | NoisyEnsemblePolicy] = {
                "parent": PolicyPredictor(policy, action=action, seed=cfg.seed)}
            if chosen is not None:
                predictors["ensemble"] = NoisyEnsemblePolicy(policy, chosen, action=action, seed=cfg.seed)
            for who, predictor in predictors.items():
                r = run_episodes(predictor, meta, episodes=cfg.episodes, levels=levels, seed=cfg.seed,
                                 n_envs=cfg.n_envs)
                rows.append({"policy": who, "action": action, **_summary(r)})
    return rows


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("mean_return", "std_return", "episodes", "returns", "levels", "seed")}


HEADERS = ["env", "parent return", "ensemble return", "σ", "density", "episodes"]


def _row(results: dict[str, Any]) -> list[object]:
    p, e = results["parent"], results["ensemble"]
    fmt = "{:.2f} ± {:.2f}"
    return [results["env"], fmt.format(p["mean_return"], p["std_return"]),
            fmt.format(e["mean_return"], e["std_return"]) if e else "-",
            results["sigma"] if results["sigma"] is not None else "-", results["density"], p["episodes"]]


def _report(results: dict[str, Any]) -> str:
    return "\n\n".join([
        f"# {results['env']}: PPO agent vs Noisy Subnetwork Ensemble policy",
        f"Agent {results['agent']} ({results['preset']} preset, {results['agent_timesteps']} steps). "
        f"Mean ± std of raw episode returns on the {results['parent']['levels']} levels, same seeds for "
        f"parent and ensemble; seed {results['seed']}; commit {results['commit']}.",
        "## Table 4.2-style row",
        markdown_table(HEADERS, [_row(results)]),
        *_scores_section(results),
    ]) + "\n"


SCORE_HEADERS = ["policy", "levels", "action rule", "mean return", "std", "episodes"]


def _scores_section(results: dict[str, Any]) -> list[str]:
    """Every score of the run, when there is more than the primary pair."""
    rows = results.get("scores") or []
    if len(rows) <= 2:
        return []
    return ["## Every score (same episodes for parent and ensemble in each level set)",
            markdown_table(SCORE_HEADERS, [[r["policy"], r["levels"], r["action"], f"{r['mean_return']:.3f}",
                                            f"{r['std_return']:.3f}", r["episodes"]] for r in rows])]


def print_summary(results: dict[str, Any]) -> str:
    return text_table(HEADERS, [_row(results)])


__all__ = ["RLEvalConfig", "RLTrainConfig", "print_summary", "run_rl_evaluate", "run_rl_train"]
