"""MotherNets: hatching by Net2Net widening preserves the mothernet's function exactly; the
mothernet is contained in every member; noise and training make members differ."""

import pytest
import torch

from evo_ensembles.baselines.common import training_flops as count_flops
from evo_ensembles.baselines.hatching import add_noise, mothernet_hidden, mothernets, widen_mlp
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.ensemble import Ensemble
from evo_ensembles.errors import UserError
from evo_ensembles.models import MLP
from evo_ensembles.train import TrainConfig


def splits(n=64, shape=(1, 8, 8), classes=3, seed=0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)

    def part(k):
        x = torch.randn(k, *shape, generator=g)
        return ArrayData(x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long())
    return DataSplits("random", part(n), part(32), part(32), classes, shape, (0.0,), (1.0,))


def trained_like_mlp(hidden, seed=0):
    torch.manual_seed(seed)
    net = MLP((1, 6, 6), 4, hidden=hidden)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))  # non-zero biases, as after training
    return net


@pytest.mark.parametrize(("old", "new"), [((5,), (12,)), ((4, 3, 6), (9, 3, 17)), ((2, 2), (7, 11))])
def test_widening_preserves_the_function(old, new):
    mother = trained_like_mlp(old)
    child = widen_mlp(mother, new, seed=3)
    assert child.hidden == new and [m.out_features for m in child if isinstance(m, torch.nn.Linear)][:-1] == list(new)
    x = torch.randn(50, 1, 6, 6)
    torch.testing.assert_close(child(x), mother(x), rtol=1e-5, atol=1e-5)
    # Some unit really was copied (otherwise the test above proves nothing).
    w = child.fc1.weight
    assert any(torch.equal(w[j], w[i]) for j in range(old[0], new[0]) for i in range(old[0]))


def test_widening_keeps_the_mothernet_inside_and_is_seeded():
    mother = trained_like_mlp((4, 3))
    child = widen_mlp(mother, (9, 5), seed=0)
    # The mother's own units come first: their incoming weights of the first layer are hers.
    assert torch.equal(child.fc1.weight[:4], mother.fc1.weight) and torch.equal(child.fc1.bias[:4], mother.fc1.bias)
    assert torch.equal(child.fc2.weight, widen_mlp(mother, (9, 5), seed=0).fc2.weight)
    assert not torch.equal(child.fc2.weight, widen_mlp(mother, (9, 5), seed=1).fc2.weight)
    same = widen_mlp(mother, (4, 3), seed=0)  # no widening: an exact copy
    assert all(torch.equal(a, b) for a, b in zip(same.parameters(), mother.parameters(), strict=True))
    assert same.fc1.weight is not mother.fc1.weight


def test_widening_refuses_narrower_or_other_depths():
    mother = trained_like_mlp((4, 3))
    with pytest.raises(UserError, match="narrower"):
        widen_mlp(mother, (3, 3), seed=0)
    with pytest.raises(UserError, match="depths differ"):
        widen_mlp(mother, (4,), seed=0)


def test_mothernet_is_the_per_layer_minimum():
    assert mothernet_hidden([(32,), (48,), (64,)]) == (32,)
    assert mothernet_hidden([(32, 8), (16, 64)]) == (16, 8)
    with pytest.raises(UserError, match="same depth"):
        mothernet_hidden([(32,), (32, 32)])


def test_noise_is_small_seeded_and_breaks_copies_apart():
    mother = trained_like_mlp((4,))
    child = widen_mlp(mother, (8,), seed=0)
    before = [p.clone() for p in child.parameters()]
    add_noise(child, 0.01, seed=5)
    for b, p in zip(before, child.parameters(), strict=True):
        assert 0 < (p - b).std() < 0.03 * b.std()
    again = add_noise(widen_mlp(mother, (8,), seed=0), 0.01, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), child.parameters(), strict=True))
    w = child.fc1.weight
    assert not any(torch.equal(w[j], w[i]) for j in range(4, 8) for i in range(4))


def test_mothernets_budget_widths_and_diverse_members():
    data, cfg = splits(), TrainConfig(epochs=4, batch_size=16, lr=1e-2)
    res = mothernets("mlp-16", data, cfg, members=3, member_hidden=[(16,), (24,), (32,)], progress=False)
    assert isinstance(res.ensemble, Ensemble) and len(res.ensemble) == 3
    assert [m.hidden for m in res.ensemble.members] == [(16,), (24,), (32,)]
    assert all(m["mother_hidden"] == [16] for m in res.members)
    assert res.epochs == 2 + 3 * 2  # mother half, each member the other half
    assert [h["stage"] for h in res.history] == ["mother"] * 2 + ["member0"] * 2 + ["member1"] * 2 + ["member2"] * 2
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape == (3, 32, 3) and not torch.allclose(probs[0], probs[1])
    # FLOPs: the mother's 2 epochs plus every member's 2, each on its own real step.
    n = 2 * len(data.train)
    expect = count_flops(MLP((1, 8, 8), 3, hidden=(16,)), data, 16, n) + sum(
        count_flops(MLP((1, 8, 8), 3, hidden=(w,)), data, 16, n) for w in (16, 24, 32))
    assert res.training_flops == pytest.approx(expect)


def test_equal_widths_and_a_smaller_mother():
    data, cfg = splits(), TrainConfig(epochs=1, batch_size=16, lr=1e-2)
    res = mothernets("mlp-12", data, cfg, members=2, mother_width=6)
    assert res.epochs == 1 + 2 * 1  # at least one epoch each
    assert [m.hidden for m in res.ensemble.members] == [(12,), (12,)]
    assert res.members[0]["mother_hidden"] == [6]
    a, b = res.ensemble.members
    assert not torch.allclose(a.fc1.weight, b.fc1.weight)  # same widths, yet different members


def test_bad_arguments_are_refused():
    data, cfg = splits(), TrainConfig(epochs=1, batch_size=16)
    with pytest.raises(UserError, match="MotherNets here widens MLPs; use mlp-<w>"):
        mothernets("lenet-5", splits(shape=(1, 16, 16)), cfg)
    with pytest.raises(UserError, match="member_hidden lists 2"):
        mothernets("mlp-8", data, cfg, members=3, member_hidden=[(8,), (9,)])
    with pytest.raises(UserError, match="mother_width"):
        mothernets("mlp-8", data, cfg, members=2, mother_width=9)
    with pytest.raises(UserError, match="mother_fraction"):
        mothernets("mlp-8", data, cfg, mother_fraction=0.0)
