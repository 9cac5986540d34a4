"""Train SB3 PPO agents with checkpoints, resume, CSV/TensorBoard logs and a progress bar.

An agent directory holds ``agent.json`` (environment, preset, seed, timesteps done,
normalisation statistics), ``agent.zip`` (SB3's own format: JSON + torch tensors, loaded
with ``weights_only``), ``checkpoints/latest.{zip,json}`` (written every
``checkpoint_every`` steps, atomically) and ``logs/`` (``progress.csv``, one row per
rollout across resumed runs, and TensorBoard events). Running the same training again resumes
from the latest checkpoint.

Reward- and observation-normalisation statistics are stored as JSON numbers rather than SB3's pickled
``VecNormalize`` file, so loading an agent never unpickles anything.

Examples:
    >>> from evo_ensembles.agents import RLTrainConfig, train_agent
    >>> info = train_agent(RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=256), "runs/cartpole")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from .._version import __version__
from ..config.rl import RLTrainConfig
from ..devices import resolve_device
from ..envs import make_vec_env, parse_env_id
from ..errors import CheckpointError, UserError
from ..run_folder import LAYOUT, RunFolder, atomic_write, write_json
from ..schema import AGENT_RECORD
from ..train.checkpoint import parse_record, read_sidecar
from .presets import Preset

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.running_mean_std import RunningMeanStd

AGENT_FORMAT = "evo_ensembles.agent/1"


def build_env(env_id: str, preset: Preset, *, n_envs: int, seed: int, num_levels: int = 0,
              start_level: int = 0) -> VecEnv:
    """The preset's environment stack for ``env_id``."""
    return make_vec_env(env_id, n_envs, seed, frame_stack=preset.frame_stack,
                        normalize_reward=preset.normalize_reward, normalize_obs=preset.normalize_obs,
                        gamma=preset.ppo.get("gamma", 0.99),
                        distribution_mode=preset.distribution_mode, num_levels=num_levels,
                        start_level=start_level)


def _find_vecnormalize(env: VecEnv | None) -> VecNormalize | None:
    while env is not None:
        if isinstance(env, VecNormalize):
            return env
        env = getattr(env, "venv", None)
    return None


def normalization_state(env: VecEnv | None) -> dict | None:
    """The running statistics of the stack's ``VecNormalize`` as JSON numbers (None without one)."""
    vn = _find_vecnormalize(env)
    if vn is None:
        return None
    r = vn.ret_rms
    state = {"ret_mean": float(r.mean), "ret_var": float(r.var), "ret_count": float(r.count),
             "clip_reward": vn.clip_reward, "epsilon": vn.epsilon, "gamma": vn.gamma}
    if vn.norm_obs:
        o = cast("RunningMeanStd", vn.obs_rms)  # one RunningMeanStd: Box observations, never a Dict space
        state |= {"obs_mean": np.asarray(o.mean).tolist(), "obs_var": np.asarray(o.var).tolist(),
                  "obs_count": float(o.count), "clip_obs": vn.clip_obs}
    return state


def load_normalization_state(env: VecEnv, state: dict | None, *, frozen: bool = False) -> None:
    """Restore :func:`normalization_state` into ``env``; ``frozen`` stops further updates (evaluation)."""
    vn = _find_vecnormalize(env)
    if vn is None:
        return
    if vn.norm_obs and not (state and "obs_mean" in state):
        raise CheckpointError("the agent normalises observations but its record holds no observation "
                              "statistics; retrain it")
    if state:
        vn.ret_rms.mean = np.asarray(state["ret_mean"], np.float64)  # 0-d, as RunningMeanStd(shape=()) holds it
        vn.ret_rms.var = np.asarray(state["ret_var"], np.float64)
        vn.ret_rms.count = state["ret_count"]
        if vn.norm_obs:
            obs_rms = cast("RunningMeanStd", vn.obs_rms)  # Box observations, never a Dict space
            shape = obs_rms.mean.shape
            mean, var = np.asarray(state["obs_mean"], np.float64), np.asarray(state["obs_var"], np.float64)
            if mean.shape != shape or var.shape != shape:
                raise CheckpointError(f"observation statistics of shape {mean.shape} do not fit "
                                      f"observations of shape {shape}")
            obs_rms.mean, obs_rms.var, obs_rms.count = mean, var, float(state["obs_count"])
    if frozen:
        vn.training = False


