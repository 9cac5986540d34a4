import pytest
import torch

from evo_ensembles.ensemble import Ensemble
from evo_ensembles.methods.sparse import prune_and_tune, prune_child, tune_child
from evo_ensembles.subnet import eligible_parameters, make_child_specs, masked_fraction_zero
from evo_ensembles.train import TrainConfig


@pytest.mark.parametrize("optimizer,schedule,wd", [("adam", "one-cycle", 0.0), ("sgd", "constant", 5e-4),
                                                   ("adam", "constant", 1e-3)])
def test_pruned_weights_stay_exactly_zero(tiny_net, tiny_data, optimizer, schedule, wd):
    parent = tiny_net()
    spec = make_child_specs(1, 0.5, seed=0)[0]
    child, mask = prune_child(parent, spec)
    params = eligible_parameters(child)
    before = {n: p.detach().clone() for n, p in params.items()}
    tune_child(child, mask, tiny_data, TrainConfig(epochs=2, batch_size=16, optimizer=optimizer,
               schedule=schedule, weight_decay=wd, lr=0.01), progress=False)
    assert masked_fraction_zero(params, mask)
    # Kept weights did train.
    assert any(not torch.equal(params[n][mask[n]], before[n][mask[n]]) for n in mask)


def test_prune_child_leaves_parent_untouched(tiny_net):
    parent = tiny_net()
    ref = [p.detach().clone() for p in parent.parameters()]
    child, mask = prune_child(parent, make_child_specs(1, 0.3, seed=1)[0])
    assert all(torch.equal(a, b) for a, b in zip(ref, parent.parameters()))
    assert masked_fraction_zero(eligible_parameters(child), mask)
    assert all(c is not p for c, p in zip(child.parameters(), parent.parameters()))


def test_same_seed_same_children(tiny_net, tiny_data):
    cfg = TrainConfig(epochs=1, batch_size=16, seed=3)
    specs = make_child_specs(2, 0.5, partition=True, seed=3)
    a = prune_and_tune(tiny_net(), specs, tiny_data, cfg, progress=False)
    b = prune_and_tune(tiny_net(), specs, tiny_data, cfg, progress=False)
    for m, n in zip(a.members, b.members):
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), n.parameters()))
    # Children differ from each other (different masks and data orders).
    assert not torch.equal(a.members[0][0].weight, a.members[1][0].weight)


def test_growth_on_demand(tiny_net, tiny_data):
    parent = tiny_net()
    cfg = TrainConfig(epochs=1, batch_size=32)
    ens = prune_and_tune(parent, make_child_specs(2, 0.5, seed=0), tiny_data, cfg, progress=False)
    more = make_child_specs(4, 0.5, seed=0)[2:]
    ens = prune_and_tune(parent, more, tiny_data, cfg, progress=False, ensemble=ens)
    assert len(ens) == 4 and isinstance(ens, Ensemble)
    assert ens.member_probs(tiny_data.x).shape == (4, len(tiny_data), 3)
    ens_p = Ensemble(ens.members, parent=parent, include_parent=True)
    assert ens_p.member_probs(tiny_data.x).shape[0] == 5


class _DictStore:
    """A ChildStore in memory: what a user's own cache would implement."""

    def __init__(self, root):
        self.saved, self.root, self.loads, self.asked = {}, root, 0, []

    def load(self, index, spec, child):
        if (index, spec) not in self.saved:
            return False
        child.load_state_dict(self.saved[(index, spec)])
        self.loads += 1
        return True

    def save(self, index, spec, child, result):
        self.saved[(index, spec)] = {k: v.clone() for k, v in child.state_dict().items()}

    def resume_dir(self, index):
        self.asked.append(index)
        return self.root / f"resume_{index}"


def test_a_store_keeps_finished_children_and_a_rerun_reuses_them(tiny_net, tiny_data, tmp_path):
    parent, cfg = tiny_net(), TrainConfig(epochs=1, batch_size=16, seed=1)
    specs = make_child_specs(3, 0.5, seed=1)
    store, done = _DictStore(tmp_path), []
    first = prune_and_tune(parent, specs, tiny_data, cfg, store=store, on_child=done.append, progress=False)
    assert [c.index for c in done] == [0, 1, 2] and all(c.result is not None and c.seconds > 0 for c in done)
    assert store.asked == [0, 1, 2]  # each tuning could resume from the store's directory
    again = []
    second = prune_and_tune(parent, specs, tiny_data, cfg, store=store, on_child=again.append, progress=False)
    assert store.loads == 3 and all(c.result is None and c.seconds == 0.0 for c in again)
    for a, b in zip(first.members, second.members):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert all(masked_fraction_zero(eligible_parameters(c.model), c.mask) for c in again)


def test_bagged_children_each_tune_on_their_own_seeded_share_of_train():
    from evo_ensembles.data import ArrayData
    from evo_ensembles.methods.sparse import bagged

    data = ArrayData(torch.arange(100).float().view(100, 1, 1, 1), torch.arange(100))
    a, b = bagged(data, 0.3, seed=0, index=0), bagged(data, 0.3, seed=0, index=1)
    assert len(a) == len(b) == 30 and len(set(a.y.tolist())) == 30  # without replacement
    assert a.y.tolist() != b.y.tolist()
    assert bagged(data, 0.3, seed=0, index=0).y.tolist() == a.y.tolist()  # same seed, same share
