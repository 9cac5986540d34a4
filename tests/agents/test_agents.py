import json

import numpy as np
import pytest
import torch

from evo_ensembles.agents import ImpalaCNN, RLTrainConfig, get_preset, load_agent, train_agent
from evo_ensembles.agents.ensemble_policy import (
    ActorLogits,
    NoisyEnsemblePolicy,
    PolicyPredictor,
    choose_actions,
)
from evo_ensembles.agents.evaluate import run_episodes
from evo_ensembles.errors import CheckpointError, UserError
from evo_ensembles.es import make_noisy_specs


def test_impala_cnn_layers_and_paper_size():
    import gymnasium as gym

    space = gym.spaces.Box(0, 255, (6, 64, 64), np.uint8)
    net = ImpalaCNN(space, channels=(32, 64, 128))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 15  # 3 stacks × (1 + 2 residual blocks × 2)
    assert net(torch.zeros(1, 6, 64, 64)).shape == (1, 256)


def test_paper_preset_is_table_4_2():
    p = get_preset("paper", "procgen:starpilot")
    assert p.n_envs == 64 and p.frame_stack == 2 and p.normalize_reward
    assert {k: p.ppo[k] for k in ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda",
                                  "clip_range", "ent_coef", "target_kl")} == {
        "learning_rate": 5e-4, "n_steps": 256, "batch_size": 2048, "n_epochs": 3, "gamma": 0.999,
        "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01, "target_kl": 0.01}
    assert p.impala_channels == (32, 64, 128)


def test_preset_must_fit_the_env():
    with pytest.raises(UserError, match="minatar, smoke"):
        get_preset("paper", "minatar:breakout")
    with pytest.raises(UserError):
        get_preset("nonsense")


@pytest.fixture(scope="module")
def cartpole_agent(tmp_path_factory):
    out = tmp_path_factory.mktemp("agent") / "cartpole"
    train_agent(RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=128, checkpoint_every=64), out, progress=False)
    return out


def test_policy_heads_have_no_hidden_layers(cartpole_agent, tmp_path):
    out = tmp_path / "coinrun"
    train_agent(RLTrainConfig("procgen:coinrun", "smoke", timesteps=64, checkpoint_every=64), out, progress=False)
    model, meta = load_agent(out)
    pol = model.policy
    assert isinstance(pol.features_extractor, ImpalaCNN)
    assert isinstance(pol.action_net, torch.nn.Linear) and pol.action_net.in_features == 256
    assert isinstance(pol.value_net, torch.nn.Linear) and pol.value_net.in_features == 256
    assert not any(isinstance(m, torch.nn.Linear) for m in pol.mlp_extractor.modules())
    assert meta["env"] == "procgen:coinrun"
    # The actor path sees each weight once (the shared extractor is not aliased), so the
    # batched ensemble forward and plain forwards of the policy can alternate.
    actor = ActorLogits(pol)
    names = [n for n, _ in actor.named_parameters()]
    assert len(names) == len(set(names)) and not any("value" in n for n in names)
    obs = torch.randint(0, 255, (3, 3, 64, 64)).float()
    ens = NoisyEnsemblePolicy(pol, make_noisy_specs(2, seed=0, sigma=0.01, density=0.2, partitioned=False))
    assert ens.member_probs(obs).shape == (2, 3, 15)
    before = actor(obs)
    ens.member_probs(obs)
    torch.testing.assert_close(actor(obs), before)


def test_smoke_training_writes_and_resumes(cartpole_agent):
    meta = json.loads((cartpole_agent / "agent.json").read_text())
    assert meta["timesteps_done"] >= 128
    assert (cartpole_agent / "logs" / "progress.csv").exists()
    assert (cartpole_agent / "checkpoints" / "latest.zip").exists()
    info = train_agent(RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=256, checkpoint_every=64),
                       cartpole_agent, progress=False)
    assert info["timesteps_done"] >= 256  # continued from the checkpoint, not from zero


def test_resuming_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "car"
    train_agent(RLTrainConfig("gym:MountainCar-v0", "smoke", timesteps=64), out, progress=False)
    with pytest.raises(UserError, match=r"other settings \(normalize_obs\)"):
        train_agent(RLTrainConfig("gym:MountainCar-v0", "smoke", timesteps=128, overrides={"normalize_obs": True}),
                    out, progress=False)
    with pytest.raises(UserError, match=r"other settings \(n_envs\)"):
        train_agent(RLTrainConfig("gym:MountainCar-v0", "smoke", timesteps=128, n_envs=3), out, progress=False)
    assert train_agent(RLTrainConfig("gym:MountainCar-v0", "smoke", timesteps=128), out,
                       progress=False)["timesteps_done"] >= 128  # a larger step target resumes


def test_agent_dir_checks(cartpole_agent, tmp_path):
    with pytest.raises(CheckpointError):
        load_agent(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="CartPole"):
        load_agent(cartpole_agent, env="minatar:breakout")
    with pytest.raises(UserError):
        train_agent(RLTrainConfig("minatar:breakout", "smoke", timesteps=64), cartpole_agent, progress=False)
    with pytest.raises(UserError):
        RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=0).validate()


