import pytest

from evo_ensembles.errors import UserError
from evo_ensembles.es import NoiseSampling, draws_needed, make_noisy_specs
from evo_ensembles.subnet import check_partition, eligible_parameters


def test_one_draw_gives_the_papers_four_children():
    specs = make_noisy_specs(4, seed=0, sigma=0.01)
    assert [(s.sign, s.part) for s in specs] == [(1, 0), (1, 1), (-1, 0), (-1, 1)]
    assert len({(s.mask_seed, s.noise_seed) for s in specs}) == 1
    assert all(s.kind == "noise" and s.k == 2 and s.density == 0.5 for s in specs)


def test_partitioned_children_of_a_draw_have_disjoint_covering_masks(tiny_net):
    params = eligible_parameters(tiny_net())
    specs = make_noisy_specs(3, seed=1, sigma=0.01, density=1 / 3, mirrored=False)
    assert [s.part for s in specs] == [0, 1, 2]
    check_partition([s.mask(params) for s in specs])


@pytest.mark.parametrize("mirrored,partitioned,size", [(True, True, 4), (True, False, 2),
                                                         (False, True, 2), (False, False, 1)])
def test_options_turn_each_sampling_off(mirrored, partitioned, size):
    s = NoiseSampling(sigma=0.1, mirrored=mirrored, partitioned=partitioned)
    assert s.group_size == size
    specs = make_noisy_specs(8, seed=0, sampling=s)
    assert len(specs) == 8
    assert len({(x.mask_seed, x.noise_seed) for x in specs}) == 8 // size
    assert {x.sign for x in specs} == ({1, -1} if mirrored else {1})


def test_draws_continue_without_repeating():
    s = NoiseSampling(sigma=0.1)
    first = make_noisy_specs(6, seed=0, sampling=s)
    nxt = make_noisy_specs(4, seed=0, sampling=s, first_draw=draws_needed(6, s))
    assert not set(first) & set(nxt)


def test_bad_sampling_settings():
    with pytest.raises(UserError):
        NoiseSampling(sigma=-1.0)
    with pytest.raises(UserError):
        NoiseSampling(sigma=0.1, density=0.0)
    with pytest.raises(UserError):
        NoiseSampling(sigma=0.1, density=0.3)  # not 1/k with partitioning on
    NoiseSampling(sigma=0.1, density=0.3, partitioned=False)
    with pytest.raises(UserError):
        make_noisy_specs(0, seed=0, sigma=0.1)
