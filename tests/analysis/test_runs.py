"""`open_run`: tiny real runs of every kind, opened again for analysis: members rebuilt one at
a time give exactly the numbers in results.json, pruned children match their masks, and bad
run directories are refused in one line."""

from __future__ import annotations

import json
import os
import shutil
import weakref

import pytest
import torch

from evo_ensembles.analysis.runs import MCDropoutPass, MemberView, open_run
from evo_ensembles.errors import UserError
from evo_ensembles.metrics import classification_metrics
from evo_ensembles.subnet import eligible_parameters

PEER_RUNS = ("batchensemble", "mc-dropout", "deep-ensemble")
CLASSIFIERS = ["sparse", "stochastic", "noisy", *PEER_RUNS]  # the runs tests/analysis/conftest.py builds
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"),
                                    "fashion-mnist", "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed")


def _alive_at_most_one(run) -> int:
    refs, count = [], 0
    for m in run.members():
        refs.append(weakref.ref(m))
        assert sum(r() is not None for r in refs) <= 1  # the previous member is gone
        count += 1
    return count


@needs_fashion
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_members_reproduce_the_member_metrics_of_results_json(run_dir, name):
    run = open_run(run_dir(name))
    results = json.loads((run_dir(name) / "results.json").read_text())
    kind = "baseline" if name in PEER_RUNS else name
    assert (run.kind, run.method, len(run)) == (kind, results["method"], len(results["members"])) == (kind, name, 2)
    data = run.data()
    assert data.describe().items() <= results["data"].items()  # the same splits, rebuilt from config.json
    # Other batches than the run's give the same numbers, except MC Dropout: its masks are
    # drawn per pass over the batches in order, so only the run's batch size reproduces them.
    probs = run.member_probs(data.test.x, **({} if name == "mc-dropout" else {"batch_size": 300}))
    assert probs.shape == (2, len(data.test), 10)
    for i, member in enumerate(results["members"]):
        got = classification_metrics(probs[i], data.test.y, results["ece_bins"])
        assert got["accuracy"] == member["accuracy"]
        assert got["nll"] == pytest.approx(member["nll"], rel=1e-6)
        assert got["ece"] == pytest.approx(member["ece"], rel=1e-5, abs=1e-7)
    parent = run.parent()
    if kind == "baseline":
        assert parent is None and run.pruned_child(0) is None and run.child_mask(0) is None
    else:
        from evo_ensembles.ensemble import predict_probs

        p = classification_metrics(predict_probs(parent, data.test.x), data.test.y, results["ece_bins"])
        assert p["accuracy"] == results["parent"]["accuracy"]
    if name != "deep-ensemble":  # a deep ensemble's members are one stored file, loaded together
        assert _alive_at_most_one(run) == 2
    assert len(run.member_names()) == 2 and len(set(run.member_names())) == 2


@needs_fashion
@pytest.mark.parametrize("name", ["sparse", "stochastic"])
def test_the_pruned_child_is_the_parent_with_the_childs_mask_applied(run_dir, name):
    run = open_run(run_dir(name))
    parent = dict(run.parent().named_parameters())
    eligible = eligible_parameters(run.parent())
    for i in range(len(run)):
        mask, pruned = run.child_mask(i), dict(run.pruned_child(i).named_parameters())
        tuned = dict(run.member(i).named_parameters())
        assert set(mask) < set(eligible)  # the run's dense layers (first, last) are not pruned
        kept = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
        assert kept == pytest.approx(0.75, abs=0.01)
        for n, p in parent.items():
            if n in mask:
                assert bool((pruned[n][~mask[n]] == 0).all()) and torch.equal(pruned[n][mask[n]], p[mask[n]])
                assert bool((tuned[n][~mask[n]] == 0).all())  # the very mask the child was tuned with
            else:
                assert torch.equal(pruned[n], p)
    assert run.pruned_child(0) is not run.pruned_child(0)  # a copy each time; the parent is untouched
    assert torch.equal(dict(run.parent().named_parameters())[next(iter(mask))], parent[next(iter(mask))])


@needs_fashion
def test_peer_members_are_modules_of_their_own_output(run_dir):
    x = open_run(run_dir("sparse")).data().test.x[:4].clone().requires_grad_(True)
    be = open_run(run_dir("batchensemble"))
    m0, m1 = be.member(0), be.member(1)
    assert isinstance(m0, MemberView) and m0(x).shape == (4, 10)
    assert not torch.equal(m0(x), m1(x))
    m0(x).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)

    mc = open_run(run_dir("mc-dropout"))
    p0, p1 = mc.member(0), mc.member(1)
    assert isinstance(p0, MCDropoutPass) and not p0.training
    rng = torch.get_rng_state()
    assert torch.equal(p0(x), p0(x)) and not torch.equal(p0(x), p1(x))  # dropout on, seeded per pass
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG is forked, not consumed
    x.grad = None
    p1(x).sum().backward()
    assert bool(x.grad.abs().sum() > 0)


