import torch

from evo_ensembles.analysis import member_saliency, saliency_image, smoothgrad


def test_smoothgrad_shape_finite_seeded_and_side_effect_free(conv_net, images):
    net = conv_net()
    net.train()
    x, y = images
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = smoothgrad(net, x, y, samples=5, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert a.shape == x.shape and torch.isfinite(a).all() and (a >= 0).all()
    assert a.abs().sum() > 0
    assert torch.equal(a, smoothgrad(net, x, y, samples=5, seed=0))
    assert not torch.equal(a, smoothgrad(net, x, y, samples=5, seed=1))
    assert net.training and all(p.grad is None for p in net.parameters())


def test_member_saliency_stacks_members(conv_net, images):
    x, y = images
    maps = member_saliency([conv_net(0), conv_net(1)], x[:3], y[:3], samples=3, batch_size=4)
    assert maps.shape == (2, 3, 1, 16, 16)
    assert not torch.equal(maps[0], maps[1])
    assert saliency_image(maps[0, 0]).shape == (16, 16)
