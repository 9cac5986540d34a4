import json

import pytest
import torch

from evo_ensembles.errors import CheckpointError, UserError
from evo_ensembles.methods.noisy import NoisyEnsemble, noisy_ensemble, parent_fingerprint


def _result(net, data, **kw):
    return noisy_ensemble(net, data.x[:64], data.y[:64], progress=False, **{"popsize": 8, "top_k": 4, **kw})


def test_noisy_ensemble_selects_top_k_on_validation(tiny_net, tiny_data):
    net = tiny_net()
    res = _result(net, tiny_data)
    assert res.trust_region is not None and res.sigma == res.trust_region.sigma > 0
    assert len(res.ensemble) == 4 and len(res.records) == 8
    fits = [r["fitness"] for r in res.records]
    assert sorted(fits[i] for i in res.selected) == sorted(fits)[-4:]
    probs = res.ensemble.member_probs(tiny_data.x)
    assert probs.shape == (4, len(tiny_data), 3)
    # Members are the children the descriptors describe.
    torch.testing.assert_close(probs[0], torch.softmax(res.ensemble.child(0)(tiny_data.x), 1))


def test_given_sigma_skips_the_search_and_parent_can_vote(tiny_net, tiny_data):
    net = tiny_net()
    res = _result(net, tiny_data, sigma=0.05, include_parent=True)
    assert res.trust_region is None and res.sigma == 0.05
    assert res.ensemble.member_probs(tiny_data.x).shape[0] == 5


def test_save_and_load_give_identical_predictions(tiny_net, tiny_data, tmp_path):
    net = tiny_net()
    res = _result(net, tiny_data, sigma=0.1, combine="vote")
    path = res.ensemble.save(tmp_path / "ensemble.json")
    again = NoisyEnsemble.load(path, tiny_net())
    assert again.combine_method == "vote"
    assert torch.equal(again.predict_proba(tiny_data.x), res.ensemble.predict_proba(tiny_data.x))
    assert json.loads(path.read_text())["parent_fingerprint"] == parent_fingerprint(net)


def test_descriptors_from_another_parent_are_refused(tiny_net, tiny_data, tmp_path):
    res = _result(tiny_net(0), tiny_data, sigma=0.1)
    path = res.ensemble.save(tmp_path / "ensemble.json")
    with pytest.raises(CheckpointError, match="different parent"):
        NoisyEnsemble.load(path, tiny_net(1))
    with pytest.raises(CheckpointError):
        NoisyEnsemble.load(tmp_path / "missing.json", tiny_net(0))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        NoisyEnsemble.load(tmp_path / "bad.json", tiny_net(0))


def test_bad_arguments(tiny_net, tiny_data):
    with pytest.raises(UserError):
        _result(tiny_net(), tiny_data, top_k=9)
    with pytest.raises(UserError):
        _result(tiny_net(), tiny_data, target_kl=0.0)
    with pytest.raises(UserError):
        _result(tiny_net(), tiny_data, sigma=-0.1)


def test_same_seed_same_ensemble(tiny_net, tiny_data):
    a = _result(tiny_net(), tiny_data, seed=3)
    b = _result(tiny_net(), tiny_data, seed=3)
    assert a.ensemble.specs == b.ensemble.specs and a.sigma == b.sigma


def test_an_interrupted_noisy_search_resumes_without_redoing_cells_or_children(tiny_net, tiny_data, tmp_path):
    from evo_ensembles.train.checkpoint import RecordCache

    net = tiny_net(0)
    x, y = tiny_data.x, tiny_data.y
    real_forward, calls = net.forward, {"n": 0, "crash_at": None}

    def counting_forward(inp):
        calls["n"] += 1
        if calls["n"] == calls["crash_at"]:
            raise KeyboardInterrupt
        return real_forward(inp)

    net.forward = counting_forward
    whole = noisy_ensemble(net, x, y, popsize=8, top_k=3, seed=1, progress=False)
    total = calls["n"]  # every grid cell and child: one forward each, plus the reference passes

    cache_path = tmp_path / "records.json"
    calls.update(n=0, crash_at=total - 2)  # dies while scoring the population's last children
    with pytest.raises(KeyboardInterrupt):
        noisy_ensemble(net, x, y, popsize=8, top_k=3, seed=1, progress=False,
                       cache=RecordCache(cache_path, {"parent": "p"}))
    saved = RecordCache(cache_path, {"parent": "p"})
    children = [k for k in saved if k.startswith("child ")]
    assert any(k.startswith("cell ") for k in saved) and 0 < len(children) < 8

    calls.update(n=0, crash_at=None)
    resumed = noisy_ensemble(net, x, y, popsize=8, top_k=3, seed=1, progress=False, cache=saved)
    net.forward = real_forward
    assert resumed.sigma == whole.sigma and resumed.selected == whole.selected
    assert [s.to_dict() for s in resumed.ensemble.specs] == [s.to_dict() for s in whole.ensemble.specs]
    assert calls["n"] <= (8 - len(children)) + 3  # only the missing children (+ reference passes)