class _Checkpoint(BaseCallback):
    """Saves ``latest.zip`` (the model with its record inside) every ``every`` steps, atomically."""

    def __init__(self, directory: Path, every: int, meta: dict) -> None:
        super().__init__()
        self.directory, self.every, self.meta = directory, every, meta
        self._last = 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self.save()
        return True

    def save(self) -> None:
        self._last = self.num_timesteps
        save_checkpoint(self.model, self.directory / "latest", {**self.meta, "timesteps_done": self.num_timesteps})


class _TimeLimit(BaseCallback):
    """Stops ``learn`` once ``seconds`` have passed, at the first step of a new rollout.

    Stopping at a rollout boundary wastes one vectorised step instead of a partial rollout.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.start, self.expired = seconds, time.perf_counter(), False

    def _on_rollout_start(self) -> None:
        self.expired = time.perf_counter() - self.start >= self.seconds

    def _on_step(self) -> bool:
        return not self.expired


def _merge_csv(target: Path, *sources: Path) -> None:
    """Rows of ``sources`` (in order, union of their columns) into ``target``; sources removed."""
    rows, fields = [], []
    for src in sources:
        if src.exists():
            with src.open(newline="") as f:
                reader = csv.DictReader(f)
                fields += [k for k in reader.fieldnames or [] if k not in fields]
                rows += list(reader)
    if not fields:
        return
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(target, write)
    for src in sources:
        if src != target and src.exists():
            src.unlink()


RECORD = "evo_ensembles.json"  # the agent's record, a member of its SB3 zip


def save_agent_zip(model: BaseAlgorithm, path: Path, record: dict) -> None:
    """SB3's zip with the agent's record inside it, renamed into place as one file (atomic)."""
    def write(tmp: str) -> None:
        model.save(tmp)  # the temporary name ends in .zip, so SB3 writes exactly there
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(RECORD, json.dumps(record))

    atomic_write(path, write)
    write_json(path.with_suffix(".json"), record)  # a copy for people; the zip's record decides


def read_agent_record(path: Path) -> dict | None:
    """The record inside an agent zip; for agents of older versions, the ``.json`` beside it."""
    try:
        with zipfile.ZipFile(path) as z:
            text = z.read(RECORD).decode() if RECORD in z.namelist() else None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable agent archive ({e})") from None
    if text is None:
        record, source = read_sidecar(path.with_suffix(".json")), str(path.with_suffix(".json"))
    else:
        record, source = parse_record(text, f"{path} ({RECORD})"), f"{path} ({RECORD})"
    if record is not None and record.get("format") == AGENT_FORMAT:
        AGENT_RECORD.check(record, source)
    return record


def save_checkpoint(model: BaseAlgorithm, stem: Path, meta: dict) -> None:
    """``stem.zip``: SB3's model with the metadata and normalisation stats inside, atomically."""
    save_agent_zip(model, stem.with_suffix(".zip"),
                   {**meta, "normalization": normalization_state(model.get_env())})


def _check_same_settings(record: dict, preset: Preset, n_envs: int, levels: tuple[int, int], what: str) -> None:
    """Resuming continues one training: the preset's settings (all but the step target, which may
    grow), the number of environments and the training levels must be the ones it was trained with."""
    before = {"normalize_obs": False, **record.get("preset", {}), "n_envs": record.get("n_envs", n_envs),
              "train_levels": (int(record.get("num_levels", 0)), int(record.get("start_level", 0)))}
    now = {**preset.to_dict(), "n_envs": n_envs, "train_levels": levels}
    changed = sorted(k for k in now if k != "timesteps" and k in before and before[k] != now[k])
    if changed:
        raise UserError(f"{what} trained with other settings ({', '.join(changed)}); use a new --out")


