"""The pruning scope (``ChildSpec.dense_layers``): which tensors no child prunes or perturbs."""

import json
from dataclasses import fields

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.models import build_model
from evo_ensembles.subnet import (
    ChildSpec,
    anneal_plan,
    check_partition,
    eligible_parameters,
    make_child_specs,
    mask_density,
    noise_delta,
    resolve_dense_layers,
    subnet_parameters,
)

DENSE = ("first", "last")


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return build_model("lenet-5", (1, 28, 28), 10)


def test_default_scope_leaves_descriptors_unchanged():
    spec = make_child_specs(2, 0.5, partition=True, seed=3)[1]
    assert spec.dense_layers == ()
    # Byte-identical to a descriptor written before the option existed, which still loads.
    assert set(spec.to_dict()) == {f.name for f in fields(ChildSpec)} - {"dense_layers"}
    assert ChildSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_scoped_descriptor_roundtrips_through_json():
    spec = make_child_specs(1, 0.5, seed=3, dense_layers=["first", "fc3"])[0]
    assert spec.dense_layers == ("first", "fc3")
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["dense_layers"] == ["first", "fc3"]
    assert ChildSpec.from_dict(d) == spec


@pytest.mark.parametrize("bad", ["first", None, ["first", ""], [3]])
def test_malformed_dense_layers_are_refused(bad):
    with pytest.raises(UserError, match="dense_layers"):
        ChildSpec("prune", mask_seed=0, density=0.5, dense_layers=bad)


def test_first_last_and_prefixes_resolve_on_lenet(lenet):
    params = eligible_parameters(lenet)
    assert list(params) == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"]
    assert resolve_dense_layers(params, ("first",)) == {"conv1.weight"}
    assert resolve_dense_layers(params, ("last",)) == {"fc3.weight"}
    assert resolve_dense_layers(params, DENSE) == {"conv1.weight", "fc3.weight"}
    assert resolve_dense_layers(params, ("fc2", "conv2.weight")) == {"fc2.weight", "conv2.weight"}
    assert resolve_dense_layers(params, ()) == set()
    assert list(subnet_parameters(params, DENSE)) == ["conv2.weight", "fc1.weight", "fc2.weight"]
    # With biases eligible, "first"/"last" are whole layers, not just their last tensor.
    with_bias = eligible_parameters(lenet, include_bias=True)
    assert resolve_dense_layers(with_bias, ("last",)) == {"fc3.weight", "fc3.bias"}
    assert resolve_dense_layers(with_bias, ("first",)) == {"conv1.weight", "conv1.bias"}


@pytest.mark.parametrize("bad", [("nope",), ("fc",), ("first", "conv")])
def test_unknown_layer_is_a_user_error_naming_it(lenet, bad):
    with pytest.raises(UserError, match="matches no prunable tensor"):
        resolve_dense_layers(eligible_parameters(lenet), bad)


def test_a_scope_with_nothing_left_to_prune_is_refused(lenet):
    with pytest.raises(UserError, match="every prunable tensor"):
        resolve_dense_layers(eligible_parameters(lenet), ("conv1", "conv2", "fc1", "fc2", "fc3"))


def _unscoped(spec):
    return ChildSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "dense_layers"})


@pytest.mark.parametrize("kw", [
    {"partition": False, "density": 0.3},
    {"partition": False, "density": 0.3, "structured": True},
    {"partition": False, "density": 0.3, "selection": "magnitude"},
    {"partition": True, "density": 1 / 3, "k": 3},
    {"partition": True, "density": 0.5, "structured": True},
])
def test_layerwise_masks_of_the_other_tensors_are_the_unscoped_childs(lenet, kw):
    params = eligible_parameters(lenet)
    specs = make_child_specs(3, seed=5, dense_layers=DENSE, **kw)
    for spec in specs:
        scoped, full = spec.mask(params), _unscoped(spec).mask(params)
        assert set(scoped) == {"conv2.weight", "fc1.weight", "fc2.weight"}
        assert all(torch.equal(scoped[n], full[n]) for n in scoped)
    if kw["partition"]:  # still disjoint and covering, on the pruned tensors
        parts = [s.mask(params) for s in specs[: kw.get("k", 2)]]
        check_partition(parts)
        assert set(parts[0]) == set(subnet_parameters(params, DENSE))


@pytest.mark.parametrize("structured", [False, True])
def test_global_budget_is_spent_on_the_pruned_tensors_only(lenet, structured):
    params = eligible_parameters(lenet)
    spec = ChildSpec("prune", mask_seed=1, density=0.25, scope="global", structured=structured,
                     dense_layers=("last",))
    mask = spec.mask(params)
    assert "fc3.weight" not in mask and len(mask) == 4
    assert mask_density(mask) == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("anneal,k", [("temperature", None), ("random", None), ("random", 2), ("mog", None)])
def test_annealing_plans_skip_the_dense_layers(tiny_net, anneal, k):
    params = eligible_parameters(tiny_net())
    spec = ChildSpec("stochastic", mask_seed=4, density=0.5 if k else 0.3, k=k, anneal=anneal,
                     dense_layers=DENSE)
    plan, full = anneal_plan(spec, params, 10), anneal_plan(_unscoped(spec), params, 10)
    assert set(plan.target) == set(plan.start) == {"3.weight"}
    assert torch.equal(plan.target["3.weight"], full.target["3.weight"])
    assert torch.equal(plan.start["3.weight"], full.start["3.weight"])


def test_noise_skips_the_dense_layers_and_keeps_the_others_noise(tiny_net):
    params = eligible_parameters(tiny_net())
    spec = ChildSpec("noise", mask_seed=1, density=0.5, k=2, sigma=0.1, noise_seed=2, dense_layers=DENSE)
    delta, full = noise_delta(params, spec), noise_delta(params, _unscoped(spec))
    assert set(delta) == {"3.weight"} and torch.equal(delta["3.weight"], full["3.weight"])
