import pytest
import torch
from torch import nn

from evo_ensembles.errors import UserError
from evo_ensembles.subnet import (
    check_partition,
    complement,
    eligible_parameters,
    mask_density,
    mask_distance,
    pack_mask,
    partition_masks,
    sample_mask,
    total_diversity,
    unpack_mask,
)


def test_eligible_defaults_are_conv_and_linear_weights(tiny_net):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    assert list(eligible_parameters(net)) == ["0.weight", "3.weight"]
    with_bias = eligible_parameters(net, include_bias=True, include_norm=True)
    assert set(with_bias) == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"}
    assert list(eligible_parameters(net, exclude=("3",))) == ["0.weight"]


@pytest.mark.parametrize("density", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("scope", ["local", "global"])
def test_sample_mask_hits_density(tiny_net, density, scope):
    params = eligible_parameters(tiny_net())
    mask = sample_mask(params, density, seed=3, scope=scope)
    assert abs(mask_density(mask) - density) < 2e-3
    assert all(m.dtype == torch.bool and m.shape == params[n].shape for n, m in mask.items())
    if scope == "local":
        for m in mask.values():
            assert abs(m.float().mean().item() - density) <= 1.0 / m.numel() + 1e-9


def test_same_seed_same_mask_and_different_seed_differs(tiny_net):
    params = eligible_parameters(tiny_net())
    a, b = sample_mask(params, 0.5, seed=1), sample_mask(params, 0.5, seed=1)
    c = sample_mask(params, 0.5, seed=2)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_structured_mask_keeps_whole_rows(tiny_net):
    params = eligible_parameters(tiny_net())
    mask = sample_mask(params, 0.5, seed=0, structured=True)
    for m in mask.values():
        rows = m.reshape(m.shape[0], -1)
        assert bool((rows.all(1) | (~rows).all(1)).all())
    glob = sample_mask(params, 0.5, seed=0, structured=True, scope="global")
    assert abs(mask_density(glob) - 0.5) < 0.05


def test_magnitude_selection_keeps_largest():
    w = nn.Parameter(torch.tensor([[0.1, -3.0], [2.0, 0.05]]))
    mask = sample_mask({"w": w}, 0.5, selection="magnitude")
    assert mask["w"].tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize("k", [2, 3, 6])
@pytest.mark.parametrize("structured", [False, True])
def test_partition_disjoint_covering_balanced(tiny_net, k, structured):
    params = eligible_parameters(tiny_net())
    masks = partition_masks(params, k, seed=5, structured=structured)
    assert len(masks) == k
    check_partition(masks)  # raises on overlap or gap
    for n in params:
        total = sum(m[n].to(torch.int64) for m in masks)
        assert bool((total == 1).all())
    if not structured:
        for m in masks:
            assert abs(mask_density(m) - 1 / k) < 0.01


def test_two_way_partition_is_mask_and_anti_mask(tiny_net):
    params = eligible_parameters(tiny_net())
    a, b = partition_masks(params, 2, seed=9)
    anti = complement(a)
    assert all(torch.equal(anti[n], b[n]) for n in a)


def test_check_partition_detects_overlap(tiny_net):
    params = eligible_parameters(tiny_net())
    a = sample_mask(params, 0.6, seed=0)
    with pytest.raises(ValueError):
        check_partition([a, sample_mask(params, 0.6, seed=1)])


def test_bad_arguments_raise_user_errors(tiny_net):
    params = eligible_parameters(tiny_net())
    for d in (0.0, -0.1, 1.5):
        with pytest.raises(UserError):
            sample_mask(params, d, seed=0)
    with pytest.raises(UserError):
        partition_masks(params, 1, seed=0)
    with pytest.raises(UserError):
        sample_mask(params, 0.5)  # random without a seed


def test_pack_unpack_roundtrip_uses_bits(tiny_net):
    params = eligible_parameters(tiny_net())
    mask = sample_mask(params, 0.3, seed=4)
    packed = pack_mask(mask)
    assert all(p.dtype == torch.uint8 and p.numel() == (mask[n].numel() + 7) // 8 for n, p in packed.items())
    back = unpack_mask(packed, {n: p.shape for n, p in params.items()})
    assert all(torch.equal(back[n], mask[n]) for n in mask)


def test_mask_distance_and_total_diversity():
    a = {"w": torch.tensor([True, True, False, False])}
    b = {"w": torch.tensor([True, False, True, False])}
    assert mask_distance(a, b) == pytest.approx(2 ** 0.5)  # sqrt(|a-b| summed = 2)
    assert mask_distance(a, a) == 0
    assert total_diversity([a, b]) == pytest.approx(2 * 2 ** 0.5)
