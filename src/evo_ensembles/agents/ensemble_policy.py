"""Noisy ensemble policies: K noisy subnetwork children of a trained PPO policy act together.

Members come from the same engine as the classifiers (:mod:`evo_ensembles.es`): seed
descriptors, mirrored/partitioned sparse noise, the KL trust region — here on the *action
distribution* over probe observations from the parent's own rollouts. The K members'
actor weights are stacked and evaluated in one batched forward
(``torch.func.vmap`` over ``functional_call``); the ensemble acts on the average of the
members' softmax action distributions, by sampling from it (default) or taking its arg-max.

Sampling is the default because PPO policies are trained and evaluated as stochastic
policies (the ProcGen baselines sample); a deterministic arg-max of a policy trained with
an entropy bonus can loop in place (e.g. pressing against a wall) and usually scores
lower. Both rules are available (``action="argmax"``).

Only actor parameters are perturbed (the value head does not act): all of them
(``perturb="actor"``, the default) or the action head alone (``perturb="head"``, the
features stay the parent's — the pruning scope of :mod:`evo_ensembles.subnet`).

Examples:
    >>> from evo_ensembles.es import make_noisy_specs
    >>> ens = NoisyEnsemblePolicy(model.policy, make_noisy_specs(8, seed=0, sigma=0.02))   # doctest: +SKIP
    >>> actions, _ = ens.predict(obs)                                                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn
from torch.func import functional_call, vmap

from ..checks import check_known
from ..combining import combine
from ..config.rl import ACTION_RULES, PERTURB_SCOPES
from ..errors import UserError
from ..subnet import ChildSpec, InPlacePerturber, eligible_parameters, noise_delta


def choose_actions(probs: np.ndarray, rule: str, rng: np.random.Generator,
                   deterministic: bool = False) -> np.ndarray:
    """One action per row of (B, A) ``probs``: arg-max, or a sample (inverse CDF)."""
    if deterministic or rule == "argmax":
        return probs.argmax(axis=1)
    cum = probs.cumsum(axis=1)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


class ActorLogits(nn.Module):
    """The actor path of an SB3 ActorCriticPolicy as its own module: observation → action logits.

    It holds the policy's actor sub-modules (same parameter objects, no value head and no
    aliased names), so ``functional_call``/``vmap`` and in-place perturbation see each
    actor weight exactly once.
    """

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        self.features = policy.pi_features_extractor
        self.latent = policy.mlp_extractor.policy_net
        self.head = policy.action_net
        self.observation_space = policy.observation_space
        self.normalize_images = policy.normalize_images

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)
        return self.head(self.latent(self.features(x)))


def actor_eligibility() -> dict:
    """``eligible_parameters`` options for policy children: every actor weight (the default)."""
    return {}


def actor_dense_layers(policy: ActorCriticPolicy, perturb: str = "actor") -> tuple[str, ...]:
    """The pruning scope (``ChildSpec.dense_layers``) that perturbs ``perturb`` of the actor.

    ``"actor"``: every actor weight, so nothing is kept dense; ``"head"``: only the action
    head, so the feature extractor and any hidden policy layers are kept dense.
    """
    check_known(perturb, PERTURB_SCOPES, "perturbation scope")
    if perturb == "actor":
        return ()
    names = eligible_parameters(ActorLogits(policy), **actor_eligibility())
    return tuple(sorted({n.split(".")[0] for n in names} - {"head"}))


def policy_perturber(policy: ActorCriticPolicy) -> InPlacePerturber:
    """An in-place perturber over the policy's actor weights (for probes and selection)."""
    return InPlacePerturber(ActorLogits(policy), **actor_eligibility())


class NoisyEnsemblePolicy:
    """K noisy children of ``policy`` acting on the average of their action distributions.

    Args:
        policy: a trained SB3 ``ActorCriticPolicy`` (left unchanged).
        specs: the members' descriptors (``kind="noise"``).
        action: ``"sample"`` (default) or ``"argmax"`` of the averaged distribution.
        seed: seeds action sampling.
        batched: ``True``: one vmapped forward for all members; ``False``: one forward per
            member; ``"auto"`` (default): vmapped on CUDA or for tiny batches (≤ 2
            observations), where it amortises per-call overhead, else per member — on a
            CPU a vmapped convolution over member weights is slower than K plain ones once
            the work is compute-bound (benchmarks/results/perf_rl.md).
    """

    def __init__(self, policy: ActorCriticPolicy, specs: Sequence[ChildSpec], *, action: str = "sample",
                 seed: int = 0, batched: bool | str = "auto") -> None:
        if batched not in (True, False, "auto"):
            raise UserError(f"batched must be True, False or 'auto', got {batched!r}")
        self.batched = batched
        check_known(action, ACTION_RULES, "action rule")
        if not specs:
            raise UserError("an ensemble policy needs at least one member")
        self.policy, self.specs, self.action = policy, list(specs), action
        self.actor = ActorLogits(policy)
        self.rng = np.random.default_rng(seed)
        params = dict(self.actor.named_parameters())
        eligible = eligible_parameters(self.actor, **actor_eligibility())
        members = []
        for spec in self.specs:
            delta = noise_delta(eligible, spec)
            members.append({n: (p.detach() + delta[n]) if n in delta else p.detach() for n, p in params.items()})
        self.stacked = {n: torch.stack([m[n] for m in members]) for n in params}
        self.buffers = dict(self.actor.named_buffers())

    def __len__(self) -> int:
        return len(self.specs)

    @torch.no_grad()
    def member_probs(self, obs: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """(K, B, A) action probabilities of every member, in one batched forward.

        (The :class:`~evo_ensembles.ensemble.Members` interface; ``batch_size`` is unused:
        a policy acts on one batch of observations at a time.)
        """
        def one(params, x):
            return functional_call(self.actor, {**params, **self.buffers}, (x,))

        vmapped = self.batched is True or (self.batched == "auto" and (obs.is_cuda or obs.shape[0] <= 2))
        if vmapped:
            logits = vmap(one, in_dims=(0, None))(self.stacked, obs)
        else:
            logits = torch.stack([one({n: t[k] for n, t in self.stacked.items()}, obs)
                                  for k in range(len(self.specs))])
        return torch.softmax(logits, dim=-1)

    @torch.no_grad()
    def action_probs(self, observation: np.ndarray) -> np.ndarray:
        """(B, A) averaged action distribution for a batch of raw observations."""
        obs, _ = self.policy.obs_to_tensor(observation)  # one tensor: an ndarray observation, not a dict
        return combine(self.member_probs(cast(torch.Tensor, obs))).cpu().numpy()

    def predict(self, observation: np.ndarray, state=None, episode_start=None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """SB3's ``predict`` signature; ``deterministic=True`` forces the arg-max rule."""
        return choose_actions(self.action_probs(observation), self.action, self.rng, deterministic), None


class PolicyPredictor:
    """The parent policy with the same action rule, for like-for-like comparisons."""

    def __init__(self, policy: ActorCriticPolicy, *, action: str = "sample", seed: int = 0) -> None:
        check_known(action, ACTION_RULES, "action rule")
        self.policy, self.action = policy, action
        self.actor = ActorLogits(policy)
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def action_probs(self, observation: np.ndarray) -> np.ndarray:
        obs, _ = self.policy.obs_to_tensor(observation)
        return torch.softmax(self.actor(obs), dim=-1).cpu().numpy()

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        return choose_actions(self.action_probs(observation), self.action, self.rng, deterministic), None
