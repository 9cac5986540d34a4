"""Crash at every checkpoint write: the rerun resumes to the uninterrupted result, or refuses.

A fault hook replaces ``os.replace`` (the rename that publishes every checkpoint) and raises
at the k-th write; the rerun then runs without faults.
"""

import dataclasses
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from evo_ensembles import TrainConfig, fit
from evo_ensembles.errors import CheckpointError
from evo_ensembles.train import load_tensors, read_meta
from evo_ensembles.train.checkpoint import load_train_state

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")


class Crash(Exception):
    pass


def crash_at(monkeypatch, k, where=lambda dst: True):
    """Raise :class:`Crash` at the k-th checkpoint publication that ``where`` selects."""
    real, seen = os.replace, []

    def replace(src, dst, *a, **kw):
        if where(str(dst)):
            seen.append(str(dst))
            if len(seen) == k:
                raise Crash(dst)
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    return seen


def _weights(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def test_parent_training_resumes_identically_after_a_crash_at_any_write(tiny_net, tiny_data, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs=3, batch_size=16, seed=4, schedule="one-cycle", lr=0.01)
    whole = tiny_net()
    fit(whole, tiny_data, cfg, progress=False)
    for k in (1, 2, 3):  # the three epoch-end states
        ckpt = tmp_path / f"k{k}"
        with monkeypatch.context() as m:
            crash_at(m, k)
            with pytest.raises(Crash):
                fit(tiny_net(), tiny_data, cfg, progress=False, checkpoint_dir=ckpt)
        resumed = tiny_net()
        fit(resumed, tiny_data, cfg, progress=False, checkpoint_dir=ckpt)
        assert all(torch.equal(a, b) for a, b in zip(_weights(whole), _weights(resumed))), k


def test_an_older_two_file_resume_state_is_refused_and_an_older_model_still_loads(tiny_net, tmp_path):
    net = tiny_net()
    state = {f"model.{k}": v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "train_state.safetensors"))
    (tmp_path / "train_state.json").write_text(json.dumps({"epoch": 2, "config": {}, "optimizer": {}}))
    with pytest.raises(CheckpointError, match="older two-file format"):
        load_train_state(tmp_path, net, torch.optim.SGD(net.parameters(), lr=0.1))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "old.safetensors"))
    (tmp_path / "old.json").write_text(json.dumps({"model": "tiny"}))
    assert read_meta(tmp_path / "old.safetensors") == {"model": "tiny"}
    assert set(load_tensors(tmp_path / "old.safetensors")) == set(net.state_dict())


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="Fashion-MNIST not installed")
def test_a_sparse_run_crashed_at_any_checkpoint_write_finishes_identically(tmp_path, monkeypatch):
    from evo_ensembles import load_dataset
    from evo_ensembles.config.sparse import SparseRunConfig
    from evo_ensembles.recipes.sparse import run_sparse

    data = load_dataset("fashion-mnist", subset=200, seed=0)
    cfg = SparseRunConfig(model="lenet-5", parent_epochs=1, children=2, child_epochs=1, subset=200)
    in_ckpts = lambda dst: "checkpoints" in dst  # noqa: E731
    with monkeypatch.context() as m:
        writes = crash_at(m, 0, in_ckpts)  # k=0: count the writes of an uninterrupted run
        ref = run_sparse(cfg, tmp_path / "ref", progress=False, data=data)
    assert len(writes) == 6  # parent state + parent, then per child: state + child
    children = sorted((tmp_path / "ref" / "checkpoints" / "children").glob("child_*.safetensors"))
    for k in range(1, len(writes) + 1):
        out = tmp_path / f"k{k}"
        with monkeypatch.context() as m:
            crash_at(m, k, in_ckpts)
            with pytest.raises(Crash):
                run_sparse(cfg, out, progress=False, data=data)
        res = run_sparse(cfg, out, progress=False, data=data)
        assert res["ensemble"] == ref["ensemble"] and res["members"][0]["accuracy"] == ref["members"][0]["accuracy"]
        for c in children:
            a, b = load_tensors(c), load_tensors(out / "checkpoints" / "children" / c.name)
            assert all(torch.equal(a[n], b[n]) for n in a), (k, c.name)


def test_ppo_training_crashed_at_any_archive_write_never_resumes_a_mismatched_state(tmp_path, monkeypatch):
    from stable_baselines3 import PPO

    from evo_ensembles.agents import RLTrainConfig, train_agent
    from evo_ensembles.agents.train import read_agent_record

    cfg = RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=192, checkpoint_every=64)
    zips = lambda dst: dst.endswith(".zip")  # noqa: E731
    for k in (1, 2, 4):
        out = tmp_path / f"k{k}"
        with monkeypatch.context() as m:
            crash_at(m, k, zips)
            with pytest.raises(Crash):
                train_agent(cfg, out, progress=False)
        latest = out / "checkpoints" / "latest.zip"
        if latest.exists():  # what a rerun resumes from: the record inside matches the weights
            record = read_agent_record(latest)
            assert PPO.load(latest).num_timesteps == record["timesteps_done"]
        info = train_agent(dataclasses.replace(cfg), out, progress=False)
        assert info["complete"] and info["timesteps_done"] >= 192
        assert read_agent_record(out / "agent.zip")["timesteps_done"] == info["timesteps_done"]