def test_imagenet_members_are_regenerated_from_their_descriptors(run_dir):
    out = run_dir("imagenet")
    run, results = open_run(out), json.loads((out / "results.json").read_text())
    assert (run.kind, run.method, len(run)) == ("imagenet", "noisy", 2)
    data = run.data()
    assert data.test.x.dtype == torch.uint8 and len(data.test) == results["data"]["sizes"]["test"] == 6
    probs = run.member_probs(data.test.x, batch_size=4)
    for i, member in enumerate(results["members"]):
        got = classification_metrics(probs[i], data.test.y, results["ece_bins"])
        assert got["accuracy"] == member["accuracy"] and got["nll"] == pytest.approx(member["nll"], rel=1e-5)
    mask = run.child_mask(0)
    moved = {n: ~torch.isclose(p, run.parent().get_parameter(n)) for n, p in run.member(0).named_parameters()
             if n in mask}
    assert all(not bool((moved[n] & ~mask[n]).any()) for n in mask)  # noise only inside the subnetwork
    assert _alive_at_most_one(run) == 2 and run.pruned_child(0) is None


def test_rl_runs_give_policy_members_over_observations(run_dir):
    from evo_ensembles.agents.ensemble_policy import NoisyEnsemblePolicy
    from evo_ensembles.subnet import ChildSpec

    run = open_run(run_dir("rl"))
    assert (run.kind, run.method, len(run), run.data()) == ("rl", "rl-noisy", 2, None)
    obs = run.observations(16, seed=0)
    assert obs.shape == (16, 4) and torch.equal(obs, run.observations(16, seed=0))
    policy = NoisyEnsemblePolicy(run.agent()[0].policy, [ChildSpec.from_dict(d) for d in run.results["members"]],
                                 batched=False)
    torch.testing.assert_close(run.member_probs(obs), policy.member_probs(obs))
    assert run.member(0)(obs).shape == (16, 2) and _alive_at_most_one(run) == 2
    agent = open_run(run_dir("agent"))  # the agent directory alone: the parent, no members
    assert (agent.kind, agent.method, len(agent)) == ("rl", "agent", 0)
    assert agent.parent()(obs).shape == (16, 2)


@needs_fashion
def test_bad_run_directories_are_refused_in_one_line(run_dir, tmp_path):
    def refused(path, *words):
        with pytest.raises(UserError) as e:
            open_run(path)
        msg = str(e.value)
        assert "\n" not in msg and all(w in msg for w in words), msg

    refused(tmp_path / "nothing-here", "not a directory", "config.json")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "no config.json", "results.json")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run_dir("sparse") / "config.json", unfinished / "config.json")
    refused(unfinished, "unfinished", "results.json")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "results.json").write_text('{"method": "my-own-thing"}')
    refused(other, "unknown method", "my-own-thing")
    (other / "results.json").write_text("[1, 2")
    refused(other, "cannot read")
    run = open_run(run_dir("sparse"))
    for call in (lambda: run.member(2), lambda: run.observations(4), lambda: run.pruned_child(-1)):
        with pytest.raises(UserError) as e:
            call()
        assert "\n" not in str(e.value)


@needs_fashion
@pytest.mark.parametrize("name", ["sparse", "noisy", "batchensemble", "deep-ensemble"])
def test_load_run_gives_the_ensemble_and_one_exportable_module_with_its_outputs(run_dir, name):
    import evo_ensembles as ee

    run = ee.load_run(run_dir(name))
    assert run.results["method"] == name and run.config["seed"] == 0
    x = run.data().test.x[:64]
    ens = run.ensemble()
    assert len(ens) == 2 and ens.temperature is not None  # every run fits one on validation
    for calibrated in (False, True):
        want = run.predict_proba(x, calibrated=calibrated)
        assert torch.allclose(ens.predict_proba(x, calibrated=calibrated), want, atol=1e-6)
        module = run.as_module(calibrated=calibrated)
        assert isinstance(module, torch.nn.Module) and not module.training
        assert torch.allclose(module(x), want, atol=1e-6)
    exported = torch.export.export(run.as_module(), (x,))  # calibrated: the run fit a temperature
    assert torch.allclose(exported.module()(x), run.predict_proba(x, calibrated=True), atol=1e-6)


@needs_fashion
def test_an_mc_dropout_run_is_an_ensemble_but_not_one_module(run_dir):
    run = open_run(run_dir("mc-dropout"))
    x = run.data().test.x[:16]
    assert torch.allclose(run.ensemble().predict_proba(x), run.predict_proba(x), atol=1e-6)
    with pytest.raises(UserError, match="cannot be exported"):
        run.as_module()
