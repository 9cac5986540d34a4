"""Golden values computed by hand (comments show the arithmetic)."""

import math

import numpy as np
import pytest
import torch

from evo_ensembles.ensemble import combine
from evo_ensembles.metrics import (
    accuracy,
    brier,
    classification_metrics,
    correlation_matrix,
    disagreement_matrix,
    diversity,
    ece,
    kl_matrix,
    nll,
    off_diagonal_mean,
)

P = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
Y = torch.tensor([0, 0, 1, 1])


def test_accuracy():
    assert accuracy(P, Y) == 0.5  # predictions 0,1,0,1 vs 0,0,1,1


def test_nll_of_probabilities():
    expected = -(math.log(0.9) + math.log(0.2) + math.log(0.4) + math.log(0.7)) / 4
    assert nll(P, Y) == pytest.approx(expected, abs=1e-7)
    assert expected == pytest.approx(0.746941, abs=1e-6)


def test_ece_each_sample_in_its_own_bin():
    # confidences .9 .8 .6 .7, correct 1 0 0 1: (|1-.9| + |0-.8| + |0-.6| + |1-.7|)/4 = 0.45
    assert ece(P, Y, n_bins=15) == pytest.approx(0.45, abs=1e-7)


def test_ece_shared_bin_averages_before_the_gap():
    p = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45]])
    y = torch.tensor([0, 1, 0])
    # bin of .95: acc .5, conf .95 -> 2/3 * .45; bin of .55: acc 1, conf .55 -> 1/3 * .45
    assert ece(p, y, n_bins=15) == pytest.approx(0.45, abs=1e-7)
    # one bin: |mean acc - mean conf| = |2/3 - 0.816667| = 0.15
    assert ece(p, y, n_bins=1) == pytest.approx(abs(2 / 3 - (0.95 + 0.95 + 0.55) / 3), abs=1e-7)


def test_perfectly_calibrated_has_zero_ece():
    p = torch.tensor([[0.5, 0.5]] * 4)
    y = torch.tensor([0, 1, 0, 1])
    assert ece(p, y) == pytest.approx(0.0, abs=1e-12)


def test_brier():
    # rows: .01+.01, .64+.64, .36+.36, .09+.09 -> 2.2 / 4
    assert brier(P, Y) == pytest.approx(0.55, abs=1e-7)


def test_classification_metrics_keys():
    m = classification_metrics(P, Y)
    assert set(m) == {"accuracy", "nll", "ece", "adaptive_ece", "brier"}


M1 = [[0.9, 0.1], [0.2, 0.8]]
M2 = [[0.6, 0.4], [0.7, 0.3]]
MEMBERS = torch.tensor([M1, M2])


def test_disagreement():
    d = disagreement_matrix(MEMBERS)
    assert d.tolist() == [[0.0, 0.5], [0.5, 0.0]]  # predictions (0,1) vs (0,0)


def test_kl_matrix_both_directions():
    def kl(p, q):
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))

    k = kl_matrix(MEMBERS)
    want_12 = (kl(M1[0], M2[0]) + kl(M1[1], M2[1])) / 2
    want_21 = (kl(M2[0], M1[0]) + kl(M2[1], M1[1])) / 2
    assert k[0, 1].item() == pytest.approx(want_12, abs=1e-6)
    assert k[1, 0].item() == pytest.approx(want_21, abs=1e-6)
    assert want_12 == pytest.approx(0.380200, abs=1e-5)
    assert k[0, 0].item() == pytest.approx(0.0, abs=1e-12)


def test_correlation_matches_numpy():
    c = correlation_matrix(MEMBERS)
    want = np.corrcoef(np.array(M1).ravel(), np.array(M2).ravel())[0, 1]
    assert c[0, 1].item() == pytest.approx(want, abs=1e-6)


def test_off_diagonal_mean_and_report():
    mat = torch.tensor([[1.0, 2.0, 3.0], [4.0, 1.0, 5.0], [6.0, 7.0, 1.0]])
    assert off_diagonal_mean(mat) == pytest.approx((2 + 3 + 4 + 5 + 6 + 7) / 6)
    rep = diversity(MEMBERS)
    assert rep["disagreement"] == 0.5
    assert len(rep["matrices"]["kl"]) == 2


def test_combine_mean_and_vote():
    members = torch.tensor([
        [[0.6, 0.4, 0.0]], [[0.1, 0.5, 0.4]], [[0.2, 0.3, 0.5]], [[0.1, 0.6, 0.3]],
    ])
    assert combine(members, "mean").tolist()[0] == pytest.approx([0.25, 0.45, 0.3])
    assert combine(members, "vote").tolist()[0] == pytest.approx([0.25, 0.5, 0.25])


def test_nll_is_of_averaged_probabilities_not_logits():
    # Two confident members that disagree: averaged probabilities are 0.5/0.5.
    members = torch.tensor([[[0.99, 0.01]], [[0.01, 0.99]]])
    y = torch.tensor([0])
    assert nll(combine(members), y) == pytest.approx(math.log(2), abs=1e-6)


def test_diversity_of_a_single_member_is_defined():
    """One child (``--children 1``) has no pairs: NaN means, 1x1 matrices, no crash."""
    probs = torch.softmax(torch.randn(1, 5, 3), dim=2)
    div = diversity(probs)
    assert all(div[k] != div[k] for k in ("disagreement", "kl", "correlation"))  # NaN
    assert {k: len(v) for k, v in div["matrices"].items()} == {"disagreement": 1, "kl": 1, "correlation": 1}
