"""A pruning-scope option leaves the excluded tensors identical to the parent's.

Every method, with ``dense_layers=("first", "last")``: the first and last layers of a
pruned or perturbed child are bit-identical to the parent's while the other tensors are
pruned (exact zeros) or perturbed. Tuning then trains the dense layers like the biases:
never pruned (no forced zeros), but updated.
"""

from dataclasses import replace

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.es import ClassifierFitness, NoiseSampling, evolve, kl_grid
from evo_ensembles.methods.noisy import NoisyEnsemble, noisy_ensemble
from evo_ensembles.methods.sparse import prune_and_tune, prune_child, tune_child
from evo_ensembles.methods.stochastic import anneal_and_tune, build_child, steps_per_epoch
from evo_ensembles.subnet import (
    ChildSpec,
    InPlacePerturber,
    anneal_plan,
    eligible_parameters,
    make_child_specs,
    masked_fraction_zero,
    noisy_child,
    resolve_dense_layers,
)
from evo_ensembles.train import TrainConfig, fit

DENSE = ("first", "last")
CFG = TrainConfig(epochs=2, batch_size=16, lr=0.01, weight_decay=1e-3)


def _assert_scoped(parent, child, mask=None, tuned=False):
    """Dense layers equal the parent's (tuned: trained, never pruned); the rest is pruned by
    ``mask`` (or perturbed)."""
    pp, cp = eligible_parameters(parent), eligible_parameters(child)
    dense = resolve_dense_layers(pp, DENSE)
    assert dense == {"0.weight", "5.weight"}
    for n in dense:
        if tuned:
            assert not torch.equal(cp[n], pp[n]) and bool((cp[n] != 0).all()), n
        else:
            assert torch.equal(cp[n], pp[n]), n
    others = set(pp) - dense
    if mask is None:  # a noisy child: the other tensors moved
        assert all(not torch.equal(cp[n], pp[n]) for n in others)
        return
    assert set(mask) == others
    assert masked_fraction_zero(cp, mask) and all(bool((~mask[n]).any()) for n in mask)
    if tuned:
        assert any(not torch.equal(cp[n][mask[n]], pp[n][mask[n]]) for n in mask)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_prune_and_tune(tiny_net, tiny_data, optimizer):
    parent = tiny_net()
    specs = make_child_specs(2, 0.5, partition=True, seed=0, dense_layers=DENSE)
    ens = prune_and_tune(parent, specs, tiny_data, replace(CFG, optimizer=optimizer), progress=False)
    for spec, child in zip(specs, ens.members):
        _assert_scoped(parent, child, spec.mask(eligible_parameters(parent)), tuned=True)


def test_prune_child_then_tune_child(tiny_net, tiny_data):
    parent = tiny_net()
    child, mask = prune_child(parent, ChildSpec("prune", mask_seed=1, density=0.3, dense_layers=DENSE))
    pp, cp = eligible_parameters(parent), eligible_parameters(child)
    assert all(torch.equal(cp[n], pp[n]) for n in ("0.weight", "5.weight"))  # pruning left them alone
    assert masked_fraction_zero(cp, mask)
    tune_child(child, mask, tiny_data, CFG, progress=False)
    _assert_scoped(parent, child, mask, tuned=True)


@pytest.mark.parametrize("anneal", ["temperature", "random"])
def test_anneal_and_tune(tiny_net, tiny_data, anneal):
    parent = tiny_net()
    specs = make_child_specs(2, 0.5, partition=True, seed=1, kind="stochastic", anneal=anneal,
                             anneal_epochs=1, dense_layers=DENSE)
    ens = anneal_and_tune(parent, specs, tiny_data, CFG, progress=False)
    for spec, child in zip(specs, ens.members):
        _assert_scoped(parent, child, anneal_plan(spec, eligible_parameters(parent), 1).target, tuned=True)


@pytest.mark.parametrize("selection,scope", [("random", "local"), ("magnitude", "local"),
                                             ("magnitude", "global")])
def test_iterative_pruning(tiny_net, tiny_data, selection, scope):
    parent = tiny_net()
    spec = ChildSpec("prune", mask_seed=2, density=0.3, selection=selection, scope=scope,
                     prune_epochs=2, dense_layers=DENSE)
    child, cb = build_child(parent, spec, CFG, steps_per_epoch(len(tiny_data), CFG.batch_size))
    fit(child, tiny_data, CFG, callbacks=[cb], progress=False)
    _assert_scoped(parent, child, cb.mask, tuned=True)
    if selection == "random":  # ends on exactly the one-shot child's mask
        one_shot = spec.mask(eligible_parameters(parent))
        assert all(torch.equal(cb.mask[n], one_shot[n]) for n in one_shot)


def test_noisy_children_in_place_and_standalone(tiny_net):
    parent = tiny_net()
    spec = ChildSpec("noise", mask_seed=1, density=0.5, k=2, sigma=0.1, noise_seed=2, dense_layers=DENSE)
    reference = tiny_net()  # the same weights, never perturbed
    perturber = InPlacePerturber(parent)
    with perturber.child(spec) as model:
        _assert_scoped(reference, model)
    assert all(torch.equal(a, b) for a, b in zip(parent.parameters(), reference.parameters()))
    _assert_scoped(parent, noisy_child(parent, spec))


def test_trust_region_probes_children_of_the_same_scope(tiny_net, tiny_data):
    parent = tiny_net()
    first = parent[0].weight.detach().clone()
    seen = []

    def probe(model):
        seen.append(torch.equal(model[0].weight, first) and not torch.equal(model[3].weight, parent_mid))
        return {"fitness": 0.0, "kl": 0.0}

    parent_mid = parent[3].weight.detach().clone()
    rows = kl_grid(InPlacePerturber(parent), probe, sigmas=(0.01, 0.1), densities=(0.5, 1.0),
                   children=2, sampling=NoiseSampling(sigma=0.0, dense_layers=DENSE), progress=False)
    assert len(rows) == 4 and len(seen) == 8 and all(seen)


def test_noisy_ensemble_members_and_reload(tiny_net, tiny_data, tmp_path):
    parent = tiny_net()
    res = noisy_ensemble(parent, tiny_data.x[:64], tiny_data.y[:64], popsize=8, top_k=4,
                         dense_layers=DENSE, sigmas=(0.01, 0.1, 0.3), densities=(0.5,),
                         progress=False)
    assert res.trust_region is not None
    assert all(s.dense_layers == DENSE for s in res.population)
    for i in range(len(res.ensemble)):
        _assert_scoped(parent, res.ensemble.child(i))
    path = res.ensemble.save(tmp_path / "ensemble.json")
    again = NoisyEnsemble.load(path, tiny_net())
    assert again.specs == res.ensemble.specs
    assert torch.equal(again.predict_proba(tiny_data.x), res.ensemble.predict_proba(tiny_data.x))


def test_noisy_ensemble_refuses_an_unknown_layer(tiny_net, tiny_data):
    with pytest.raises(UserError, match="fc9"):
        noisy_ensemble(tiny_net(), tiny_data.x, tiny_data.y, sigma=0.1, dense_layers=("fc9",),
                       progress=False)


def test_evolution_keeps_the_dense_layers(tiny_net, tiny_data):
    parent = tiny_net()
    fitness = ClassifierFitness(tiny_data.x, tiny_data.y, reference=parent)
    res = evolve(parent, fitness, generations=1, popsize=4, top_k=2, sigma=0.05, density=0.5,
                 dense_layers=DENSE, progress=False)
    assert set(res.problem.index) == {"3.weight"}
    _assert_scoped(parent, res.child(0))
