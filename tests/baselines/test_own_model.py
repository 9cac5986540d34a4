"""Every peer on the user's own model: a CNN of their own (BatchNorm and Dropout included),
given as a module (copied, never modified) or as a factory, on data made here."""

import pytest
import torch
from torch import nn

from evo_ensembles.baselines import PEERS, get_peer
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.errors import UserError
from evo_ensembles.models import MLP
from evo_ensembles.train import TrainConfig

SHAPE = (1, 12, 12)
OPTIONS = {"snapshot": {"members": 2}, "fge": {"members": 1, "cycle_epochs": 2}, "bagging": {"members": 2},
           "deep-ensemble": {"members": 2}, "dst": {"members": 2, "update_interval": 2},
           "edst": {"members": 2, "update_interval": 2}, "treenet": {"members": 2, "split": "4"},
           "batchensemble": {"members": 2}, "mimo": {"members": 2}, "mc-dropout": {"passes": 2},
           "mothernets": {"members": 2}}


class MyCNN(nn.Sequential):
    """A user's network the library has never seen: conv, BatchNorm, dropout, linear head."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 3))


def splits() -> DataSplits:
    g = torch.Generator().manual_seed(0)

    def part(k):
        x = torch.randn(k, *SHAPE, generator=g)
        return ArrayData(x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long())

    return DataSplits("made-here", part(48), part(16), part(24), 3, SHAPE, (0.0,), (1.0,))


@pytest.mark.parametrize("name", [p for p in PEERS if p != "mothernets"])
def test_every_peer_trains_the_users_own_cnn_and_leaves_it_untouched(name):
    data, mine = splits(), MyCNN()
    before = {k: v.clone() for k, v in mine.state_dict().items()}
    cfg = TrainConfig(epochs=3 if name in ("edst", "fge") else 2, batch_size=16, lr=3e-3)  # pre-train, then cycles
    res = get_peer(name)(mine, data, cfg, **OPTIONS.get(name, {}), progress=False)
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape[1:] == (24, 3) and res.training_flops > 0 and res.epochs > 0
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:2]))
    assert all(torch.equal(v, before[k]) for k, v in mine.state_dict().items())  # copied, never modified
    if len(res.ensemble) > 1:
        assert not torch.allclose(probs[0], probs[1])
    if name in ("deep-ensemble", "treenet", "batchensemble"):  # one of each kind of member
        # a factory gives the same ensemble as the module: both are seeded the same way
        again = get_peer(name)(MyCNN, data, cfg, **OPTIONS.get(name, {}), progress=False)
        torch.testing.assert_close(again.ensemble.member_probs(data.test.x), probs)


def test_mothernets_takes_the_librarys_mlp_of_your_widths_and_refuses_other_models():
    data = splits()
    res = get_peer("mothernets")(MLP(SHAPE, 3, hidden=(16,)), data, TrainConfig(epochs=2, batch_size=16),
                                 members=2)
    assert len(res.ensemble) == 2
    with pytest.raises(UserError, match="^MotherNets here widens MLPs; .* got 'MyCNN'"):
        get_peer("mothernets")(MyCNN(), data, TrainConfig(epochs=2))


class NoDropout(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 3))


class Residual(nn.Module):
    """Not a chain of layers: TreeNet cannot cut it, MIMO's output is not its last Linear's."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), nn.Linear(3, 3)

    def forward(self, x):
        h = self.body(x)
        return h + self.head(h).relu()


class WithLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.out = nn.LSTM(12, 8, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.rnn(x[:, 0])[0][:, -1])


@pytest.mark.parametrize("name, model, message", [
    ("mc-dropout", NoDropout(), "^MC Dropout uses the model's own dropout layers, and NoDropout has none"),
    ("dropout", NoDropout(), "^the dropout model uses the model's own dropout layers"),
    ("treenet", Residual(), "^TreeNet has no default split for a Residual; give split="),
    ("treenet", MyCNN(), "^TreeNet has no default split for a MyCNN; give split="),
    ("mimo", Residual(), "^MIMO widens the last nn.Linear .* Residual's output is not that layer's output"),
    ("batchensemble", WithLSTM(), "^BatchEnsemble makes every nn.Linear and nn.Conv2d rank-1 .* also has LSTM"),
])
def test_architectures_a_peer_cannot_wrap_are_refused_in_one_line(name, model, message):
    with pytest.raises(UserError, match=message) as e:
        get_peer(name)(model, splits(), TrainConfig(epochs=1, batch_size=16), progress=False)
    assert "\n" not in str(e.value)


def test_a_factory_that_returns_no_module_and_a_layer_that_cannot_be_redrawn_are_refused():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))
            self.fc = nn.Linear(144, 3)

        def forward(self, x):
            return self.fc(x.flatten(1)) * self.w

    with pytest.raises(UserError, match="returned a int, not an nn.Module"):
        get_peer("independent")(lambda: 3, splits(), TrainConfig(epochs=1))
    with pytest.raises(UserError, match="Scale .* has parameters but no reset_parameters"):
        get_peer("deep-ensemble")(Scale(), splits(), TrainConfig(epochs=1), members=2)
    res = get_peer("deep-ensemble")(Scale, splits(), TrainConfig(epochs=1, batch_size=16), members=2)
    assert len(res.ensemble) == 2  # the factory is how such a model comes in


@pytest.mark.parametrize("name", ["deep-ensemble", "bagging", "dst"])
def test_each_independently_trained_member_is_built_afresh_from_the_users_source(name):
    # A member must never start from the previous member's trained weights: the factory is
    # called once per member, and the name path gives the same members whatever came before.
    calls = []

    def factory() -> nn.Module:
        calls.append(1)
        return MyCNN()

    data, cfg = splits(), TrainConfig(epochs=2, batch_size=16, lr=3e-3)
    get_peer(name)(factory, data, cfg, **OPTIONS.get(name, {}), progress=False)
    assert len(calls) == OPTIONS[name]["members"]


def test_every_peer_function_is_reachable_by_its_name_after_its_module_was_imported():
    # The peer modules are named for what they hold, never like a function the package
    # exports: importing the module first must not shadow the function.
    import importlib

    import evo_ensembles.baselines as baselines

    for name, path in PEERS.items():
        module, function = path.split(":")
        importlib.import_module(module)
        assert callable(getattr(baselines, function)) and not isinstance(getattr(baselines, function),
                                                                          type(baselines)), name
    for export, module in baselines._EXPORTS.items():
        assert export != module, f"{export} names both a function and a module of evo_ensembles.baselines"
