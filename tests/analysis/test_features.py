import pytest
import torch

from evo_ensembles.analysis import (
    TransformParams,
    apply_transform,
    plot_image_grid,
    random_transform_params,
    unit_layers,
    visualise_unit,
)
from evo_ensembles.errors import UserError


def test_same_seed_same_image_other_seed_other_image(conv_net):
    net = conv_net()
    a = visualise_unit(net, "3", 2, (1, 16, 16), steps=20, seed=0)
    b = visualise_unit(net, "3", 2, (1, 16, 16), steps=20, seed=0)
    c = visualise_unit(net, "3", 2, (1, 16, 16), steps=20, seed=1)
    assert a.image.shape == (1, 16, 16)
    assert torch.equal(a.image, b.image) and a.trace == b.trace
    assert not torch.equal(a.image, c.image)
    assert len(a.trace) == 20 and 0 <= float(a.image.min()) and float(a.image.max()) <= 1


def test_optimisation_raises_the_unit_and_leaves_the_model_alone(conv_net):
    net = conv_net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    vis = visualise_unit(net, "8", 1, (1, 16, 16), steps=30, seed=0, mean=[0.5], std=[0.25])
    assert sum(vis.trace[-5:]) / 5 > sum(vis.trace[:5]) / 5  # a Linear unit: one output feature
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net._forward_hooks and not net[8]._forward_hooks


def test_transform_params_stay_within_bounds():
    g = torch.Generator().manual_seed(0)
    draws = [random_transform_params(g) for _ in range(2000)]
    assert all(max(map(abs, p.shift1)) <= 8 and max(map(abs, p.shift2)) <= 4 for p in draws)
    assert all(0.95 <= p.scale <= 1.05 and -5 <= p.angle <= 5 for p in draws)
    # The bounds are reached, not just respected: the draws cover the range.
    assert {p.shift1[0] for p in draws} == set(range(-8, 9))
    assert {p.shift2[1] for p in draws} == set(range(-4, 5))
    assert min(p.scale for p in draws) < 0.955 and max(p.scale for p in draws) > 1.045
    assert min(p.angle for p in draws) < -4.9 and max(p.angle for p in draws) > 4.9
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert random_transform_params(g1) == random_transform_params(g2)


def test_transform_keeps_shape_and_identity_is_exact():
    x = torch.rand(1, 3, 16, 16)
    same = apply_transform(x, TransformParams((0, 0), 1.0, 0.0, (0, 0)))
    assert torch.allclose(same, x, atol=1e-6)
    shifted = apply_transform(x, TransformParams((2, 1), 1.0, 0.0, (0, 0)))
    assert shifted.shape == x.shape
    assert torch.allclose(shifted[..., 1:, 2:], x[..., :-1, :-2], atol=1e-6)  # content moved right/down
    moved = apply_transform(x, TransformParams((-8, 8), 1.05, -5.0, (4, -4)))
    assert moved.shape == x.shape and torch.isfinite(moved).all()


def test_unknown_layer_is_one_line_listing_the_layers(conv_net):
    with pytest.raises(UserError) as e:
        visualise_unit(conv_net(), "fc9", 0, (1, 16, 16), steps=2)
    msg = str(e.value)
    assert "\n" not in msg and "'fc9'" in msg
    assert all(name in msg for name in unit_layers(conv_net()))  # "0", "3", "8"
    with pytest.raises(UserError, match="has 4 units"):
        visualise_unit(conv_net(), "0", 4, (1, 16, 16), steps=2)


def test_image_grid_is_written(tmp_path):
    imgs = [torch.rand(1, 8, 8), torch.rand(3, 8, 8), torch.zeros(8, 8)]
    plot_image_grid(tmp_path / "grid.png", [imgs, imgs[:2]], row_labels=["a", "b"], col_labels=["1"])
    assert (tmp_path / "grid.png").stat().st_size > 0