def test_ensemble_action_rule_and_batched_members(cartpole_agent):
    model, meta = load_agent(cartpole_agent)
    specs = make_noisy_specs(4, seed=0, sigma=0.05, density=0.2, partitioned=False)
    ens = NoisyEnsemblePolicy(model.policy, specs)
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    probs = ens.member_probs(model.policy.obs_to_tensor(obs)[0])
    assert probs.shape == (4, 5, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4, 5))
    for mode in (True, False):  # vmapped and per-member forwards agree
        torch.testing.assert_close(NoisyEnsemblePolicy(model.policy, specs, batched=mode).member_probs(
            model.policy.obs_to_tensor(obs)[0]), probs)
    # Members are the children the descriptors describe, and they differ from the parent.
    parent = PolicyPredictor(model.policy).action_probs(obs)
    assert not np.allclose(probs[0].numpy(), parent)
    np.testing.assert_allclose(ens.action_probs(obs), probs.mean(0).numpy(), rtol=1e-6)
    # arg-max rule takes the arg-max of the *averaged* distribution; sampling follows it.
    avg = np.array([[0.2, 0.8], [0.9, 0.1]])
    assert choose_actions(avg, "argmax", np.random.default_rng(0)).tolist() == [1, 0]
    draws = np.stack([choose_actions(avg, "sample", np.random.default_rng(s)) for s in range(2000)])
    np.testing.assert_allclose(draws.mean(0), [0.8, 0.1], atol=0.03)
    r = run_episodes(ens, meta, episodes=3, n_envs=2)
    assert r["episodes"] == 3 and len(r["returns"]) == 3


def test_time_limited_training_stops_checkpoints_and_resumes_with_one_log(tmp_path):
    import csv

    out = tmp_path / "timed"
    cfg = RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=10**7, checkpoint_every=64, max_seconds=0.3)
    first = train_agent(cfg, out, progress=False)
    assert not first["complete"] and 0 < first["timesteps_done"] < 10**7
    second = train_agent(cfg, out, progress=False)
    assert second["timesteps_done"] > first["timesteps_done"]  # resumed, not restarted
    with (out / "logs" / "progress.csv").open() as f:
        steps = [int(r["time/total_timesteps"]) for r in csv.DictReader(f)]
    assert steps == sorted(steps) and steps[0] <= first["timesteps_done"] < steps[-1]  # both runs' rows
    assert not (out / "logs" / "history.csv").exists()
    with pytest.raises(UserError, match="max-seconds"):
        RLTrainConfig("gym:CartPole-v1", "smoke", max_seconds=0).validate()


def test_merge_csv_keeps_rows_in_order_and_unions_columns(tmp_path):
    from evo_ensembles.agents.train import _merge_csv

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n")
    b.write_text("x,z\n3,4\n")
    _merge_csv(a, a, b)
    assert a.read_text().splitlines() == ["x,y,z", "1,2,", "3,,4"] and not b.exists()


def test_head_scope_perturbs_only_the_action_head(cartpole_agent):
    from evo_ensembles.agents.ensemble_policy import actor_dense_layers

    model, _ = load_agent(cartpole_agent)
    pol = model.policy
    dense = actor_dense_layers(pol, "head")
    assert dense and "head" not in dense and actor_dense_layers(pol, "actor") == ()
    specs = make_noisy_specs(2, seed=0, sigma=0.5, density=1.0, partitioned=False, dense_layers=dense)
    ens = NoisyEnsemblePolicy(pol, specs, batched=False)
    actor = dict(ActorLogits(pol).named_parameters())
    for name, stacked in ens.stacked.items():
        changed = not all(torch.equal(stacked[k], actor[name]) for k in range(len(specs)))
        assert changed == (name == "head.weight"), name  # biases are never perturbed
    with pytest.raises(UserError, match="perturbation scope"):
        actor_dense_layers(pol, "critic")


def test_per_env_preset_settings_merge_over_the_preset():
    base, car = get_preset("classic", "gym:CartPole-v1"), get_preset("classic", "gym:MountainCar-v0")
    assert not base.normalize_obs and car.normalize_obs
    assert car.timesteps > base.timesteps and car.n_envs == 16
    assert car.ppo["gae_lambda"] == 0.98 and car.ppo["clip_range"] == base.ppo["clip_range"]  # ppo merged key by key
    assert get_preset("classic").to_dict()["normalize_obs"] is False


def test_observation_normalisation_is_saved_and_frozen_for_evaluation(tmp_path):
    from evo_ensembles.agents.evaluate import eval_env
    from evo_ensembles.envs import make_vec_env

    out = tmp_path / "car"
    train_agent(RLTrainConfig("gym:MountainCar-v0", "smoke", timesteps=128, overrides={"normalize_obs": True}),
                out, progress=False)
    _, meta = load_agent(out)
    norm = meta["normalization"]
    assert meta["preset"]["normalize_obs"] and len(norm["obs_mean"]) == 2 and norm["obs_count"] > 128
    env, raw = eval_env(meta, seed=3), make_vec_env("gym:MountainCar-v0", 1, 3 + 1_000_003)
    mean, var = np.array(norm["obs_mean"]), np.array(norm["obs_var"])
    for _ in range(3):
        got, want = env.reset(), raw.reset()
        np.testing.assert_allclose(got, np.clip((want - mean) / np.sqrt(var + 1e-8), -10, 10), rtol=1e-5)
        env.step(np.array([0])), raw.step(np.array([0]))
    np.testing.assert_array_equal(env.obs_rms.mean, mean)  # frozen: evaluation never updates the statistics
    meta["normalization"] = None
    with pytest.raises(CheckpointError, match="observation statistics"):
        eval_env(meta)
