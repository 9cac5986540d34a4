import math

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.subnet import (
    ANNEAL_SCHEDULES,
    ANNEALS,
    AnnealPlan,
    ChildSpec,
    anneal_plan,
    anneal_value,
    check_probability_partition,
    eligible_parameters,
    make_child_specs,
    mask_density,
    partition_probabilities,
    partition_targets,
    remaining_fraction,
    sample_bernoulli,
)


@pytest.mark.parametrize("kind", ANNEAL_SCHEDULES)
@pytest.mark.parametrize("a,b,total", [(0.5, 0.0, 7), (0.3, 1.0, 1), (1.0, 0.0, 100)])
def test_schedules_hit_their_end_values_exactly(kind, a, b, total):
    assert anneal_value(kind, a, b, 0, total) == a
    assert anneal_value(kind, a, b, total, total) == b
    assert anneal_value(kind, a, b, total + 5, total) == b
    vals = [anneal_value(kind, a, b, t, total) for t in range(total + 1)]
    diffs = [(y - x) * (b - a) for x, y in zip(vals, vals[1:])]
    assert all(d >= 0 for d in diffs)  # monotone from a towards b


def test_schedule_formulas():
    assert anneal_value("linear", 0.0, 1.0, 1, 4) == 0.25
    assert anneal_value("cosine", 1.0, 0.0, 2, 4) == pytest.approx(0.5)
    r = [remaining_fraction("exp", t, 10) for t in range(10)]
    # geometric decay of the gap (shifted): consecutive gap ratios are constant
    shifted = [x * (1 - math.exp(-5)) + math.exp(-5) for x in r]
    ratios = [y / x for x, y in zip(shifted, shifted[1:])]
    assert max(ratios) - min(ratios) < 1e-12


@pytest.mark.parametrize("bad", [("nope", 0, 5), ("linear", 0, 0), ("cosine", 0, -3)])
def test_bad_schedule_inputs(bad):
    with pytest.raises(UserError):
        remaining_fraction(*bad)


def _params(tiny_net):
    return eligible_parameters(tiny_net())


@pytest.mark.parametrize("anneal", ANNEALS)
@pytest.mark.parametrize("kind", ANNEAL_SCHEDULES)
def test_plan_is_binary_target_at_the_end(tiny_net, anneal, kind):
    params = _params(tiny_net)
    spec = ChildSpec(
        "stochastic", mask_seed=3, density=0.3, anneal=anneal, anneal_schedule=kind, t0=0.7
    )
    plan = anneal_plan(spec, params, steps=9)
    for t in (9, 10, 50):
        probs = plan.probabilities(t)
        for n, m in plan.target.items():
            assert torch.equal(probs[n], m.float())
            assert torch.equal(sample_bernoulli(probs, torch.Generator().manual_seed(t))[n], m)
    assert mask_density(plan.target) == pytest.approx(0.3, abs=0.01)
    start = plan.probabilities(0)
    assert all(torch.equal(start[n], plan.start[n]) for n in start)
    assert all(
        bool(((p >= 0) & (p <= 1)).all()) for t in range(10) for p in plan.probabilities(t).values()
    )


def test_temperature_annealing_keeps_kept_entries_at_one(tiny_net):
    params = _params(tiny_net)
    spec = ChildSpec("stochastic", mask_seed=1, density=0.4, anneal="temperature", t0=0.6)
    plan = anneal_plan(spec, params, steps=5)
    assert all(torch.equal(plan.target[n], spec.mask(params)[n]) for n in params)
    for t in range(7):
        temp = anneal_value("cosine", 0.6, 0.0, t, 5)
        for n, p in plan.probabilities(t).items():
            x = plan.target[n]
            assert bool((p[x] == 1.0).all())
            assert torch.allclose(p[~x], torch.full_like(p[~x], temp))
    sym = anneal_plan(
        ChildSpec("stochastic", mask_seed=1, density=0.4, anneal="temperature-symmetric", t0=0.2),
        params,
        steps=5,
    )
    p0 = sym.probabilities(0)
    assert all(torch.allclose(p0[n][sym.target[n]], torch.tensor(0.8)) for n in p0)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_partitioned_probabilities_sum_to_one_and_targets_partition(tiny_net, k):
    params = _params(tiny_net)
    parts = partition_probabilities(params, k, seed=5)
    check_probability_partition(parts)
    for n in params:
        assert torch.allclose(sum(p[n] for p in parts), torch.ones(params[n].shape))
    targets = partition_targets(parts)
    for n in params:
        assert bool((sum(t[n].int() for t in targets) == 1).all())
    specs = make_child_specs(
        k, 1 / k, partition=True, k=k, seed=2, kind="stochastic", anneal="random"
    )
    plans = [anneal_plan(s, params, 4) for s in specs]
    for n in params:
        assert torch.allclose(sum(p.start[n] for p in plans), torch.ones(params[n].shape))
        assert bool((sum(p.target[n].int() for p in plans) == 1).all())


