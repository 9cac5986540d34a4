"""MiniGrid family: one-hot view, level seeds and the train / held-out split."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from evo_ensembles.agents.evaluate import eval_env, evaluation_levels
from evo_ensembles.envs import make_minigrid, make_vec_env, parse_env_id
from evo_ensembles.envs.minigrid import (
    HELD_OUT_START,
    LEVEL_SPACE,
    OneHotView,
    check_training_levels,
    level_range,
    resolve_minigrid_id,
)
from evo_ensembles.errors import UnknownNameError, UserError

TASK = "MiniGrid-Empty-Random-5x5-v0"  # 100-step episodes: cheap to play to the end


def _dummy(venv) -> DummyVecEnv:
    while not isinstance(venv, DummyVecEnv):
        venv = venv.venv
    return venv


def test_one_hot_view_equals_minigrids_own_wrapper():
    from minigrid.wrappers import ImgObsWrapper, OneHotPartialObsWrapper

    ours = OneHotView(gym.make("MiniGrid-KeyCorridorS3R1-v0"))
    theirs = ImgObsWrapper(OneHotPartialObsWrapper(gym.make("MiniGrid-KeyCorridorS3R1-v0")))
    a, _ = ours.reset(seed=4)
    b, _ = theirs.reset(seed=4)
    rng = np.random.default_rng(0)
    for step in range(300):
        assert a.dtype == np.float32 and a.shape == (20, 7, 7)
        assert np.array_equal(a, b.transpose(2, 0, 1).astype(np.float32)), step
        action = int(rng.integers(0, 7))
        a, _, done, cut, _ = ours.step(action)
        b, *_ = theirs.step(action)
        if done or cut:
            a, _ = ours.reset(seed=step)
            b, _ = theirs.reset(seed=step)
    assert a.sum(axis=0).max() == 3  # object, colour and state: one bit each per visible cell


def test_vectorised_one_hot_equals_minigrids_wrapper_terminal_observations_too():
    from minigrid.wrappers import ImgObsWrapper, OneHotPartialObsWrapper

    venv = make_vec_env(f"minigrid:{TASK}", num_envs=2, seed=0, num_levels=5)
    dummy = _dummy(venv)
    theirs = [ImgObsWrapper(OneHotPartialObsWrapper(gym.make(TASK))) for _ in range(2)]

    def expected(k: int) -> np.ndarray:  # MiniGrid's own encoding of env k's current view
        view = dummy.envs[k].unwrapped.gen_obs()
        return theirs[k].observation(theirs[k].env.observation(view)).transpose(2, 0, 1)

    obs = venv.reset()
    rng, ended = np.random.default_rng(1), 0
    for step in range(250):
        assert obs.dtype == np.float32 and obs.shape == (2, 20, 7, 7) and obs.flags["C_CONTIGUOUS"]
        for k in range(2):
            assert np.array_equal(obs[k], expected(k)), step
        obs, _, done, infos = venv.step(rng.integers(0, 3, 2))
        for k in np.flatnonzero(done):
            last = infos[k]["terminal_observation"]  # encoded too: one bit per field in every cell
            assert last.shape == (20, 7, 7) and last.dtype == np.float32
            assert (last.sum(axis=0) == 3).all()
            ended += 1
    assert ended > 0  # 100-step episodes: both envs ended at least once


def test_level_ranges_keep_held_out_levels_unseen():
    assert level_range(25) == (0, 25)
    assert level_range(25, 100) == (100, 125)
    assert level_range(0) == (0, HELD_OUT_START)  # unlimited training stops below held-out levels
    held = evaluation_levels({"env": f"minigrid:{TASK}", "num_levels": 25}, "held-out")
    assert level_range(*held) == (HELD_OUT_START, LEVEL_SPACE)
    assert level_range(*evaluation_levels({"env": f"minigrid:{TASK}"}, "all")) == (0, LEVEL_SPACE)
    check_training_levels(25, 0)
    with pytest.raises(UserError, match="below"):
        check_training_levels(10, HELD_OUT_START - 5)
    with pytest.raises(UserError):
        level_range(-1)


def test_training_levels_replay_and_same_seed_same_levels():
    env = make_minigrid(TASK, num_levels=3)
    seen = set()
    for i in range(40):
        obs, info = env.reset(seed=i if i % 7 == 0 else None)
        seen.add(info["level_seed"])
    assert seen == {0, 1, 2}
    # A level is a layout: two copies on one level start identically.
    a, _ = make_minigrid(TASK, num_levels=1, start_level=5).reset(seed=0)
    b, _ = make_minigrid(TASK, num_levels=1, start_level=5).reset(seed=99)
    assert np.array_equal(a, b)

    def levels(seed: int) -> list[int]:
        env = make_minigrid(TASK)
        return [env.reset(seed=seed if k == 0 else None)[1]["level_seed"] for k in range(10)]

    assert levels(3) == levels(3) and levels(3) != levels(4)


def test_vec_env_and_evaluation_level_sets():
    venv = make_vec_env(f"minigrid:{TASK}", num_envs=2, seed=0, num_levels=4)
    assert venv.reset().shape == (2, 20, 7, 7)
    meta = {"env": f"minigrid:{TASK}", "preset": {"name": "smoke"}, "num_levels": 4, "start_level": 0}

    def played(levels: str, steps: int = 250) -> set[int]:
        env = eval_env(meta, levels=levels, seed=1, n_envs=2)
        env.reset()
        dummy, rng, out = _dummy(env), np.random.default_rng(0), set()
        out |= {i["level_seed"] for i in dummy.reset_infos}
        for _ in range(steps):
            _, _, done, _ = env.step(rng.integers(0, 3, 2))
            out |= {dummy.reset_infos[k]["level_seed"] for k in np.flatnonzero(done)}
        return out

    assert played("train") <= {0, 1, 2, 3}
    held = played("held-out")
    assert held and min(held) >= HELD_OUT_START


def test_ids_short_and_full_and_unknown():
    assert resolve_minigrid_id("DoorKey-6x6") == "MiniGrid-DoorKey-6x6-v0"
    assert str(parse_env_id("minigrid:MiniGrid-LavaGapS6-v0")) == "minigrid:MiniGrid-LavaGapS6-v0"
    assert parse_env_id("minigrid:LavaGapS6").name == "MiniGrid-LavaGapS6-v0"  # per-env presets use it
    with pytest.raises(UnknownNameError, match="MiniGrid-DoorKey-6x6-v0"):
        parse_env_id("minigrid:DoorKey-99x99")


def test_the_lean_minigrid_vector_returns_what_sb3s_dummy_vec_env_does():
    # Same envs, seeds and actions: observations, rewards, dones and infos (terminal
    # observations, TimeLimit.truncated, level seeds) equal, and nothing returned is shared.
    from minigrid.wrappers import ImgObsWrapper

    from evo_ensembles.envs.minigrid import LevelSeeds, MiniGridVecEnv

    def envs():
        return [lambda: LevelSeeds(ImgObsWrapper(gym.make(TASK, max_steps=20)), 0, 5) for _ in range(3)]

    lean, theirs = MiniGridVecEnv(envs()), DummyVecEnv(envs())
    lean.seed(7)
    theirs.seed(7)
    a, b = lean.reset(), theirs.reset()
    assert np.array_equal(a, b)
    rng, ended = np.random.default_rng(0), 0
    for _ in range(60):
        acts = rng.integers(0, 3, 3)
        (oa, ra, da, ia), (ob, rb, db, ib) = lean.step(acts), theirs.step(acts)
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and np.array_equal(da, db)
        assert [sorted(i) for i in ia] == [sorted(i) for i in ib]
        for x, y in zip(ia, ib):
            assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]
            if "terminal_observation" in y:
                assert np.array_equal(x["terminal_observation"], y["terminal_observation"])
                ended += 1
        assert oa is not lean.buf_obs[None]
        oa[:] = 0  # the caller may write into what it got
    assert ended > 0 and ia[0] is not lean.buf_infos[0]
