"""TreeNet: one shared trunk computed once, M independently initialised branches, trained on
the sum of the branches' losses."""

import pytest
import torch
import torch.nn.functional as F

from evo_ensembles.baselines.common import MultiOutputEnsemble, members_cross_entropy
from evo_ensembles.baselines.common import training_flops as count_flops
from evo_ensembles.baselines.shared_trunk import TreeNet, treenet, treenet_model
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.errors import UserError
from evo_ensembles.models import build_model
from evo_ensembles.train import TrainConfig


def splits(n=64, shape=(1, 16, 16), classes=3, seed=0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)

    def part(k):
        x = torch.randn(k, *shape, generator=g)
        return ArrayData(x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long())
    return DataSplits("random", part(n), part(32), part(32), classes, shape, (0.0,), (1.0,))


def test_trunk_is_one_set_of_parameters_shared_by_all_branches():
    net = treenet_model("lenet-5", (1, 16, 16), 3, members=3, split="conv2", seed=0)
    trunk = list(net.trunk.parameters())
    assert len(trunk) == 2  # conv1 weight and bias, once
    # No copies: the model's parameters are the trunk's plus each branch's, nothing else.
    single = sum(p.numel() for p in build_model("lenet-5", (1, 16, 16), 3).parameters())
    trunk_n = sum(p.numel() for p in trunk)
    assert sum(p.numel() for p in net.parameters()) == trunk_n + 3 * (single - trunk_n)
    branch_ids = {id(p) for b in net.branches for p in b.parameters()}
    assert not branch_ids & {id(p) for p in trunk}
    assert len(branch_ids) == 3 * len(list(net.branches[0].parameters()))


def test_trunk_gradient_is_the_sum_over_branches():
    net = treenet_model("mlp-8x2", (1, 4, 4), 3, members=3, split="fc2", seed=0)
    x, y = torch.randn(10, 1, 4, 4), torch.randint(0, 3, (10,))
    w = net.trunk.fc1.weight
    per_branch = [torch.autograd.grad(F.cross_entropy(b(net.trunk(x)), y), w)[0] for b in net.branches]
    loss, _, _ = members_cross_entropy(net, x, y)
    loss.backward()
    torch.testing.assert_close(w.grad, sum(per_branch))
    assert all(not torch.allclose(g, per_branch[0]) for g in per_branch[1:])  # branches ask differently


def test_forward_runs_the_trunk_once_and_returns_members_logits():
    net = treenet_model("resnet-8", (1, 16, 16), 3, members=4, seed=0)
    assert net.split == "layer2" and net.members == 4
    calls = []
    net.trunk.register_forward_hook(lambda *a: calls.append(1))
    out = net(torch.randn(5, 1, 16, 16))
    assert out.shape == (4, 5, 3) and len(calls) == 1
    # Each member is its branch on the trunk's output.
    net.eval()
    x = torch.randn(5, 1, 16, 16)
    torch.testing.assert_close(net(x)[2], net.branches[2](net.trunk(x)))


def test_branches_start_independent_and_seeds_reproduce():
    a = treenet_model("lenet-5", (1, 16, 16), 3, members=2, seed=0)
    b = treenet_model("lenet-5", (1, 16, 16), 3, members=2, seed=0)
    c = treenet_model("lenet-5", (1, 16, 16), 3, members=2, seed=1)
    wa = [br.fc1.weight for br in a.branches]
    assert not torch.equal(wa[0], wa[1])
    assert torch.equal(wa[0], b.branches[0].fc1.weight) and not torch.equal(wa[0], c.branches[0].fc1.weight)


def test_split_at_an_in_place_relu_keeps_branches_apart():
    # ResNet's stem ReLU works in place; as a branch's first layer it would overwrite the
    # trunk output the other branches read.
    net = treenet_model("resnet-8", (1, 16, 16), 3, members=2, split="relu", seed=0).eval()
    x = torch.randn(2, 1, 16, 16)
    out = net(x)
    out.sum().backward()
    torch.testing.assert_close(out[1], net.branches[1](net.trunk(x)))


def test_bad_split_names_and_members_are_refused():
    with pytest.raises(UserError, match="no layer 'conv9'.*conv1, relu1"):
        treenet_model("lenet-5", (1, 16, 16), 3, split="conv9")
    with pytest.raises(UserError, match="members"):
        treenet_model("lenet-5", (1, 16, 16), 3, members=0)
    with pytest.raises(UserError, match="at least one branch"):
        TreeNet(torch.nn.Identity(), [])


def test_treenet_trains_members_that_differ_and_counts_the_real_step():
    data, cfg = splits(), TrainConfig(epochs=2, batch_size=16, lr=1e-2)
    res = treenet("lenet-5", data, cfg, members=3, progress=False)
    assert isinstance(res.ensemble, MultiOutputEnsemble) and len(res.ensemble) == 3
    assert res.epochs == 2.0 and len(res.history) == 2 and res.seconds > 0
    assert [m["branch"] for m in res.members] == [0, 1, 2] and res.members[0]["split"] == "conv2"
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape == (3, 32, 3)
    assert not torch.allclose(probs[0], probs[1]) and not torch.allclose(probs[1], probs[2])
    # FLOPs: the trunk runs once, so more than one model and less than three separate ones.
    one = count_flops(build_model("lenet-5", (1, 16, 16), 3), data, 16, 2 * 64)
    assert one < res.training_flops < 3 * one
    fresh = treenet_model("lenet-5", (1, 16, 16), 3, members=3, seed=0)
    assert res.training_flops == pytest.approx(count_flops(fresh, data, 16, 2 * 64, objective=members_cross_entropy))


def test_treenet_resumes_from_its_workdir(tmp_path, monkeypatch):
    import importlib

    # the package exports the function treenet under the module's name: take the module itself
    mod = importlib.import_module("evo_ensembles.baselines.shared_trunk")
    from evo_ensembles.train import Callback, fit

    data, cfg = splits(), TrainConfig(epochs=2, batch_size=16, lr=1e-2)
    full = treenet("mlp-8", data, cfg, members=2, workdir=tmp_path / "a")
    assert not (tmp_path / "a" / "treenet").exists()  # finished: resume state cleared

    class Crash(Callback):
        def on_epoch_end(self, model, epoch, stats):
            if epoch == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(mod, "fit", lambda *a, **kw: fit(*a, **kw, callbacks=[Crash()]))
    with pytest.raises(KeyboardInterrupt):
        treenet("mlp-8", data, cfg, members=2, workdir=tmp_path / "b")
    monkeypatch.undo()
    assert (tmp_path / "b" / "treenet" / "train_state.safetensors").is_file()
    again = treenet("mlp-8", data, cfg, members=2, workdir=tmp_path / "b")
    assert len(again.history) == 2 and len(again.ensemble) == 2
    x = data.test.x
    torch.testing.assert_close(again.ensemble.member_probs(x), full.ensemble.member_probs(x), rtol=0, atol=0)