def test_mog_partition_is_p_and_one_minus_p(tiny_net):
    params = _params(tiny_net)
    a, b = partition_probabilities(params, 2, seed=0, base="mog")
    assert all(torch.equal(b[n], 1.0 - a[n]) for n in params)


def test_probabilities_not_summing_to_one_are_rejected():
    with pytest.raises(UserError, match="sum to"):
        check_probability_partition([{"w": torch.full((3,), 0.5)}, {"w": torch.full((3,), 0.6)}])


def test_same_seed_same_masks(tiny_net):
    params = _params(tiny_net)
    spec = ChildSpec("stochastic", mask_seed=11, density=0.5, anneal="random")
    a, b = anneal_plan(spec, params, 4), anneal_plan(spec, params, 4)
    ma = sample_bernoulli(a.probabilities(1), torch.Generator().manual_seed(7))
    mb = sample_bernoulli(b.probabilities(1), torch.Generator().manual_seed(7))
    assert all(torch.equal(ma[n], mb[n]) for n in ma)
    assert all(torch.equal(a.target[n], b.target[n]) for n in a.target)
    other = anneal_plan(
        ChildSpec("stochastic", mask_seed=12, density=0.5, anneal="random"), params, 4
    )
    assert any(not torch.equal(a.target[n], other.target[n]) for n in a.target)


@pytest.mark.parametrize(
    "fields",
    [
        {"t0": 1.5},
        {"t0": -0.1},
        {"anneal_epochs": 0},
        {"anneal_epochs": -2},
        {"anneal": "nope"},
        {"anneal": None},
        {"anneal_schedule": "step"},
    ],
)
def test_bad_stochastic_descriptors(fields):
    with pytest.raises(UserError):
        ChildSpec(
            **{
                "kind": "stochastic",
                "mask_seed": 0,
                "density": 0.5,
                "anneal": "temperature",
                **fields,
            }
        )


@pytest.mark.parametrize("density", [0.0, 1.5, -0.2])
def test_sparsity_outside_range_is_rejected(density):
    with pytest.raises(UserError):
        ChildSpec("stochastic", mask_seed=0, density=density, anneal="temperature")


def test_descriptor_round_trip_and_old_json_still_loads():
    spec = ChildSpec(
        "stochastic",
        mask_seed=4,
        density=0.1,
        anneal="random",
        t0=0.3,
        anneal_epochs=2,
        anneal_schedule="exp",
    )
    assert ChildSpec.from_dict(spec.to_dict()) == spec
    old = {
        "kind": "prune",
        "mask_seed": 1,
        "density": 0.5,
        "k": 2,
        "part": 1,
        "structured": False,
        "scope": "local",
        "selection": "random",
        "sign": 1,
        "sigma": 0.0,
        "noise_seed": None,
        "mu": 0.0,
    }
    assert ChildSpec.from_dict(old).anneal is None
    with pytest.raises(UserError):
        ChildSpec("prune", mask_seed=0, density=0.5, anneal="temperature")
    with pytest.raises(UserError):
        ChildSpec("prune", mask_seed=0, density=0.5, k=2, prune_epochs=2)


def test_plan_rejects_non_positive_steps(tiny_net):
    target = {"w": torch.ones(3, dtype=torch.bool)}
    with pytest.raises(UserError):
        AnnealPlan({"w": torch.ones(3)}, target, "cosine", 0)
