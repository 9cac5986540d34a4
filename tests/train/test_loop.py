import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.train import Callback, TrainConfig, build_optimizer, build_scheduler, fit


def _flat(net):
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def test_fit_learns_and_reports(tiny_net, tiny_data):
    net = tiny_net()
    res = fit(net, tiny_data, TrainConfig(epochs=8, lr=3e-3, batch_size=16), val=tiny_data,
              progress=False)
    assert len(res.history) == 8
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert {"loss", "train_accuracy", "val_accuracy", "lr", "samples_per_second"} <= set(res.history[0])
    assert res.samples == 8 * len(tiny_data)


def test_same_seed_same_weights(tiny_net, tiny_data):
    cfg = TrainConfig(epochs=2, batch_size=16, seed=4)
    a, b = tiny_net(), tiny_net()
    fit(a, tiny_data, cfg, progress=False)
    fit(b, tiny_data, cfg, progress=False)
    assert torch.equal(_flat(a), _flat(b))
    c = tiny_net()
    fit(c, tiny_data, TrainConfig(epochs=2, batch_size=16, seed=5), progress=False)
    assert not torch.equal(_flat(a), _flat(c))


class _Interrupt(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_batch_start(self, model, step):
        if step == self.at_step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer,schedule", [("adam", "one-cycle"), ("sgd", "step-decay")])
def test_resume_after_interruption_matches_uninterrupted(tiny_net, tiny_data, tmp_path, optimizer, schedule):
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer=optimizer, schedule=schedule, lr=0.01, seed=1)
    full = tiny_net()
    fit(full, tiny_data, cfg, progress=False)

    net = tiny_net()
    with pytest.raises(KeyboardInterrupt):
        fit(net, tiny_data, cfg, checkpoint_dir=tmp_path, progress=False, callbacks=[_Interrupt(8)])
    assert (tmp_path / "train_state.safetensors").exists()
    resumed = tiny_net(seed=123)  # fresh weights: everything must come from the checkpoint
    res = fit(resumed, tiny_data, cfg, checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from_epoch == 1
    assert len(res.history) == 3
    assert torch.allclose(_flat(resumed), _flat(full), atol=1e-6)
    assert not (tmp_path / "train_state.safetensors").exists()  # cleared when finished


def test_resume_refuses_other_config(tiny_net, tiny_data, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_net(), tiny_data, cfg, checkpoint_dir=tmp_path, progress=False, callbacks=[_Interrupt(7)])
    with pytest.raises(UserError):
        fit(tiny_net(), tiny_data, TrainConfig(epochs=2, batch_size=8), checkpoint_dir=tmp_path,
            progress=False)


def test_one_cycle_schedule_shape(tiny_net):
    net = tiny_net()
    cfg = TrainConfig(epochs=10, lr=0.1, optimizer="sgd", schedule="one-cycle", pct_start=0.1,
                      div_factor=100, final_lr=1e-7)
    opt = build_optimizer(net, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    lrs, moms = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.001)
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert int(torch.tensor(lrs).argmax()) in (9, 10)  # peak at 10% of the steps
    assert lrs[-1] < 1e-4
    assert moms[0] == pytest.approx(0.95) and min(moms) == pytest.approx(0.85, abs=1e-3)
    assert moms[int(torch.tensor(lrs).argmax())] == pytest.approx(0.85, abs=1e-3)  # inverse


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 11])
def test_one_cycle_survives_short_runs(tiny_net, steps):
    """A warm-up of exactly one step made OneCycleLR divide by zero (10 steps at pct 0.1)."""
    net = tiny_net()
    cfg = TrainConfig(epochs=1, lr=0.1, schedule="one-cycle", pct_start=0.1)
    opt = build_optimizer(net, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(0 < lr <= 0.1 + 1e-12 for lr in lrs)


def test_step_decay_recipe(tiny_net):
    net = tiny_net()
    cfg = TrainConfig(epochs=10, lr=0.1, optimizer="sgd", schedule="step-decay")
    opt = build_optimizer(net, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[49] == pytest.approx(0.1)
    assert lrs[70] == pytest.approx(0.1 - 0.099 * 0.5, rel=1e-6)
    assert lrs[95] == pytest.approx(0.001)


def test_optimizer_holds_the_models_own_parameters(tiny_net):
    import copy

    parent = tiny_net()
    child = copy.deepcopy(parent)
    opt = build_optimizer(child, TrainConfig())
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for p in child.parameters()}
    assert held.isdisjoint({id(p) for p in parent.parameters()})


def test_bad_config():
    for kwargs in ({"epochs": 0}, {"lr": 0}, {"optimizer": "rmsprop"}, {"schedule": "x"}):
        with pytest.raises(UserError):
            TrainConfig(**kwargs)
