"""OOD detection, selective classification and adaptive ECE: golden values and invariants."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from evo_ensembles.metrics import (
    adaptive_ece,
    augrc,
    aupr,
    aurc,
    auroc,
    ece,
    fpr_at_tpr,
    ood_metrics,
    reliability_bins,
    risk_at_coverage,
    risk_coverage,
    selective_metrics,
)


def test_auroc_identical_is_half_and_separated_is_one():
    s = torch.rand(200, generator=torch.Generator().manual_seed(0))
    assert auroc(s, s) == pytest.approx(0.5, abs=1e-12)
    assert auroc(s, s + 2.0) == 1.0
    assert auroc(s + 2.0, s) == 0.0


def test_auroc_and_aupr_match_scikit_learn():
    g = torch.Generator().manual_seed(1)
    s_id, s_ood = torch.randn(300, generator=g), torch.randn(120, generator=g) + 0.7
    scores = np.concatenate([s_id.numpy(), s_ood.numpy()])
    labels = np.r_[np.zeros(300), np.ones(120)]
    assert auroc(s_id, s_ood) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr(s_id, s_ood, positive="ood") == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert aupr(s_id, s_ood, positive="id") == pytest.approx(average_precision_score(1 - labels, -scores),
                                                             abs=1e-12)
    # hand count: P(ood > id) + ½ P(tie)
    pairs = (s_ood.view(-1, 1) > s_id.view(1, -1)).double().mean() + 0.5 * (s_ood.view(-1, 1) == s_id.view(1, -1)
                                                                           ).double().mean()
    assert auroc(s_id, s_ood) == pytest.approx(float(pairs), abs=1e-12)


def test_fpr95_hand_made():
    # 20 ID scores 0..19, OOD scores 18.5, 30, 31, ...: accepting 95 % of ID (19 of 20)
    # needs the threshold 18; OOD 18.5 is then rejected: FPR 0. At TPR 1 (threshold 19) it is accepted.
    s_id = torch.arange(20.0)
    s_ood = torch.tensor([18.5, 30.0, 31.0, 32.0])
    assert fpr_at_tpr(s_id, s_ood, 0.95) == 0.0
    assert fpr_at_tpr(s_id, s_ood, 1.0) == 0.25
    # an OOD set that looks more in-distribution than every ID input is always accepted
    assert fpr_at_tpr(s_id, torch.full((5,), -1.0)) == 1.0
    assert set(ood_metrics(s_id, s_ood)) == {"auroc", "aupr_in", "aupr_out", "fpr95"}


def test_ood_metrics_reject_bad_scores():
    with pytest.raises(ValueError):
        auroc([], [1.0])
    with pytest.raises(ValueError):
        auroc([float("nan")], [1.0])
    with pytest.raises(ValueError):
        aupr([0.0], [1.0], positive="both")


def test_aurc_augrc_hand_computed():
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6])
    correct = torch.tensor([1, 0, 1, 0])
    # errors among top k: 0, 1, 1, 2 → risks 0, 1/2, 1/3, 1/2; generalized 0, 1/4, 1/4, 2/4
    assert aurc(conf, correct) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert augrc(conf, correct) == pytest.approx((0 + 0.25 + 0.25 + 0.5) / 4)
    assert risk_at_coverage(conf, correct, 0.5) == pytest.approx(0.5)
    assert risk_at_coverage(conf, correct, 1.0) == pytest.approx(0.5)
    rc = risk_coverage(conf, correct)
    assert rc["coverage"].tolist() == [0.25, 0.5, 0.75, 1.0]


def test_selective_ties_do_not_depend_on_input_order():
    conf = torch.tensor([0.5, 0.5, 0.9, 0.5])
    correct = torch.tensor([1, 0, 1, 1])
    perm = torch.tensor([3, 1, 0, 2])
    assert aurc(conf, correct) == pytest.approx(aurc(conf[perm], correct[perm]))
    # the tie group {0.5 ×3} holds 1 error: spread as 1/3 per accepted input
    cum = [0, 1 / 3, 2 / 3, 1]
    assert aurc(conf, correct) == pytest.approx(sum(c / k for c, k in zip(cum, [1, 2, 3, 4])) / 4)


def test_perfect_ranking_has_lowest_aurc():
    correct = torch.tensor([1, 1, 1, 0, 0])
    good = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1])
    bad = torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9])
    assert aurc(good, correct) < aurc(bad, correct)
    assert augrc(good, correct) < augrc(bad, correct)
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    m = selective_metrics(p, torch.tensor([0, 0]))
    assert m["aurc"] == pytest.approx(0.5 * (0 + 0.5)) and m["risk_at_90"] == 0.5


def test_adaptive_ece_hand_computed_and_equal_width_agrees_on_one_bin():
    p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]])
    y = torch.tensor([0, 1, 0, 0])
    # bins by confidence: {0.6 wrong, 0.7 right} → |0.5 − 0.65|; {0.8, 0.9 right} → |1 − 0.85|
    assert adaptive_ece(p, y, n_bins=2) == pytest.approx(0.5 * 0.15 + 0.5 * 0.15)
    assert adaptive_ece(p, y, n_bins=1) == pytest.approx(ece(p, y, n_bins=1))
    b = reliability_bins(p, y, n_bins=2, adaptive=True)
    assert b["count"] == [2, 2]
    assert sum(reliability_bins(p, y, 15)["count"]) == 4
