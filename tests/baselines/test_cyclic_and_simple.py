"""Snapshot, FGE, MC Dropout, Deep Ensemble, Independent: members at the lr minima, BatchNorm
left in eval mode, FLOPs and epochs as documented."""

import pytest
import torch

from evo_ensembles.baselines import (
    BaselineResult,
    deep_ensemble,
    fge,
    independent,
    mc_dropout,
    reference_flops,
    snapshot,
)
from evo_ensembles.baselines.dropout_passes import MCDropoutEnsemble, default_dropout, dropout_modules
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.errors import UserError
from evo_ensembles.metrics import nll
from evo_ensembles.models import build_model
from evo_ensembles.train import TrainConfig


def splits(n=64, shape=(1, 16, 16), classes=3, seed=0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    def part(k):
        x = torch.randn(k, *shape, generator=g)
        return ArrayData(x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long())
    return DataSplits("random", part(n), part(32), part(32), classes, shape, (0.0,), (1.0,))


def cfg(**kw):
    return TrainConfig(**{"epochs": 4, "batch_size": 16, "lr": 1e-2, **kw})


def test_snapshot_collects_one_member_per_cycle_at_its_lr_minimum():
    res = snapshot("mlp-8", splits(), cfg(), members=2, progress=False)
    lrs = res.trace["lr"]
    assert len(res.ensemble) == 2 and len(lrs) == 16  # 4 steps per epoch, 2 cycles of 8 steps
    assert [m["step"] for m in res.members] == [7, 15]
    for k, m in enumerate(res.members):
        cycle = lrs[8 * k: 8 * k + 8]
        assert m["lr"] == min(cycle) and cycle[0] == pytest.approx(1e-2)  # restarted at the top
    assert res.epochs == 4
    a, b = (p.detach() for p in (res.ensemble.members[0].parameters().__next__(),
                                 res.ensemble.members[1].parameters().__next__()))
    assert not torch.equal(a, b)


def test_snapshot_refuses_a_budget_that_does_not_split_into_cycles():
    with pytest.raises(UserError, match="multiple of members"):
        snapshot("mlp-8", splits(), cfg(epochs=5), members=2, progress=False)


def test_fge_collects_members_at_mid_cycle_at_alpha2_after_pretraining():
    res = fge("mlp-8", splits(), cfg(epochs=6), members=2, cycle_epochs=2, lr_high=0.05, lr_low=0.0005,
              progress=False)
    lrs = res.trace["lr"]  # the cyclic phase: 2 cycles of 8 steps
    assert len(res.ensemble) == 2 and len(lrs) == 16
    assert [m["step"] for m in res.members] == [4, 12]
    assert all(m["lr"] == pytest.approx(0.0005) for m in res.members)  # α2 at mid-cycle
    assert lrs[0] == pytest.approx(0.05) and lrs[8] == pytest.approx(0.05)  # α1 at the boundaries
    assert min(lrs) == pytest.approx(0.0005)
    assert [m["epoch"] for m in res.members] == [2 + 5 / 4, 2 + 13 / 4]
    with pytest.raises(UserError, match="even"):
        fge("mlp-8", splits(), cfg(epochs=6), cycle_epochs=3, progress=False)
    with pytest.raises(UserError, match="pre-training"):
        fge("mlp-8", splits(), cfg(epochs=4), members=2, cycle_epochs=2, progress=False)


def test_mc_dropout_switches_only_dropout_to_train_mode_and_is_reproducible():
    res = mc_dropout("resnet-8", splits(shape=(3, 16, 16)), cfg(epochs=1), passes=3, progress=False)
    model = res.ensemble.model
    assert default_dropout("resnet-8") == 0.3 and default_dropout("lenet-5") == 0.5
    assert all(m.p == 0.3 for m in dropout_modules(model))
    seen = []
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(mod.training)) for m in bn + dropout_modules(model)]
    x = torch.randn(5, 3, 16, 16)
    p1 = res.ensemble.member_probs(x)
    for h in hooks:
        h.remove()
    n_bn = len(bn) * 3
    assert seen.count(False) == n_bn and seen.count(True) == len(seen) - n_bn  # BN eval, dropout train
    running = bn[0].running_mean.clone()
    p2 = res.ensemble.member_probs(x)
    assert torch.equal(p1, p2) and torch.equal(running, bn[0].running_mean)  # seeded, BN untouched
    assert not torch.equal(p1[0], p1[1])
    with pytest.raises(UserError, match="dropout modules"):
        MCDropoutEnsemble(build_model("mlp-8", (1, 4, 4), 3))


def test_every_ensemble_nll_is_the_nll_of_averaged_probabilities():
    data = splits()
    res = mc_dropout("mlp-8", data, cfg(epochs=1), passes=4, progress=False)
    out = res.ensemble.evaluate(data.test.x, data.test.y)
    probs = res.ensemble.member_probs(data.test.x).mean(0)
    assert out["ensemble"]["nll"] == pytest.approx(nll(probs, data.test.y))
    logit_avg = torch.log_softmax(torch.log(res.ensemble.member_probs(data.test.x)).mean(0), 1)
    assert out["ensemble"]["nll"] != pytest.approx(float(-logit_avg.gather(1, data.test.y[:, None]).mean()))


def test_deep_ensemble_trains_m_seeded_models_and_counts_their_flops():
    data = splits()
    res = deep_ensemble("mlp-8", data, cfg(epochs=2), members=3, progress=False)
    one = independent("mlp-8", data, cfg(epochs=2), progress=False)
    assert isinstance(res, BaselineResult) and len(res.ensemble) == 3 and res.epochs == 6
    assert len({m["seed"] for m in res.members}) == 3
    assert res.training_flops == pytest.approx(3 * one.training_flops)
    assert one.training_flops == pytest.approx(reference_flops("mlp-8", data, 2, batch_size=16))
    assert res.cost(one.training_flops, 2).relative == pytest.approx(3.0)


def test_snapshot_resumes_to_the_same_members(tmp_path):
    data = splits()
    whole = snapshot("mlp-8", data, cfg(), members=2, progress=False)
    # An interrupted run: the first 2 epochs with the same resume directory, then the full run.
    from dataclasses import replace

    from evo_ensembles.baselines.cyclic import CollectAtSteps
    from evo_ensembles.train import fit
    run = replace(cfg(), schedule="cosine-restarts", cycle_epochs=2)
    model = build_model("mlp-8", data.input_shape, data.num_classes, seed=0)
    class Stop(CollectAtSteps):
        def on_epoch_end(self, model, epoch, stats):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, data.train, run, val=data.val, callbacks=[Stop([7, 15])], checkpoint_dir=tmp_path / "model",
            progress=False)
    resumed = snapshot("mlp-8", data, cfg(), members=2, progress=False, workdir=tmp_path)
    for a, b in zip(whole.ensemble.members, resumed.ensemble.members):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k
    assert whole.trace["lr"] == resumed.trace["lr"]
