"""Temperature scaling: lowers validation NLL, keeps arg-max, fixed fallbacks, no test labels."""

import math

import pytest
import torch

from evo_ensembles.calibration import as_logits, fit_temperature, tempered_probs
from evo_ensembles.errors import UserError
from evo_ensembles.metrics import nll


def _overconfident(n=3000, c=5, scale=4.0, seed=0, m=None):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, c, generator=g)
    y = torch.multinomial(torch.softmax(base, 1), 1, generator=g).squeeze(1)
    if m is None:
        return scale * base, y
    return torch.stack([scale * (base + 0.3 * torch.randn(n, c, generator=g)) for _ in range(m)]), y


def test_temperature_lowers_validation_nll_and_finds_the_truth():
    z, y = _overconfident(scale=4.0)
    fit = fit_temperature(z, y)
    assert fit.nll_after < fit.nll_before
    assert fit.temperature == pytest.approx(4.0, rel=0.1)  # labels were drawn from softmax(z / 4)
    assert fit.nll_after == pytest.approx(nll(tempered_probs(z, fit.temperature), y), abs=1e-6)
    assert fit.fallback is None and not fit.at_bound


def test_temperature_never_changes_a_single_models_argmax():
    z, y = _overconfident(scale=0.3)  # under-confident: T < 1
    fit = fit_temperature(z, y)
    assert fit.temperature < 1
    for t in (fit.temperature, 0.05, 20.0):
        assert torch.equal(tempered_probs(z, t).argmax(1), z.argmax(1))


def test_ensemble_temperature_applies_to_every_member_before_averaging():
    z, y = _overconfident(m=3)
    fit = fit_temperature(z, y)
    t = fit.temperature
    expected = torch.stack([torch.softmax(zm.double() / t, 1) for zm in z]).mean(0)
    assert torch.allclose(tempered_probs(z, t).double(), expected, atol=1e-6)
    assert fit.nll_after < fit.nll_before


def test_log_probabilities_scale_exactly_like_logits():
    z, y = _overconfident(n=500)
    a = fit_temperature(z, y).temperature
    b = fit_temperature(as_logits(torch.softmax(z.double(), 1)), y).temperature
    assert a == pytest.approx(b, rel=1e-6)


def test_combined_temperature_for_vote():
    z, y = _overconfident(m=4, n=800)
    fit = fit_temperature(z, y, where="combined", combine="vote")
    assert math.isfinite(fit.temperature) and fit.nll_after <= fit.nll_before
    with pytest.raises(UserError):
        fit_temperature(z, y, where="members", combine="vote")


def test_fit_is_deterministic_and_ignores_other_labels():
    z, y = _overconfident()
    assert fit_temperature(z, y) == fit_temperature(z.clone(), y.clone())


def test_fallbacks_and_errors_never_give_nan():
    z, _ = _overconfident(n=50)
    one_class = fit_temperature(z, torch.zeros(50, dtype=torch.long))
    assert one_class.temperature == 1.0 and one_class.fallback
    empty = fit_temperature(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    assert empty.temperature == 1.0 and empty.fallback
    bad = z.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(UserError, match="non-finite"):
        fit_temperature(bad, torch.arange(50) % 5)
    with pytest.raises(UserError):
        tempered_probs(z, 0.0)
    with pytest.raises(UserError):
        fit_temperature(z, torch.arange(49) % 5)
