"""PPO presets (``presets.toml``) and the SB3 policy each one builds.

Examples:
    >>> p = get_preset("paper", "procgen:starpilot")
    >>> p.n_envs, p.ppo["n_steps"], p.ppo["batch_size"], p.impala_channels
    (64, 256, 2048, (32, 64, 128))
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from ..envs import EnvId, parse_env_id
from ..errors import UnknownNameError, UserError
from .networks import ImpalaCNN, MinAtarCNN


@dataclass(frozen=True)
class Preset:
    """One preset: environment settings, the policy network and SB3 PPO keyword arguments."""

    name: str
    families: tuple[str, ...]
    policy: str
    n_envs: int
    frame_stack: int
    normalize_reward: bool
    timesteps: int
    normalize_obs: bool = False
    ppo: dict[str, Any] = field(default_factory=dict)
    impala_channels: tuple[int, ...] = (32, 64, 128)
    mlp: tuple[int, ...] = (64, 64)
    distribution_mode: str = "easy"

    def policy_for(self, env: EnvId) -> tuple[str, dict[str, Any]]:
        """SB3 policy class name and ``policy_kwargs`` for this environment family.

        Image policies get ``net_arch`` with no hidden layers: the action and value heads
        are one linear layer each on the extractor's features.
        """
        kind = self.policy
        if kind == "auto":
            kind = {"procgen": "impala", "minigrid": "minatar-cnn", "minatar": "minatar-cnn", "gym": "mlp"}[env.family]
        heads: dict[str, Any] = {"net_arch": {"pi": [], "vf": []}}
        if kind == "impala":
            return "CnnPolicy", {**heads, "features_extractor_class": ImpalaCNN,
                                 "features_extractor_kwargs": {"channels": tuple(self.impala_channels)}}
        if kind == "minatar-cnn":
            small = self.name == "smoke"
            return "MlpPolicy", {**heads, "features_extractor_class": MinAtarCNN,
                                 "features_extractor_kwargs": {"channels": 4 if small else 16,
                                                               "features_dim": 16 if small else 128}}
        if kind == "mlp":
            return "MlpPolicy", {"net_arch": {"pi": list(self.mlp), "vf": list(self.mlp)}}
        raise UserError(f"preset {self.name!r}: unknown policy {kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "families": list(self.families), "policy": self.policy,
                "n_envs": self.n_envs, "frame_stack": self.frame_stack,
                "normalize_reward": self.normalize_reward, "normalize_obs": self.normalize_obs,
                "timesteps": self.timesteps, "ppo": dict(self.ppo),
                "impala_channels": list(self.impala_channels), "mlp": list(self.mlp),
                "distribution_mode": self.distribution_mode}


def _load() -> dict[str, dict]:
    return tomllib.loads(resources.files(__package__).joinpath("presets.toml").read_text())


def available_presets() -> list[str]:
    return list(_load())


def get_preset(name: str, env_id: str | EnvId | None = None, **overrides: Any) -> Preset:
    """The preset ``name``; with ``env_id`` it must fit that environment family.

    A preset may hold per-environment settings (``[<name>.envs."<env name>"]``, RL Zoo
    style: MountainCar needs observation normalisation and far more steps than CartPole);
    with ``env_id`` they are merged over the preset's own, ``ppo`` key by key.
    """
    table = _load()
    if name not in table:
        raise UnknownNameError(f"unknown preset {name!r}; choose from {', '.join(table)}")
    raw = dict(table[name])
    per_env = raw.pop("envs", {})
    if env_id is not None:
        eid = env_id if isinstance(env_id, EnvId) else parse_env_id(env_id)
        if eid.family not in raw["families"]:
            fitting = [n for n, t in table.items() if eid.family in t["families"]]
            raise UserError(f"preset {name!r} is for {'/'.join(raw['families'])} environments, not {eid}; "
                            f"use one of: {', '.join(fitting)}")
        specific = dict(per_env.get(eid.name, {}))
        raw["ppo"] = {**raw.get("ppo", {}), **specific.pop("ppo", {})}
        raw.update(specific)
    preset = Preset(name=name, families=tuple(raw.pop("families")), policy=raw.pop("policy"),
                    n_envs=int(raw.pop("n_envs")), frame_stack=int(raw.pop("frame_stack")),
                    normalize_reward=bool(raw.pop("normalize_reward")), timesteps=int(raw.pop("timesteps")),
                    normalize_obs=bool(raw.pop("normalize_obs", False)),
                    ppo=dict(raw.pop("ppo", {})),
                    impala_channels=tuple(raw.pop("impala_channels", (32, 64, 128))),
                    mlp=tuple(raw.pop("mlp", (64, 64))), distribution_mode=raw.pop("distribution_mode", "easy"))
    if raw:
        raise UserError(f"preset {name!r} has unknown keys {sorted(raw)}")
    return replace(preset, **overrides) if overrides else preset
