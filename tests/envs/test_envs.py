import numpy as np
import pytest

from evo_ensembles.envs import ProcgenVecEnv, make_minatar, make_vec_env, parse_env_id
from evo_ensembles.errors import UserError


def test_procgen_adapter_shapes_dtypes_and_spaces():
    env = ProcgenVecEnv("coinrun", num_envs=3, rand_seed=0)
    obs = env.reset()
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 15
    obs, rew, done, info = env.step(np.zeros(3, dtype=np.int64))
    assert obs.shape == (3, 64, 64, 3) and rew.dtype == np.float32 and done.dtype == bool
    assert len(info) == 3 and all("terminal_observation" not in i for i in info)


def test_procgen_episode_ends_are_reported_as_done():
    # In bigfish a random agent is eaten quickly, so episodes end within a few hundred steps.
    env = ProcgenVecEnv("bigfish", num_envs=4, rand_seed=1)
    env.reset()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(600):
        _, _, done, _ = env.step(rng.integers(0, 15, 4))
        ends += int(done.sum())
    assert ends > 0


def test_procgen_same_seed_same_levels_and_frames():
    a, b = ProcgenVecEnv("starpilot", 2, rand_seed=5), ProcgenVecEnv("starpilot", 2, rand_seed=5)
    c = ProcgenVecEnv("starpilot", 2, rand_seed=6)
    assert np.array_equal(a.reset(), b.reset())
    assert not np.array_equal(a.reset(), c.reset())
    acts = np.array([1, 4])
    for _ in range(20):
        oa, ra, da, _ = a.step(acts)
        ob, rb, db, _ = b.step(acts)
    assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and np.array_equal(da, db)


def test_standard_stack_for_procgen():
    env = make_vec_env("procgen:coinrun", num_envs=2, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 64, 64, 6)  # two stacked RGB frames
    names = []
    e = env
    while e is not None:
        names.append(type(e).__name__)
        e = getattr(e, "venv", None)
    assert names == ["VecFrameStack", "VecNormalize", "VecMonitor", "ProcgenVecEnv"]
    _, rew, _, _ = env.step(np.zeros(2, dtype=np.int64))
    assert rew.shape == (2,)


def test_minatar_and_gym_envs():
    env = make_minatar("breakout")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.float32
    v = make_vec_env("minatar:breakout", num_envs=2, seed=0)
    assert v.reset().shape == (2, 4, 10, 10)
    g = make_vec_env("gym:CartPole-v1", num_envs=2, seed=3)
    first = g.reset()
    again = make_vec_env("gym:CartPole-v1", num_envs=2, seed=3).reset()
    assert np.array_equal(first, again)


@pytest.mark.parametrize("bad", ["starpilot", "procgen:pong", "minatar:pong", "gym:NoSuchEnv-v9",
                                 "atari:breakout", "procgen:"])
def test_unknown_envs_are_user_errors(bad):
    with pytest.raises(UserError):
        parse_env_id(bad)


def test_bad_procgen_options():
    with pytest.raises(UserError):
        ProcgenVecEnv("coinrun", distribution_mode="impossible")
    with pytest.raises(UserError):
        ProcgenVecEnv("coinrun", colour="red")
