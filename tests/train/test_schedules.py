"""The cyclic schedules of Snapshot and FGE, and config keys of earlier runs kept stable."""

import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.train import TrainConfig, build_optimizer, build_scheduler, cycle_minima
from evo_ensembles.train.optim import cyclic_factor


def lrs(cfg, steps_per_epoch):
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_restarts_fall_to_min_lr_and_restart_each_cycle():
    trace = lrs(TrainConfig(epochs=4, lr=0.1, schedule="cosine-restarts", cycle_epochs=2, min_lr=0.0), 5)
    assert trace[0] == pytest.approx(0.1) and trace[10] == pytest.approx(0.1)
    assert cycle_minima("cosine-restarts", 2, 5, 20) == [9, 19]
    assert trace[9] == min(trace[:10]) and trace[19] == min(trace[10:])
    assert all(a > b for a, b in zip(trace[:9], trace[1:10]))  # monotone within a cycle


def test_cyclic_is_alpha1_at_boundaries_and_alpha2_at_mid_cycle():
    trace = lrs(TrainConfig(epochs=4, lr=0.05, schedule="cyclic", cycle_epochs=2, min_lr=0.0005), 4)
    assert cycle_minima("cyclic", 2, 4, 16) == [4, 12]
    assert trace[4] == pytest.approx(0.0005) and trace[12] == pytest.approx(0.0005)
    assert trace[0] == pytest.approx(0.05) and trace[8] == pytest.approx(0.05)
    assert trace[2] == pytest.approx((0.05 + 0.0005) / 2)  # linear in between
    assert cyclic_factor(6, 8, 0.01) == pytest.approx(cyclic_factor(2, 8, 0.01))  # symmetric


def test_cyclic_settings_are_checked_and_old_config_keys_are_unchanged():
    with pytest.raises(UserError, match="cycle_epochs"):
        TrainConfig(epochs=4, schedule="cosine-restarts")
    with pytest.raises(UserError, match="even"):
        TrainConfig(epochs=4, schedule="cyclic", cycle_epochs=3)
    with pytest.raises(UserError, match="min_lr"):
        TrainConfig(epochs=4, lr=0.01, schedule="cyclic", cycle_epochs=2, min_lr=0.1)
    assert "cycle_epochs" not in TrainConfig().to_dict() and "min_lr" not in TrainConfig().to_dict()
    assert TrainConfig(epochs=2, schedule="cyclic", cycle_epochs=2).to_dict()["cycle_epochs"] == 2
