"""MIMO: M inputs stacked along channels, M heads; batch repetitions r and input sharing ρ."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evo_ensembles.baselines.common import MultiOutputEnsemble, reference_flops
from evo_ensembles.baselines.multi_input import MIMO, MIMOLoss, mimo, mimo_indices, to_mimo
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.errors import UserError
from evo_ensembles.models import build_model
from evo_ensembles.train import TrainConfig


def splits(n=64, shape=(1, 8, 8), classes=3, seed=0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)

    def part(k):
        x = torch.randn(k, *shape, generator=g)
        return ArrayData(x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long())
    return DataSplits("random", part(n), part(32), part(32), classes, shape, (0.0,), (1.0,))


def test_conv_first_model_widened_and_shapes(tiny_net):
    base = tiny_net()
    before = [p.detach().clone() for p in base.parameters()]
    net = to_mimo(base, 3, seed=0)
    assert isinstance(net.net[0], nn.Conv2d) and net.net[0].in_channels == 3 and net.net[0].out_channels == 4
    assert net.net[5].out_features == 9 and net.net[3] is not base[3]  # hidden layer copied, not shared
    assert net(torch.randn(5, 3, 1, 8, 8)).shape == (3, 5, 3)
    assert net(torch.randn(5, 1, 8, 8)).shape == (3, 5, 3)
    # The original is untouched.
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters()))
    assert base[0].in_channels == 1 and base[5].out_features == 3
    with pytest.raises(UserError, match="MIMO with 3 members"):
        net(torch.randn(5, 2, 1, 8, 8))


def test_linear_first_model_after_flatten_and_nested_resnet():
    net = to_mimo(build_model("mlp-16", (1, 8, 8), 4, seed=0), 2)
    assert net.net.fc1.in_features == 2 * 64 and net.net.fc2.out_features == 8
    assert net(torch.randn(3, 2, 1, 8, 8)).shape == (2, 3, 4)
    res = to_mimo(build_model("resnet-8", (3, 16, 16), 5, seed=0), 3)
    assert res.net.conv1.in_channels == 9 and res.net.fc.out_features == 15
    assert res(torch.randn(2, 3, 3, 16, 16)).shape == (3, 2, 5)
    with pytest.raises(UserError, match="input_shape"):
        to_mimo(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 2)
    single = to_mimo(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 2, input_shape=(4,))
    assert single(torch.randn(3, 4)).shape == (2, 3, 2)  # first layer is also the last


def test_test_time_input_goes_to_every_member(tiny_net):
    net = to_mimo(tiny_net(), 3, seed=0).eval()
    x = torch.randn(4, 1, 8, 8)
    shared = net(x)
    torch.testing.assert_close(shared, net(x.unsqueeze(1).expand(4, 3, 1, 8, 8)))
    assert not torch.allclose(shared[0], shared[1])  # different weights, different outputs
    # With every member's input slice and head made equal, the members agree: on a shared
    # input they differ only through their weights.
    with torch.no_grad():
        w = net.net[0].weight
        w.copy_(w[:, :1].repeat(1, 3, 1, 1))
        head = net.net[5]
        head.weight.copy_(head.weight[:3].repeat(3, 1))
        head.bias.copy_(head.bias[:3].repeat(3))
    out = net(x)
    torch.testing.assert_close(out[1], out[0])
    torch.testing.assert_close(out[2], out[0])


@pytest.mark.parametrize("r", [1, 3])
def test_input_sharing_one_gives_every_member_the_same_inputs(r):
    idx = mimo_indices(8, 4, r, 1.0, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (4, 8 * r)
    assert (idx == idx[0]).all()
    assert (idx[0].bincount(minlength=8) == r).all()
    assert not torch.equal(idx[0], torch.arange(8).repeat(r))  # but shuffled


@pytest.mark.parametrize("r", [1, 2])
def test_input_sharing_zero_gives_independent_permutations(r):
    g = torch.Generator().manual_seed(0)
    idx = mimo_indices(16, 3, r, 0.0, generator=g)
    assert idx.shape == (3, 16 * r)
    for row in idx:  # each member sees every example exactly r times ...
        assert (row.bincount(minlength=16) == r).all()
    for i in range(3):  # ... in its own order
        for j in range(i):
            assert (idx[i] != idx[j]).float().mean() > 0.5


def test_partial_sharing_shares_the_tail_of_the_main_shuffle():
    idx = mimo_indices(10, 3, 2, 0.25, generator=torch.Generator().manual_seed(1))
    k = int(20 * 0.75)  # shuffled again per member; the other 5 positions are shared
    assert (idx[:, k:] == idx[0, k:]).all()
    assert not (idx[:, :k] == idx[0, :k]).all()
    for row in idx:
        assert (row.bincount(minlength=10) == 2).all()
        assert torch.equal(row[:k].sort().values, idx[0, :k].sort().values)


class Recorder(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.members, self.inputs = net, net.members, []

    def forward(self, x):
        self.inputs.append(x)
        return self.net(x)


@pytest.mark.parametrize("rho,r", [(1.0, 2), (0.0, 3)])
def test_objective_feeds_r_times_the_batch_and_shares_inputs_per_rho(tiny_net, rho, r):
    model = Recorder(to_mimo(tiny_net(), 3, seed=0))
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    torch.manual_seed(0)
    loss, logits, targets = MIMOLoss(r, rho)(model, x, y)
    xs = model.inputs[0]
    assert xs.shape == (6 * r, 3, 1, 8, 8) and logits.shape == (3 * 6 * r, 3) and targets.shape == (3 * 6 * r,)
    same = [torch.equal(xs[:, i], xs[:, 0]) for i in range(3)]
    assert all(same) if rho == 1.0 else not any(same[1:])


def test_loss_is_the_sum_of_the_members_cross_entropies(tiny_net):
    net = to_mimo(tiny_net(), 3, seed=0)
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    # ρ = 1, r = 1: every member sees the whole batch (permuted): a hand computation.
    loss, _, _ = MIMOLoss(1, 1.0)(net, x, y)
    out = net(x)
    torch.testing.assert_close(loss, sum(F.cross_entropy(out[i], y) for i in range(3)))
    # General ρ, r: the same draws from the global generator give the same indices.
    torch.manual_seed(3)
    loss, _, targets = MIMOLoss(2, 0.5)(net, x, y)
    torch.manual_seed(3)
    idx = mimo_indices(5, 3, 2, 0.5)
    out = net(x[idx.T])
    torch.testing.assert_close(loss, sum(F.cross_entropy(out[i], y[idx[i]]) for i in range(3)))
    assert torch.equal(targets, y[idx].flatten())


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError):
        MIMOLoss(0, 0.5)
    with pytest.raises(UserError):
        MIMOLoss(2, 1.5)


def test_mimo_trains_members_apart_and_counts_repeated_flops():
    data = splits()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.01)
    res = mimo("mlp-16", data, cfg, members=3, batch_repetitions=2, device="cpu")
    assert isinstance(res.ensemble, MultiOutputEnsemble) and isinstance(res.ensemble.module, MIMO)
    assert len(res.ensemble) == 3 and res.epochs == 2.0 and len(res.history) == 2 and len(res.members) == 3
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape == (3, 32, 3)
    for i in range(3):
        for j in range(i):
            assert not torch.allclose(probs[i], probs[j], atol=1e-4)
    # Multiply-adds per example (mlp-16 on 1×8×8, 3 classes; a step is forward + weight
    # gradient, + input gradient for fc2): dense fc1 2·64·16 + fc2 3·16·3 = 2192. MIMO runs
    # r = 2 rows per example through fc1 with 3·64 inputs and fc2 with 3·3 outputs:
    # 2 · (2·192·16 + 3·16·9) = 13152, i.e. 6× the dense model.
    ratio = res.training_flops / reference_flops("mlp-16", data, cfg.epochs, cfg.batch_size)
    assert ratio == pytest.approx(13152 / 2192)
    again = mimo("mlp-16", data, cfg, members=3, batch_repetitions=2, device="cpu")
    assert torch.equal(again.ensemble.member_probs(data.test.x), probs)
