"""FLOP counting: a real step through FlopCounterMode, density-aware, state left alone."""

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.flops import (
    TrainingCost,
    layer_flops,
    mask_densities,
    rigl_update_flops,
    step_flops,
)
from evo_ensembles.models import build_model


def batch(shape=(1, 28, 28), n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_a_layer_at_20_percent_density_counts_20_percent_of_its_dense_flops():
    net = build_model("lenet-5", (1, 28, 28), 10, seed=0)
    x, y = batch()
    dense, per_layer = step_flops(net, x, y), layer_flops(net, x, y)
    assert dense == pytest.approx(sum(per_layer.values()))  # every FLOP belongs to a layer here
    sparse = step_flops(net, x, y, densities={"conv2": 0.2})
    assert dense - sparse == pytest.approx(0.8 * per_layer["conv2"])
    # by hand: conv2's forward is 2·B·C_out·H_out·W_out·C_in·k·k; its backward twice that
    fwd = 2 * 8 * 16 * 8 * 8 * 6 * 5 * 5  # 28 -> conv 24 -> pool 12 -> conv 8
    assert per_layer["conv2"] == 3 * fwd


def test_densities_from_a_mask_and_bad_names_are_refused():
    net = build_model("lenet-5", (1, 28, 28), 10, seed=0)
    mask = {"fc1.weight": torch.rand(net.fc1.weight.shape) < 0.25}
    d = mask_densities(mask)
    assert list(d) == ["fc1"] and d["fc1"] == pytest.approx(float(mask["fc1.weight"].float().mean()))
    x, y = batch()
    with pytest.raises(UserError, match="no module"):
        step_flops(net, x, y, densities={"fc9": 0.5})
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        step_flops(net, x, y, densities={"fc1": 1.5})


def test_counting_leaves_the_model_as_it_was():
    net = build_model("resnet-8", (3, 16, 16), 10, seed=0).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    step_flops(net, *batch((3, 16, 16)))
    assert not net.training and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN statistics too
    assert torch.equal(rng, torch.get_rng_state())


def test_rigl_extra_is_one_dense_minus_one_sparse_forward_and_cost_is_relative():
    assert rigl_update_flops(300.0, 120.0) == pytest.approx(60.0)
    assert rigl_update_flops(100.0, 100.0) == 0.0
    cost = TrainingCost(flops=85.0, reference_flops=100.0, epochs=200, reference_epochs=200)
    assert cost.relative == pytest.approx(0.85) and cost.to_dict()["relative"] == pytest.approx(0.85)
