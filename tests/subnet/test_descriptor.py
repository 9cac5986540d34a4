import json

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.subnet import ChildSpec, check_partition, eligible_parameters, make_child_specs


def test_partitioned_specs_pair_up_and_regenerate_disjoint_masks(tiny_net):
    specs = make_child_specs(6, 1 / 3, partition=True, k=3, seed=1)
    assert [s.part for s in specs] == [0, 1, 2, 0, 1, 2]
    assert specs[0].mask_seed == specs[2].mask_seed != specs[3].mask_seed
    params = eligible_parameters(tiny_net())
    check_partition([s.mask(params) for s in specs[:3]])


def test_same_seed_same_specs_and_masks(tiny_net):
    params = eligible_parameters(tiny_net())
    a = make_child_specs(4, 0.5, seed=11)
    b = make_child_specs(4, 0.5, seed=11)
    assert a == b
    assert len({s.mask_seed for s in a}) == 4
    for s, t in zip(a, b):
        ma, mb = s.mask(params), t.mask(params)
        assert all(torch.equal(ma[n], mb[n]) for n in ma)
    assert make_child_specs(4, 0.5, seed=12) != a


def test_descriptor_json_roundtrip():
    spec = make_child_specs(2, 0.5, partition=True, seed=3)[1]
    back = ChildSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec


def test_bad_specs():
    with pytest.raises(UserError):
        make_child_specs(4, 0.3, partition=True, k=2, seed=0)  # density must be 1/k
    with pytest.raises(UserError):
        make_child_specs(0, 0.5)
    with pytest.raises(UserError):
        ChildSpec(kind="prune", mask_seed=0, density=0.0)
    with pytest.raises(UserError):
        ChildSpec.from_dict({"kind": "prune", "mask_seed": 0, "density": 0.5, "bogus": 1})