def train_agent(cfg: RLTrainConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Train (or resume training) a PPO agent into ``out``; returns ``agent.json``'s content."""
    preset = cfg.preset_spec()
    run = RunFolder(out, threads=cfg.threads, device=cfg.device)  # checks only: nothing is made yet
    out = run.path
    total = cfg.timesteps or preset.timesteps
    n_envs = cfg.n_envs or preset.n_envs
    meta = {"format": AGENT_FORMAT, "library_version": __version__, "env": cfg.env, "preset": preset.to_dict(),
            "seed": cfg.seed, "n_envs": n_envs, "num_levels": cfg.num_levels, "start_level": cfg.start_level,
            "timesteps_target": total}
    levels = (cfg.num_levels, cfg.start_level)
    latest = run / LAYOUT.agent_latest
    old = read_agent_record(run / LAYOUT.agent) if (run / LAYOUT.agent).exists() else None
    if old is not None:
        if old.get("env") != cfg.env or old.get("preset", {}).get("name") != preset.name:
            raise UserError(f"{out} holds an agent for {old.get('env')} ({old.get('preset', {}).get('name')}); "
                            "use a new --out")
        _check_same_settings(old, preset, n_envs, levels, f"{out} holds an agent")
    env = build_env(cfg.env, preset, n_envs=n_envs, seed=cfg.seed, num_levels=cfg.num_levels,
                    start_level=cfg.start_level)
    done = 0
    saved = read_agent_record(latest.with_suffix(".zip")) if latest.with_suffix(".zip").exists() else None
    if saved is not None:
        if saved.get("env") != cfg.env or saved.get("preset", {}).get("name") != preset.name:
            raise UserError(f"{out} holds a checkpoint for another environment or preset; use a new --out")
        _check_same_settings(saved, preset, n_envs, levels, f"{out} holds a checkpoint")
        model = PPO.load(latest.with_suffix(".zip"), env=env, device=run.device)
        load_normalization_state(env, saved.get("normalization"))
        done = int(saved["timesteps_done"])
    else:
        policy, policy_kwargs = preset.policy_for(parse_env_id(cfg.env))
        model = PPO(policy, env, policy_kwargs=policy_kwargs, seed=cfg.seed, verbose=0,
                    device=run.device, **preset.ppo)
    try:
        with run:  # creates out; one writer at a time
            return _learn(cfg, run, model, env, meta, total, done, progress)
    finally:
        env.close()


def _learn(cfg: RLTrainConfig, run: RunFolder, model: PPO, env: VecEnv, meta: dict[str, Any], total: int,
           done: int, progress: bool) -> dict[str, Any]:
    # SB3 truncates progress.csv when it opens it: keep earlier runs' rows (resume) in
    # history.csv while this run logs, and merge them back when it ends.
    logs = run / LAYOUT.logs
    logs.mkdir(exist_ok=True)
    _merge_csv(logs / "history.csv", logs / "history.csv", logs / "progress.csv")
    model.set_logger(configure(str(logs), ["csv", "tensorboard"]))
    remaining = max(total - done, 0)
    t = time.perf_counter()
    if remaining:
        ckpt = _Checkpoint(run / LAYOUT.checkpoints, cfg.checkpoint_every, meta)
        callbacks: list[BaseCallback] = [ckpt] if cfg.max_seconds is None else [ckpt, _TimeLimit(cfg.max_seconds)]
        model.learn(remaining, callback=callbacks, reset_num_timesteps=done == 0, progress_bar=progress)
        ckpt.save()
    seconds = time.perf_counter() - t
    model.logger.close()
    _merge_csv(logs / "progress.csv", logs / "history.csv", logs / "progress.csv")
    info = {**meta, "timesteps_done": int(model.num_timesteps), "complete": int(model.num_timesteps) >= total,
            "train_seconds_this_run": seconds,
            "steps_per_second_this_run": (model.num_timesteps - done) / seconds if seconds > 0 else None,
            "normalization": normalization_state(env)}
    save_agent_zip(model, run / LAYOUT.agent, info)
    return info


def load_agent(agent_dir: str | Path, *, env: str | None = None, device: str = "auto") -> tuple[PPO, dict]:
    """The trained PPO model and its ``agent.json`` (checked against ``env`` when given)."""
    agent_dir = Path(agent_dir)
    archive = agent_dir / LAYOUT.agent
    meta = read_agent_record(archive) if archive.is_file() else None
    if meta is None:
        raise CheckpointError(f"no trained agent in {agent_dir} (expected agent.zip written by rl train)")
    if meta.get("format") != AGENT_FORMAT:
        raise CheckpointError(f"{archive} is not an evo_ensembles agent")
    if env is not None and env != meta["env"]:
        raise CheckpointError(f"{agent_dir} holds an agent for {meta['env']}, not {env}")
    try:
        model = PPO.load(archive, device=resolve_device(device))
    except Exception as e:  # SB3 raises several types for a damaged archive
        raise CheckpointError(f"cannot load the agent in {archive}: {e}") from None
    return model, meta


__all__ = ["RLTrainConfig", "build_env", "load_agent", "train_agent"]
