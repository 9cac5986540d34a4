import numpy as np
import pytest
import torch
from torch import nn

from evo_ensembles.analysis import (
    dataset_loss,
    filter_normalised_direction,
    landscape_directions,
    loss_surface,
    plot_landscapes,
)
from evo_ensembles.errors import UserError
from evo_ensembles.subnet import apply_mask, eligible_parameters, sample_mask


def test_each_direction_filter_has_its_weight_filters_norm(conv_net):
    net = conv_net()
    d = filter_normalised_direction(net, generator=torch.Generator().manual_seed(0))
    assert list(d) == [n for n, _ in net.named_parameters()]
    weights = eligible_parameters(net)
    for name, p in net.named_parameters():
        if name in weights:
            rows_d, rows_w = d[name].reshape(p.shape[0], -1), p.detach().reshape(p.shape[0], -1)
            assert torch.allclose(rows_d.norm(dim=1), rows_w.norm(dim=1), rtol=1e-5)
        else:  # biases, BatchNorm: not moved
            assert not d[name].any()


def test_same_seed_gives_comparable_directions_and_masks_are_respected(conv_net):
    parent = conv_net()
    child = conv_net()
    mask = sample_mask(eligible_parameters(child), 0.5, seed=0)
    apply_mask(eligible_parameters(child), mask)
    dp, _ = landscape_directions(parent, seed=4)
    dc, _ = landscape_directions(child, seed=4, mask=mask)
    for name in mask:
        raw_p = dp[name].reshape(dp[name].shape[0], -1)
        raw_c = dc[name].reshape(dc[name].shape[0], -1)
        keep = mask[name].reshape(raw_c.shape)
        assert not raw_c[~keep].any()  # the walk stays inside the subnetwork
        # Same raw Gaussian draw: kept entries are proportional per filter.
        for r in range(raw_p.shape[0]):
            k = keep[r]
            if k.sum() >= 2 and raw_c[r].norm() > 0:
                ratio = raw_c[r][k] / raw_p[r][k]
                assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)


def test_surface_at_origin_is_the_models_loss_and_weights_are_restored(conv_net, images):
    net = conv_net()
    net.train()
    x, y = images
    before = {k: v.clone() for k, v in net.state_dict().items()}
    dirs = landscape_directions(net, seed=0)
    alphas, betas = np.array([-0.5, 0.0, 0.5]), np.array([0.0, 1.0])
    surf = loss_surface(net, dirs, x, y, alphas=alphas, betas=betas, batch_size=5)
    assert surf.shape == (3, 2) and np.isfinite(surf).all()
    net.eval()
    assert surf[1, 0] == pytest.approx(dataset_loss(net, x, y), rel=1e-6)
    expected = nn.functional.cross_entropy(net(x), y).item()
    assert surf[1, 0] == pytest.approx(expected, rel=1e-5)
    net.train()
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # bit-exact
    assert surf[0, 0] != surf[1, 0] and surf[1, 1] != surf[1, 0]


def test_weights_restored_even_when_evaluation_raises(conv_net, images):
    net = conv_net()
    x, y = images
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bad_y = torch.full_like(y, 7)  # out of range for 3 classes: cross_entropy raises
    with pytest.raises((IndexError, RuntimeError)):
        loss_surface(net, landscape_directions(net, seed=0), x, bad_y, alphas=[0.3], betas=[0.3])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_direction_checks(conv_net, images):
    net = conv_net()
    x, y = images
    with pytest.raises(UserError, match="does not have"):
        loss_surface(net, ({"nope": torch.zeros(1)}, {}), x, y, alphas=[0.0], betas=[0.0])


def test_plot_shares_one_scale(tmp_path):
    a, b = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    surf = {"parent": np.add.outer(a**2, b**2) + 0.1, "pruned": np.add.outer(a**2, b**2) + 1.0,
            "tuned": np.add.outer(a**2, b**2) + 0.2}
    for log in (True, False):
        plot_landscapes(tmp_path / f"l{log}.png", surf, a, b, title="t", log=log)
        assert (tmp_path / f"l{log}.png").stat().st_size > 0
    with pytest.raises(UserError, match="expected"):
        plot_landscapes(tmp_path / "x.png", {"p": np.zeros((2, 2))}, a, b)
