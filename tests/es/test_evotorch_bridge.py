import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.es import (
    ClassifierFitness,
    DescriptorProblem,
    NoiseSampling,
    decode_spec,
    encode_specs,
    evaluate_children,
    evaluate_population,
    evolve,
    make_noisy_specs,
)


@pytest.mark.parametrize("dense_layers", [(), ("first", "last")])
def test_descriptor_rows_round_trip_exactly(dense_layers):
    s = NoiseSampling(sigma=0.037, density=1 / 3, dense_layers=dense_layers)
    specs = make_noisy_specs(12, seed=2**40 + 7, sampling=s)
    rows = encode_specs(specs)
    assert rows.shape == (12, 5) and rows.dtype == torch.float64
    assert [decode_spec(r, s) for r in rows] == specs
    assert all(x.dense_layers == dense_layers for x in specs)


def test_problem_in_process_matches_the_plain_evaluator(tiny_net, tiny_data):
    net = tiny_net()
    fit = ClassifierFitness(tiny_data.x, tiny_data.y, reference=net)
    s = NoiseSampling(sigma=0.2)
    specs = make_noisy_specs(6, seed=3, sampling=s)
    recs = evaluate_population(DescriptorProblem(net, fit, sampling=s), specs)
    plain = evaluate_children(net, specs, fit, progress=False)
    for a, b in zip(recs, plain):
        assert a["fitness"] == pytest.approx(b["fitness"]) and a["kl"] == pytest.approx(b["kl"], rel=1e-5)


@pytest.mark.slow  # starting Ray and two actors takes from ~10 s (idle) to minutes (busy box)
def test_ray_actors_give_the_same_fitness(tiny_net, tiny_data):
    pytest.importorskip("ray")
    net = tiny_net()
    fit = ClassifierFitness(tiny_data.x, tiny_data.y, reference=net)
    s = NoiseSampling(sigma=0.2)
    specs = make_noisy_specs(8, seed=4, sampling=s)
    problem = DescriptorProblem(net, fit, sampling=s, num_actors=2)
    try:
        remote = evaluate_population(problem, specs)
    finally:
        problem.kill_actors()
    local = evaluate_children(net, specs, fit, progress=False)
    for a, b in zip(remote, local):
        assert a["fitness"] == pytest.approx(b["fitness"]) and a["nll"] == pytest.approx(b["nll"], rel=1e-5)


@pytest.mark.parametrize("algorithm", ["pgpe", "snes"])
def test_evolution_starts_at_the_parent_and_returns_top_children(tiny_net, tiny_data, algorithm):
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fit = ClassifierFitness(tiny_data.x, tiny_data.y, reference=net)
    res = evolve(net, fit, algorithm=algorithm, generations=2, popsize=6, top_k=3, sigma=0.05,
                 density=0.5, seed=0, progress=False)
    assert res.vectors.shape[0] == 3 and len(res.history) == 2
    assert [r["fitness"] for r in res.records] == sorted((r["fitness"] for r in res.records), reverse=True)
    # The parent is untouched; a child differs from it only inside the evolved subnetwork.
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    child = res.child(0)
    changed = sum(int((a != b).sum()) for a, b in zip(child.state_dict().values(), before.values()))
    assert 0 < changed <= res.problem.solution_length
    assert fit(child)["fitness"] == pytest.approx(res.records[0]["fitness"])
    centre = res.problem.parent_vector()
    assert centre.shape == res.centre.shape


def test_evolve_rejects_bad_settings(tiny_net, tiny_data):
    net = tiny_net()
    fit = ClassifierFitness(tiny_data.x, tiny_data.y)
    with pytest.raises(UserError):
        evolve(net, fit, algorithm="cma", sigma=0.1, progress=False)
    with pytest.raises(UserError):
        evolve(net, fit, popsize=4, top_k=5, sigma=0.1, progress=False)
    with pytest.raises(UserError):
        evolve(net, fit, popsize=5, top_k=2, sigma=0.1, progress=False)  # PGPE needs pairs
