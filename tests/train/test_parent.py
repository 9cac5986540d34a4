"""Saved models back to Python: ``load_model`` with and without the data set."""

import pytest
import torch

import evo_ensembles as ee
from evo_ensembles.errors import CheckpointError
from evo_ensembles.train.parent import load_model_checkpoint, model_meta


def test_load_model_round_trip_with_and_without_data(tmp_path):
    data = ee.load_dataset("fashion-mnist", subset=200, seed=0)
    net = ee.build_model("lenet-s", data.input_shape, data.num_classes, seed=3)
    path = tmp_path / "net.safetensors"
    ee.save_model(path, net, model_meta("lenet-s", data))
    x = data.test.x[:8]
    for back in (ee.load_model(path), ee.load_model(path, data)):
        assert not back.training
        assert torch.equal(back(x), net.eval()(x))
    _, meta = load_model_checkpoint(path)
    assert meta["model"] == "lenet-s" and meta["num_classes"] == 10


def test_load_model_refuses_what_it_cannot_rebuild(tmp_path):
    net = ee.build_model("lenet-s", (1, 28, 28), 10, seed=0)
    bare = tmp_path / "bare.safetensors"
    ee.save_model(bare, net, {"model": "lenet-s"})
    with pytest.raises(CheckpointError, match="data="):
        ee.load_model(bare)
    with pytest.raises(CheckpointError, match="not 'mlp'"):
        ee.load_model(bare, model_name="mlp")
    with pytest.raises(CheckpointError, match="not found"):
        ee.load_model(tmp_path / "missing.safetensors")
