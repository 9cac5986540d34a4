"""Training cost of the subnetwork methods: parent dense, children at their density (SPEC §5)."""

import pytest
import torch

from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.flops import layer_flops
from evo_ensembles.models import build_model
from evo_ensembles.recipes.common import subnetwork_cost
from evo_ensembles.recipes.sparse import tuning_phases
from evo_ensembles.subnet import ChildSpec


def test_tuning_phases_of_one_shot_iterative_and_stochastic_children():
    assert tuning_phases(ChildSpec(kind="prune", mask_seed=0, density=0.5), 3) == [(3.0, 0.0)]
    it = tuning_phases(ChildSpec(kind="prune", mask_seed=0, density=0.5, prune_epochs=2), 3)
    assert it == [(1.0, 0.5), (1.0, 0.0), (1.0, 0.0)]
    st = tuning_phases(ChildSpec(kind="stochastic", mask_seed=0, density=0.5, anneal="temperature", t0=0.6,
                                 anneal_epochs=1), 3)
    assert st == [(1.0, pytest.approx(0.3)), (2.0, 0.0)]


def test_parent_plus_children_at_half_density_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=g)
    part = ArrayData(x, torch.randint(0, 10, (64,), generator=g))
    data = DataSplits("random", part, part, part, 10, (1, 28, 28), (0.0,), (1.0,))
    parent = build_model("lenet-5", (1, 28, 28), 10, seed=0)
    mask = {"conv2.weight": torch.rand(parent.conv2.weight.shape, generator=g) < 0.5}
    d = float(mask["conv2.weight"].float().mean())
    meta = {"train": {"epochs": 8, "batch_size": 16}}
    cost = subnetwork_cost(parent, meta, data, 16, [(mask, [(2.0, 0.0)]), (mask, [(2.0, 0.0)])])
    per_layer = layer_flops(parent, x[:16], part.y[:16])
    dense = sum(per_layer.values())
    child = dense - (1 - d) * per_layer["conv2"]
    assert cost["epochs"] == 12
    assert cost["training_flops"] == pytest.approx((8 * dense + 4 * child) / (12 * dense))
    assert subnetwork_cost(parent, {}, data, 16, [])["training_flops"] is None  # no training record
