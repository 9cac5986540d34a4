import pytest
import torch
from torch import nn

from evo_ensembles.errors import CheckpointError
from evo_ensembles.train import load_state_into, load_tensors, read_meta, save_model


def test_model_roundtrip(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    save_model(tmp_path / "m.safetensors", net, {"model": "custom", "note": 1})
    assert read_meta(tmp_path / "m.safetensors") == {"model": "custom", "note": 1}
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    load_state_into(other, load_tensors(tmp_path / "m.safetensors"), "m")
    x = torch.randn(5, 3)
    assert torch.equal(net(x), other(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_mismatch_is_a_clear_error(tmp_path):
    save_model(tmp_path / "m.safetensors", nn.Linear(3, 4), {})
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_state_into(nn.Linear(3, 5), load_tensors(tmp_path / "m.safetensors"), "m")
    with pytest.raises(CheckpointError, match="missing"):
        load_state_into(nn.Sequential(nn.Linear(3, 4)), load_tensors(tmp_path / "m.safetensors"), "m")


def test_unreadable_or_missing_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        load_tensors(bad)
    with pytest.raises(CheckpointError):
        load_tensors(tmp_path / "nope.safetensors")
