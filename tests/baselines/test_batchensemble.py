"""BatchEnsemble: rank-1 fast weights around a shared weight, one member per group of rows,
trained on a batch tiled M times."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evo_ensembles.baselines.batchensemble import (
    BatchEnsemble,
    BatchEnsembleConv2d,
    BatchEnsembleLinear,
    batch_ensemble,
    batch_ensemble_loss,
    to_batch_ensemble,
)
from evo_ensembles.baselines.common import MultiOutputEnsemble, reference_flops
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


def rank_one_layers(model):
    return [m for m in model.modules() if isinstance(m, (BatchEnsembleLinear, BatchEnsembleConv2d))]


def set_identity(be):
    with torch.no_grad():
        for layer in rank_one_layers(be):
            layer.r.fill_(1.0)
            layer.s.fill_(1.0)


@pytest.mark.parametrize("train_mode", [False, True])
def test_identity_fast_weights_reproduce_the_base_model_for_every_member(tiny_net, train_mode):
    base = tiny_net()
    be = to_batch_ensemble(base, 3, seed=0)
    set_identity(be)
    x = torch.randn(5, 1, 8, 8)
    base.train(train_mode), be.train(train_mode)
    out = be(x)
    assert out.shape == (3, 5, 3)
    for i in range(3):
        torch.testing.assert_close(out[i], base(x))


def test_nested_layers_converted_and_original_untouched():
    base = build_model("resnet-8", (3, 16, 16), 5, seed=0).eval()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    n_layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in base.modules())
    be = to_batch_ensemble(base, 4, seed=0).eval()
    # Every weight layer, nested blocks included, is now rank-1; none of the originals is left.
    assert len(rank_one_layers(be)) == n_layers
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in be.modules())
    assert isinstance(be.net.layer2[0].conv1, BatchEnsembleConv2d) and isinstance(be.net.fc, BatchEnsembleLinear)
    # The original model is unchanged, still plain layers, and shares no tensor with the copy.
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert isinstance(base.layer2[0].conv1, nn.Conv2d)
    assert not {p.data_ptr() for p in base.parameters()} & {p.data_ptr() for p in be.parameters()}
    # BatchNorm stays one shared module per place.
    assert isinstance(be.net.bn1, nn.BatchNorm2d)
    x = torch.randn(6, 3, 16, 16)
    assert be(x).shape == (4, 6, 5)
    set_identity(be)
    for i in range(4):
        torch.testing.assert_close(be(x)[i], base(x), rtol=1e-4, atol=1e-5)


def test_layer_applies_member_i_fast_weights_to_group_i():
    lin = nn.Linear(5, 3)
    layer = BatchEnsembleLinear(lin, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        layer.bias.copy_(torch.randn(2, 3))
    x = torch.randn(8, 5)  # rows 0-3 member 0, rows 4-7 member 1
    y = layer(x)
    for i in range(2):
        rows = x[4 * i:4 * i + 4]
        want = ((rows * layer.r[i]) @ lin.weight.T) * layer.s[i] + layer.bias[i]
        torch.testing.assert_close(y[4 * i:4 * i + 4], want)


def test_conv_layer_scales_input_and_output_channels():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    layer = BatchEnsembleConv2d(conv, 2, generator=torch.Generator().manual_seed(1))
    x = torch.randn(4, 2, 5, 5)
    y = layer(x)
    for i in range(2):
        rows = x[2 * i:2 * i + 2] * layer.r[i].view(1, 2, 1, 1)
        want = F.conv2d(rows, conv.weight, None, padding=1) * layer.s[i].view(1, 3, 1, 1) \
            + layer.bias[i].view(1, 3, 1, 1)
        torch.testing.assert_close(y[2 * i:2 * i + 2], want)


def test_batch_not_divisible_by_members_is_a_clear_error(tiny_net):
    be = to_batch_ensemble(tiny_net(), 4, seed=0)
    with pytest.raises(UserError, match="multiple of 4"):
        be.net(torch.randn(6, 1, 8, 8))
    assert be.net(torch.randn(8, 1, 8, 8)).shape == (8, 3)  # 4 groups of 2


def test_same_seed_same_init_and_init_kinds(tiny_net):
    net = tiny_net()
    a, b, c = (to_batch_ensemble(net, 3, seed=s) for s in (7, 7, 8))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.net[0].r, c.net[0].r)
    signs = to_batch_ensemble(net, 3, init="random-sign", seed=0)
    fast = torch.cat([t.flatten() for layer in rank_one_layers(signs) for t in (layer.r, layer.s)])
    assert set(fast.unique().tolist()) == {-1.0, 1.0}
    big = to_batch_ensemble(nn.Linear(2000, 2000), 4, seed=0)
    assert abs(float(big.net.r.detach().mean()) - 1) < 0.02 and abs(float(big.net.r.detach().std()) - 0.5) < 0.02
    # Per-member biases start at the original bias; the shared weight is a copy.
    assert torch.equal(a.net[3].bias, net[3].bias.detach().expand(3, -1))
    assert torch.equal(a.net[3].weight, net[3].weight) and a.net[3].weight is not net[3].weight
    with pytest.raises(UserError):
        to_batch_ensemble(net, 3, init="uniform")


def test_layer_registered_twice_stays_one_shared_layer():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    be = to_batch_ensemble(net, 2, seed=0)
    assert be.net[0] is be.net[2] and isinstance(be.net[0], BatchEnsembleLinear)


def test_loss_is_mean_cross_entropy_over_the_tiled_batch(tiny_net):
    be = to_batch_ensemble(tiny_net(), 3, seed=0)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 1])
    loss, logits, targets = batch_ensemble_loss(be, x, y)
    out = be(x)
    hand = sum(F.cross_entropy(out[i], y) for i in range(3)) / 3
    torch.testing.assert_close(loss, hand)
    assert logits.shape == (12, 3) and torch.equal(targets, y.repeat(3))


def test_batch_ensemble_trains_members_apart_and_counts_tiled_flops():
    data = splits()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.01)
    res = batch_ensemble("mlp-16", data, cfg, members=4, device="cpu")
    assert isinstance(res.ensemble, MultiOutputEnsemble) and len(res.ensemble) == 4
    assert isinstance(res.ensemble.module, BatchEnsemble) and res.ensemble.module.members == 4
    assert res.epochs == 2.0 and len(res.history) == 2 and len(res.members) == 4
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape == (4, 32, 3)
    for i in range(4):
        for j in range(i):
            assert not torch.allclose(probs[i], probs[j], atol=1e-4)
    # Multiply-adds per example (mlp-16 on 1×8×8, 3 classes; a step is forward + weight
    # gradient, + input gradient where the input needs one): dense fc1 2·64·16 + fc2 3·16·3
    # = 2192. All 4 members run every example, and fc1 now needs its input gradient too
    # (for r): 4 · (3·64·16 + 3·16·3) = 12864, ≈ 5.9× the dense model.
    ratio = res.training_flops / reference_flops("mlp-16", data, cfg.epochs, cfg.batch_size)
    assert ratio == pytest.approx(12864 / 2192)
    again = batch_ensemble("mlp-16", data, cfg, members=4, device="cpu")
    assert torch.equal(again.ensemble.member_probs(data.test.x), probs)


def test_run_with_workdir_matches_a_plain_run(tmp_path):
    data = splits()
    cfg = TrainConfig(epochs=1, batch_size=16)
    a = batch_ensemble("mlp-16", data, cfg, members=2, device="cpu", workdir=tmp_path)
    b = batch_ensemble("mlp-16", data, cfg, members=2, device="cpu")
    assert torch.equal(a.ensemble.member_probs(data.test.x), b.ensemble.member_probs(data.test.x))
