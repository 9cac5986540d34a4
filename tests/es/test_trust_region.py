import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.es import ClassifierFitness, kl_grid, search_sigma, sigma_for_target
from evo_ensembles.subnet import InPlacePerturber


def test_kl_grows_with_sigma_and_density(tiny_net, tiny_data):
    net = tiny_net()
    probe = ClassifierFitness(tiny_data.x, tiny_data.y, reference=net)
    rows = kl_grid(InPlacePerturber(net), probe, sigmas=[0.01, 0.05, 0.2], densities=[0.25, 1.0],
                   children=4, progress=False)
    assert len(rows) == 6 and all(r["accuracy"] is not None for r in rows)
    for d in (0.25, 1.0):
        kls = [r["kl"] for r in rows if r["density"] == d]
        assert kls == sorted(kls) and kls[0] > 0
    dense = {r["sigma"]: r["kl"] for r in rows if r["density"] == 1.0}
    sparse = {r["sigma"]: r["kl"] for r in rows if r["density"] == 0.25}
    assert dense[0.2] > sparse[0.2]


def test_sigma_for_target_interpolates_and_flags_the_ends():
    rows = [{"sigma": s, "kl": 2 * s * s} for s in (0.01, 0.1, 1.0)]  # KL = 2σ²
    s, status = sigma_for_target(rows, 0.02)  # log-log interpolation is exact for a power law
    assert status == "ok" and 2 * s * s == pytest.approx(0.02, rel=1e-6)
    assert sigma_for_target(rows, 1e-9) == (0.01, "above-grid")
    assert sigma_for_target(rows, 10.0) == (1.0, "below-grid")


def test_search_hits_the_target_kl_on_the_probe(tiny_net, tiny_data):
    net = tiny_net()
    perturber = InPlacePerturber(net)
    probe = ClassifierFitness(tiny_data.x, reference=net)
    tr = search_sigma(perturber, probe, target=0.02, density=0.5, densities=[0.5], progress=False)
    assert tr.status[0.5] == "ok"
    rows = kl_grid(perturber, probe, sigmas=[tr.sigma], densities=[0.5], progress=False)
    assert rows[0]["kl"] == pytest.approx(0.02, rel=0.35)  # interpolation between grid points
    bis = search_sigma(perturber, probe, target=0.02, density=0.5, mode="bisect", progress=False)
    rows = kl_grid(perturber, probe, sigmas=[bis.sigma], densities=[0.5], progress=False)
    assert rows[0]["kl"] == pytest.approx(0.02, rel=0.05)
    assert set(tr.to_dict()) >= {"grid", "sigma", "target", "sigma_by_density"}


def test_bad_targets(tiny_net, tiny_data):
    net = tiny_net()
    probe = ClassifierFitness(tiny_data.x, reference=net)
    for bad in (0.0, -1.0):
        with pytest.raises(UserError):
            search_sigma(InPlacePerturber(net), probe, target=bad, progress=False)
    with pytest.raises(UserError):
        search_sigma(InPlacePerturber(net), probe, mode="random", progress=False)
    with pytest.raises(UserError):
        kl_grid(InPlacePerturber(net), probe, sigmas=[-0.1], progress=False)
    assert torch.isfinite(torch.tensor(probe(net)["kl"]))
