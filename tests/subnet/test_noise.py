import copy

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.es import make_noisy_specs
from evo_ensembles.subnet import (
    ChildSpec,
    InPlacePerturber,
    add_noise_,
    eligible_parameters,
    noise_delta,
    noisy_child,
    sample_noise,
)


def _spec(**kw):
    base = dict(kind="noise", mask_seed=3, density=0.5, k=2, part=0, sigma=0.1, noise_seed=9)
    return ChildSpec(**{**base, **kw})


def test_mirrored_and_partitioned_deltas_cancel_exactly(tiny_net):
    params = eligible_parameters(tiny_net())
    four = [noise_delta(params, _spec(sign=s, part=p)) for s in (1, -1) for p in (0, 1)]
    for name in params:
        assert torch.equal(four[0][name] + four[2][name], torch.zeros_like(four[0][name]))
        assert torch.equal(four[1][name] + four[3][name], torch.zeros_like(four[0][name]))
        # mask + anti-mask: the whole noise tensor, each weight perturbed by exactly one part
        both = four[0][name] + four[1][name]
        assert torch.equal(both, sample_noise(params, 0.1, 9)[name])
        assert not bool(((four[0][name] != 0) & (four[1][name] != 0)).any())


def test_noise_only_touches_the_mask_and_has_the_requested_scale(tiny_net):
    params = eligible_parameters(tiny_net())
    spec = _spec(k=None, density=0.25, sigma=0.5, part=0)
    mask = spec.mask(params)
    delta = noise_delta(params, spec)
    for name in params:
        assert bool((delta[name][~mask[name]] == 0).all())
    vals = torch.cat([delta[n][mask[n]] for n in params])
    assert vals.std().item() == pytest.approx(0.5, rel=0.15)


def test_mu_shifts_the_noise(tiny_net):
    params = eligible_parameters(tiny_net())
    n = sample_noise(params, 0.01, seed=1, mu=0.3)
    assert torch.cat([v.reshape(-1) for v in n.values()]).mean().item() == pytest.approx(0.3, abs=0.01)


def test_same_seed_same_child_different_seed_different_child(tiny_net):
    a, b = noisy_child(tiny_net(), _spec()), noisy_child(tiny_net(), _spec())
    c = noisy_child(tiny_net(), _spec(noise_seed=10))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_in_place_perturbation_reverts_exactly_and_matches_a_copy(tiny_net):
    net = tiny_net()
    before = copy.deepcopy(net.state_dict())
    x = torch.randn(5, 1, 8, 8)
    spec = _spec(part=1, sign=-1)
    perturber = InPlacePerturber(net)
    with perturber.child(spec) as child:
        inside = child(x)
    assert torch.equal(inside, noisy_child(tiny_net(), spec)(x))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_revert_happens_even_when_evaluation_fails(tiny_net):
    net = tiny_net()
    w = net[0].weight.detach().clone()
    with pytest.raises(RuntimeError):
        with InPlacePerturber(net).child(_spec()):
            raise RuntimeError("boom")
    assert torch.equal(net[0].weight, w)


def test_add_noise_then_subtract_mirror_restores_to_float_tolerance(tiny_net):
    net = tiny_net()
    params = eligible_parameters(net)
    w = {n: p.detach().clone() for n, p in params.items()}
    add_noise_(params, _spec())
    add_noise_(params, _spec(sign=-1))
    for n, p in params.items():
        torch.testing.assert_close(p, w[n], rtol=0, atol=1e-6)


def test_bad_noise_children_are_rejected(tiny_net):
    params = eligible_parameters(tiny_net())
    with pytest.raises(UserError):
        _spec(sigma=-0.1)
    with pytest.raises(UserError):
        _spec(sign=0)
    with pytest.raises(UserError):
        noise_delta(params, ChildSpec("prune", mask_seed=1, density=0.5))
    with pytest.raises(UserError):
        noise_delta(params, _spec(noise_seed=None))


def test_population_children_regenerate_identically(tiny_net):
    a = make_noisy_specs(8, seed=5, sigma=0.05)
    b = make_noisy_specs(8, seed=5, sigma=0.05)
    assert a == b and make_noisy_specs(8, seed=6, sigma=0.05) != a
    params = eligible_parameters(tiny_net())
    for s, t in zip(a, b):
        d1, d2 = noise_delta(params, s), noise_delta(params, t)
        assert all(torch.equal(d1[n], d2[n]) for n in d1)
