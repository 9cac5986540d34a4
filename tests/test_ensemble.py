"""The one member interface: every ensemble kind, the parent's vote, one scoring path."""

import pytest
import torch
from torch import nn

from evo_ensembles.ensemble import BaseEnsemble, Ensemble, Members, predict_probs, voters
from evo_ensembles.errors import UserError
from evo_ensembles.es import make_noisy_specs
from evo_ensembles.methods.noisy import NoisyEnsemble
from evo_ensembles.metrics import ensemble_metrics


def _nets(k, seed=0):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(k)]


@pytest.fixture
def kinds():
    parent, *members = _nets(4)
    specs = make_noisy_specs(3, seed=0, sigma=0.1, density=0.5)
    return parent, {
        "pruned": lambda include: Ensemble(members, parent=parent, include_parent=include),
        "noisy": lambda include: NoisyEnsemble(parent, specs, include_parent=include),
    }


def test_every_kind_is_members_and_the_parent_votes_first_only_when_asked(kinds):
    parent, make = kinds
    x = torch.randn(10, 4)
    for name, build in make.items():
        ens = build(True)
        assert isinstance(ens, Members) and isinstance(ens, BaseEnsemble), name
        with_parent, alone = ens.member_probs(x), ens.member_probs(x, with_parent=False)
        assert with_parent.shape == (len(ens) + 1, 10, 3) and alone.shape == (len(ens), 10, 3)
        assert torch.equal(with_parent[0], predict_probs(parent, x)) and torch.equal(with_parent[1:], alone)
        assert torch.equal(build(False).member_probs(x), alone)


def test_evaluate_is_the_shared_metrics_path(kinds, ):
    parent, make = kinds
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    for include in (False, True):
        ens = make["noisy"](include)
        got = ens.evaluate(x, y, ece_bins=10)
        want = ensemble_metrics(predict_probs(parent, x), ens.member_probs(x, with_parent=False), y,
                                include_parent=include, ece_bins=10)
        assert got["ensemble"] == want["ensemble"] and got["members"] == want["members"]
        assert got["parent"] == want["parent"]


def test_voters_refuses_a_missing_parent():
    m = torch.rand(2, 5, 3)
    assert voters(m, None, False) is m
    with pytest.raises(UserError, match="needs a parent"):
        voters(m, None, True)
    with pytest.raises(UserError, match="needs a parent"):
        Ensemble(_nets(2), include_parent=True)


@pytest.mark.parametrize("batched", [True, False, "auto"])
def test_batched_members_give_the_looped_probabilities(batched):
    from evo_ensembles.models import build_model

    members = [build_model("lenet-5", (1, 28, 28), 10, seed=s) for s in range(3)]
    x = torch.randn(70, 1, 28, 28)
    looped = torch.stack([predict_probs(m, x) for m in members])
    ens = Ensemble(members, batched=batched)
    assert torch.allclose(ens.member_probs(x, batch_size=32), looped, atol=1e-5)


def test_batched_needs_one_architecture():
    from evo_ensembles.ensemble import same_architecture
    from evo_ensembles.models import build_model

    a, b = build_model("lenet-5", (1, 28, 28), 10), build_model("lenet-s", (1, 28, 28), 10)
    assert same_architecture([a, build_model("lenet-5", (1, 28, 28), 10, seed=1)])
    assert not same_architecture([a, b])
    x = torch.randn(5, 1, 28, 28)
    assert Ensemble([a, b], batched=True).member_probs(x).shape == (2, 5, 10)  # falls back to the loop


@pytest.mark.parametrize("combine_rule", ["mean", "vote"])
def test_as_module_equals_predict_proba_with_parent_vote_and_temperature(combine_rule):
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(3)]
    ens = Ensemble(nets[1:], parent=nets[0], include_parent=True, combine=combine_rule)
    x, y = torch.randn(40, 6), torch.arange(40) % 3
    module = ens.as_module()
    assert len(module.nets) == 3 and module.nets[0] is nets[0]  # the parent votes first, weights shared
    assert torch.allclose(module(x), ens.predict_proba(x), atol=1e-6)
    with pytest.raises(UserError, match="no temperature"):
        ens.as_module(calibrated=True)
    ens.fit_temperature(x, y)
    calibrated = ens.as_module()  # a fitted temperature is used by default
    assert torch.allclose(calibrated(x), ens.predict_proba(x, calibrated=True), atol=1e-6)
    exported = torch.export.export(calibrated, (x,))
    assert torch.allclose(exported.module()(x), ens.predict_proba(x, calibrated=True), atol=1e-6)
