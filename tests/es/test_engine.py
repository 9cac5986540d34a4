import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.es import (
    ClassifierFitness,
    NoiseSampling,
    SubnetworkES,
    evaluate_children,
    top_k,
)
from evo_ensembles.subnet import InPlacePerturber


def test_fitness_of_the_parent_is_its_accuracy_and_zero_kl(tiny_net, tiny_data):
    net = tiny_net()
    fit = ClassifierFitness(tiny_data.x, tiny_data.y, reference=net)
    rec = fit(net)
    acc = float((net(tiny_data.x).argmax(1) == tiny_data.y).float().mean())
    assert rec["fitness"] == pytest.approx(acc) and rec["kl"] == pytest.approx(0.0, abs=1e-9)
    nll_fit = ClassifierFitness(tiny_data.x, tiny_data.y, metric="nll")(net)
    assert nll_fit["fitness"] == pytest.approx(-nll_fit["nll"])


def test_evaluating_children_leaves_the_parent_unchanged(tiny_net, tiny_data):
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    es = SubnetworkES(8, 4, sampling=NoiseSampling(sigma=0.2))
    specs, _ = es.ask(es.init(0))
    recs = evaluate_children(net, specs, ClassifierFitness(tiny_data.x, tiny_data.y, reference=net),
                             progress=False)
    assert len(recs) == 8 and all(r["kl"] > 0 for r in recs)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_ask_tell_keeps_the_top_k_over_generations(tiny_net, tiny_data):
    net = tiny_net()
    fit = ClassifierFitness(tiny_data.x, tiny_data.y, reference=net)
    es = SubnetworkES(6, 3, sampling=NoiseSampling(sigma=0.3))
    state = es.init(1)
    seen = []
    for _ in range(2):
        specs, state = es.ask(state)
        recs = evaluate_children(net, specs, fit, progress=False)
        seen += [r["fitness"] for r in recs]
        state = es.tell(state, specs, recs)
    assert state.generation == 2 and len(state.best) == 3
    assert sorted((c.fitness for c in state.best), reverse=True) == sorted(seen, reverse=True)[:3]
    assert [h["n"] for h in state.history] == [6, 6]


def test_selection_only_sees_the_split_it_is_given(tiny_net, tiny_data):
    # Fitness is computed on exactly the tensors passed in: swapping in other labels changes
    # the ranking only through those labels, so test labels cannot leak in.
    net = tiny_net()
    es = SubnetworkES(8, 2, sampling=NoiseSampling(sigma=0.5))
    specs, _ = es.ask(es.init(0))
    val = ClassifierFitness(tiny_data.x[:48], tiny_data.y[:48])
    calls = []

    def spy(model):
        calls.append(id(val.x))
        return val(model)

    evaluate_children(net, specs, spy, progress=False)
    assert len(calls) == 8 and set(calls) == {id(val.x)}


def test_top_k_order_ties_and_bad_k():
    recs = [{"fitness": f} for f in [0.5, 0.9, float("nan"), 0.9, 0.1]]
    assert top_k(recs, 3) == [1, 3, 0]
    assert top_k(recs, 5)[-1] == 2  # NaN ranks last
    with pytest.raises(UserError):
        top_k(recs, 6)
    with pytest.raises(UserError):
        SubnetworkES(4, 5, sampling=NoiseSampling(sigma=0.1))


def test_fitness_must_return_a_fitness_entry(tiny_net, tiny_data):
    es = SubnetworkES(2, 1, sampling=NoiseSampling(sigma=0.1))
    specs, _ = es.ask(es.init(0))
    with pytest.raises(UserError):
        evaluate_children(tiny_net(), specs, lambda m: {"acc": 1.0}, progress=False)
    with pytest.raises(UserError):
        evaluate_children(tiny_net(), specs, lambda m: {"fitness": 1.0},
                          perturber=InPlacePerturber(tiny_net(1)), progress=False)
