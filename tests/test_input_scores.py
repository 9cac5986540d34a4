"""Per-input uncertainty scores and selective prediction."""

import math

import pytest
import torch
from torch import nn

from evo_ensembles.ensemble import Ensemble
from evo_ensembles.errors import UserError
from evo_ensembles.input_scores import SCORES, selective_predict, uncertainty


def test_hand_computed_two_members():
    z = torch.tensor([[[4.0, 0.0]], [[0.0, 4.0]]])
    u = uncertainty(z)
    p1 = torch.softmax(torch.tensor([4.0, 0.0]), 0).double()
    h1 = float(-(p1 * p1.log()).sum())
    assert float(u.entropy[0]) == pytest.approx(math.log(2))
    assert float(u.expected_entropy[0]) == pytest.approx(h1)
    assert float(u.mutual_information[0]) == pytest.approx(math.log(2) - h1)
    assert float(u.variation_ratio[0]) == 0.5
    assert float(u.energy[0]) == pytest.approx(-float(torch.logsumexp(torch.tensor([4.0, 0.0]), 0)), rel=1e-6)
    assert float(u.max_prob[0]) == pytest.approx(0.5)


def test_mutual_information_nonnegative_and_zero_for_identical_members():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 300, 7, generator=g) * 3
    assert bool((uncertainty(z).mutual_information >= 0).all())
    same = z[:1].expand(4, -1, -1)
    u = uncertainty(same)
    assert float(u.mutual_information.abs().max()) < 1e-9
    assert float(u.variation_ratio.max()) == 0.0
    assert torch.allclose(u.entropy, u.expected_entropy)


def test_probabilities_only_have_no_energy():
    p = torch.softmax(torch.randn(3, 10, 4), -1)
    u = uncertainty(p, logits=False)
    assert u.energy is None and "energy" not in u.available_scores()
    with pytest.raises(UserError, match="logits"):
        u.score("energy")
    assert torch.allclose(u.probs, p.mean(0), atol=1e-6)
    assert torch.allclose(u.score("max_prob"), 1 - u.max_prob)
    with pytest.raises(UserError):
        u.score("nope")


def test_selective_predict_by_coverage_and_threshold():
    p = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.6, 0.4]])
    s = selective_predict(p, coverage=0.5)
    assert s.accepted.tolist() == [True, False, True, False] and s.coverage == 0.5
    assert s.predictions.tolist() == [0, 0, 1, 0] and s.threshold == pytest.approx(0.8)
    t = selective_predict(p, threshold=0.6)
    assert t.accepted.tolist() == [True, False, True, True]
    assert selective_predict(p, coverage=0.0).accepted.sum() == 0
    with pytest.raises(UserError):
        selective_predict(p)
    with pytest.raises(UserError):
        selective_predict(p, coverage=0.5, threshold=0.5)


def test_ensemble_methods_calibrate_and_score():
    torch.manual_seed(0)
    nets = [nn.Linear(6, 3) for _ in range(3)]
    ens = Ensemble(nets)
    x, y = torch.randn(200, 6), torch.arange(200) % 3
    with pytest.raises(UserError, match="fit_temperature"):
        ens.predict_proba(x, calibrated=True)
    fit = ens.fit_temperature(x, y)
    raw, cal = ens.predict_proba(x), ens.predict_proba(x, calibrated=True)
    assert torch.allclose(raw, ens.member_probs(x).mean(0))
    assert torch.allclose(cal.sum(1), torch.ones(200), atol=1e-5)
    u = ens.uncertainty(x, calibrated=True)
    assert torch.allclose(u.probs, cal, atol=1e-5)
    assert set(u.available_scores()) == set(SCORES)
    assert fit.temperature > 0
    logits = ens.member_logits(x)
    assert torch.allclose(torch.softmax(logits, -1), ens.member_probs(x), atol=1e-6)
