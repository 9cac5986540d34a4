import math

import pytest
import torch
from torch import nn

from evo_ensembles.baselines.dynamic_sparsity import (
    DynamicSparsity,
    death_rate_at,
    erk_densities,
    erk_mask,
    sparse_training_flops,
)
from evo_ensembles.baselines.freetickets import EDSTPhases, dst, edst, edst_phases, sparse_model
from evo_ensembles.data import ArrayData, DataSplits
from evo_ensembles.errors import UserError
from evo_ensembles.flops import layer_flops, mask_densities, rigl_update_flops, step_flops
from evo_ensembles.models import build_model
from evo_ensembles.subnet import apply_mask, eligible_parameters
from evo_ensembles.train import Callback, TrainConfig, fit


def _splits(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)

    def part(m):
        x = torch.randn(m, 1, 8, 8, generator=g)
        return ArrayData(x, (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long()
                         + (x.mean((1, 2, 3)) > 0).long())

    return DataSplits("rand", part(n), part(32), part(32), 3, (1, 8, 8), (0.0,), (1.0,))


def _sparse(net, density=0.3, seed=0, mask_seed=None, **kw):
    params = eligible_parameters(net)
    mask = erk_mask(params, density, seed=seed if mask_seed is None else mask_seed)
    apply_mask(params, mask)
    kw.setdefault("total_steps", 1000)
    return DynamicSparsity(params, mask, seed=seed, **kw)


def _counts(mask):
    return {n: int(m.sum()) for n, m in mask.items()}


def _flat(net):
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 0.9])
def test_erk_total_exact_capped_and_proportional(density):
    params = eligible_parameters(build_model("lenet-5", (1, 28, 28), 10))
    d = erk_densities(params, density)
    n = {k: p.numel() for k, p in params.items()}
    assert sum(d[k] * n[k] for k in d) == pytest.approx(density * sum(n.values()), rel=1e-9)
    assert all(0 < v <= 1 + 1e-12 for v in d.values())
    sparse = [k for k in d if d[k] < 1]
    ratios = [d[k] / (sum(params[k].shape) / n[k]) for k in sparse]  # ε is one constant
    assert max(ratios) == pytest.approx(min(ratios))
    mask = erk_mask(params, density, seed=3)
    assert abs(sum(_counts(mask).values()) - density * sum(n.values())) <= len(mask)
    assert all(abs(int(mask[k].sum()) - d[k] * n[k]) <= 0.5 + 1e-9 for k in d)
    if density == 0.9:
        assert any(v == 1.0 for v in d.values())  # something had to be made dense
    same, other = erk_mask(params, density, seed=3), erk_mask(params, density, seed=4)
    assert all(torch.equal(mask[k], same[k]) for k in mask)
    assert any(not torch.equal(mask[k], other[k]) for k in mask if d[k] < 1)


def test_conv_erk_score_uses_all_four_dims():
    params = {"c": torch.zeros(8, 4, 3, 3), "l": torch.zeros(10, 100)}
    d = erk_densities(params, 0.1)
    assert d["c"] / d["l"] == pytest.approx(((8 + 4 + 3 + 3) / (8 * 4 * 9)) / (110 / 1000))


def test_dense_gradient_is_there_in_on_after_step(tiny_net, tiny_data):
    class Probe(Callback):
        seen = []

        def on_after_step(self, model, step):
            self.seen.append(all(p.grad is not None and bool(p.grad.ne(0).any()) for p in model.parameters()))

    net = tiny_net()
    cb = _sparse(net, 0.3)
    fit(net, tiny_data, TrainConfig(epochs=1, batch_size=16), callbacks=[cb, Probe()], progress=False)
    assert Probe.seen and all(Probe.seen)
    # the gradient at inactive weights is dense (nonzero), which is what regrowth ranks
    sparse = [n for n, m in cb.mask.items() if not m.all()]
    assert sparse and all(bool(cb.params[n].grad[~cb.mask[n]].ne(0).any()) for n in sparse)


@pytest.mark.parametrize("regrow", ["gradient", "random"])
def test_training_keeps_counts_and_zeros_and_moves_the_mask(tiny_net, tiny_data, regrow):
    net = tiny_net()
    cb = _sparse(net, 0.3, update_interval=2, regrow=regrow, total_steps=12)
    before = {n: m.clone() for n, m in cb.mask.items()}
    fit(net, tiny_data, TrainConfig(epochs=2, batch_size=16, lr=0.01), callbacks=[cb], progress=False)
    assert cb.updates == 5  # after steps 2, 4, ..., 10; the one due at the last step (12) is skipped
    assert _counts(cb.mask) == _counts(before)
    assert all(bool((cb.params[n][~m] == 0).all()) for n, m in cb.mask.items())
    assert any(not torch.equal(cb.mask[n], before[n]) for n in before)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_prune_smallest_regrow_largest_grad_at_zero_with_fresh_optimizer_state(optimizer):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 10))
    w = net[0].weight
    cb = _sparse(net, 0.5)
    opt = (torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(net.parameters(), lr=0.1))
    cb.on_train_start(net, opt)
    net(torch.randn(8, 20)).square().sum().backward()
    opt.step()
    cb.on_after_step(net, 0)
    before, wb, grad = cb.mask["0.weight"].clone(), w.detach().clone(), w.grad.clone()
    k = 10
    cb.prune_and_regrow({"0.weight": k}, key=1)
    after = cb.mask["0.weight"]
    pruned, grown = before & ~after, after & ~before
    assert int(after.sum()) == int(before.sum())
    # pruned: the k smallest |w| among the active (those re-grown at once included)
    smallest = torch.topk(wb.abs()[before], k, largest=False).values.max()
    assert bool((wb.abs()[pruned] <= smallest).all())
    # regrown: among the inactive-after-pruning, the largest |grad|
    cand = ~before | (before & (wb.abs() <= smallest))
    assert bool((grad.abs()[grown] >= torch.topk(grad.abs()[cand], k).values.min()).all())
    assert bool((w.detach()[grown] == 0).all()) and bool((w.detach()[~after] == 0).all())
    for key, buf in opt.state[w].items():
        if isinstance(buf, torch.Tensor) and buf.shape == w.shape:
            assert bool((buf[pruned | grown] == 0).all()), key
            assert bool(buf[after & ~grown].ne(0).any()), key  # kept weights keep their state


def test_a_pruned_weight_regrown_at_once_restarts_from_zero():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(10, 10))
    w = net[0].weight
    cb = _sparse(net, 0.5)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    cb.on_train_start(net, opt)
    net(torch.randn(4, 10)).sum().backward()
    opt.step()
    cb.on_after_step(net, 0)
    active = cb.mask["0.weight"].clone()
    k = 5
    smallest = torch.topk(w.detach().abs().masked_fill(~active, float("inf")).reshape(-1), k, largest=False).indices
    w.grad = torch.zeros_like(w)
    w.grad.view(-1)[smallest] = 1.0  # the pruned ones have the largest gradient: they regrow
    cb.prune_and_regrow({"0.weight": k}, key=0)
    assert torch.equal(cb.mask["0.weight"], active)
    assert bool((w.detach().view(-1)[smallest] == 0).all())
    assert bool((opt.state[w]["momentum_buffer"].view(-1)[smallest] == 0).all())


def test_cosine_death_rate_is_applied():
    assert death_rate_at(0.5, 0, 100) == pytest.approx(0.5)
    assert death_rate_at(0.5, 50, 100) == pytest.approx(0.25)
    assert death_rate_at(0.5, 100, 100, floor=0.005) == pytest.approx(0.005)
    assert death_rate_at(0.5, 25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)) / 2)

    def pruned_counts(decay):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(40, 30))
        cb = _sparse(net, 0.5, update_interval=10, total_steps=100, decay=decay, death_rate_floor=0.0)
        cb.on_train_start(net, torch.optim.SGD(net.parameters(), lr=0.1))
        asked, inner = [], cb.prune_and_regrow

        def spy(counts, *, key):
            asked.append((key, counts["0.weight"]))
            moved = inner(counts, key=key)
            assert moved == counts  # every count asked for was pruned and regrown
            return moved

        cb.prune_and_regrow = spy
        for step in range(100):
            net(torch.randn(4, 40)).sum().backward()
            cb.on_after_step(net, step)
            assert int(cb.mask["0.weight"].sum()) == 600
            net.zero_grad()
        return asked

    # updates after steps 10, 20, ..., 90 (the one due at step 100, the last, is skipped)
    want = [(t, math.ceil(death_rate_at(0.5, t, 100) * 600)) for t in range(10, 100, 10)]
    assert pruned_counts("cosine") == want
    assert want[0][1] == 293 and want[-1][1] == 8  # it decays
    assert pruned_counts("constant") == [(t, 300) for t in range(10, 100, 10)]


def test_global_prune_counts_rank_across_layers():
    net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    with torch.no_grad():
        net[0].weight.fill_(0.01)
        net[1].weight.fill_(1.0)
    cb = _sparse(net, 0.5)
    active = sum(_counts(cb.mask).values())
    counts = cb.global_prune_counts(0.4)
    assert sum(counts.values()) == math.ceil(0.4 * active)
    assert counts["1.weight"] == max(0, math.ceil(0.4 * active) - int(cb.mask["0.weight"].sum()))


class _Interrupt(Callback):
    def __init__(self, at):
        self.at = at

    def on_batch_start(self, model, step):
        if step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("regrow", ["gradient", "random"])
def test_interrupted_and_resumed_equals_uninterrupted(tiny_net, tiny_data, tmp_path, regrow):
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="sgd", lr=0.05, seed=2)
    kw = dict(update_interval=2, regrow=regrow, total_steps=18)
    full = tiny_net()
    cb_full = _sparse(full, 0.3, **kw)
    fit(full, tiny_data, cfg, callbacks=[cb_full], progress=False)

    net = tiny_net()
    with pytest.raises(KeyboardInterrupt):
        fit(net, tiny_data, cfg, callbacks=[_sparse(net, 0.3, **kw), _Interrupt(9)], checkpoint_dir=tmp_path,
            progress=False)
    resumed = tiny_net(seed=7)  # other weights and another initial mask: all must come from the checkpoint
    cb = _sparse(resumed, 0.3, mask_seed=5, **kw)
    res = fit(resumed, tiny_data, cfg, callbacks=[cb], checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from_epoch == 1
    assert all(torch.equal(cb.mask[n], cb_full.mask[n]) for n in cb.mask)
    assert cb.updates == cb_full.updates
    assert torch.allclose(_flat(resumed), _flat(full), atol=1e-6)


def test_flops_count_masked_layers_at_their_density():
    data = _splits()
    net = build_model("mlp-16", data.input_shape, data.num_classes)
    cb = _sparse(net, 0.2)
    x, y = data.train.x[:32], data.train.y[:32]
    by_hand = step_flops(net, x, y) - sum((1 - d) * layer_flops(net, x, y)[m]
                                          for m, d in mask_densities(cb.mask).items())
    base = sparse_training_flops(net, cb.mask, data, 32, 640)
    assert base == pytest.approx(by_hand / 32 * 640)
    assert base < 0.5 * step_flops(net, x, y) / 32 * 640  # ~20% on the masked layers, which dominate
    assert sparse_training_flops(net, cb.mask, data, 32, 640, updates=7, regrow="random") == base
    extra = rigl_update_flops(step_flops(net, x, y) / 32, by_hand / 32) * 32
    assert sparse_training_flops(net, cb.mask, data, 32, 640, updates=7) == pytest.approx(base + 7 * extra)


def test_dst_trains_independent_sparse_members():
    data = _splits()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.01)
    res = dst("mlp-16", data, cfg, members=2, density=0.2, update_interval=3)
    assert len(res.ensemble) == 2 and res.epochs == 4.0
    assert [m["updates"] for m in res.members] == [3, 3]
    assert all(abs(m["density"] - 0.2) < 0.01 for m in res.members)
    a, b = res.ensemble.members
    assert not torch.equal(_flat(a), _flat(b))
    assert res.training_flops > 0 and len(res.history) == 4
    assert res.ensemble.evaluate(data.test)["ensemble"]["nll"] > 0


def test_edst_phases_plan():
    assert edst_phases(450, 3, 1 / 3) == (150, [(150, 250), (250, 350), (350, 450)])
    with pytest.raises(UserError):
        edst_phases(4, 3, 0.5)


def test_edst_one_run_m_members():
    data = _splits()
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.02, optimizer="sgd", schedule="one-cycle")
    res = edst("mlp-16", data, cfg, members=3, density=0.1, update_interval=4)
    assert len(res.ensemble) == 3 and res.epochs == 6.0 and len(res.history) == 6
    # explore 2 epochs at lr, then phases (2,4), (4,5), (5,6): lr/10 then lr/100 within a phase
    assert [h["lr"] for h in res.history] == pytest.approx([0.02, 0.02, 0.002, 0.0002, 0.002, 0.002])
    assert [m["phase"] for m in res.members] == [0, 1, 2]
    assert res.members[0]["epoch"] in (3, 4) and res.members[1]["epoch"] == 5 and res.members[2]["epoch"] == 6
    flats = [_flat(m) for m in res.ensemble.members]
    assert not torch.equal(flats[0], flats[1]) and not torch.equal(flats[1], flats[2])
    for m in res.ensemble.members:  # density exact: never more nonzeros than the ERK count
        counts = erk_mask(eligible_parameters(m), 0.1, seed=0)
        assert all(int(p.ne(0).sum()) <= int(counts[n].sum()) for n, p in eligible_parameters(m).items())
    assert all(abs(m["density"] - 0.1) < 0.01 for m in res.members)


def test_edst_large_prune_moves_a_large_share_and_state_round_trips(tiny_net, tiny_data):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.01, seed=1)
    data = DataSplits("t", tiny_data, tiny_data, tiny_data, 3, (1, 8, 8), (0.0,), (1.0,))
    model, sp = sparse_model("mlp-16", data, cfg, density=0.3, update_interval=1000)
    ph = EDSTPhases(sp, lr=0.01, explore_epochs=2, phases=[(2, 3), (3, 4)], steps_per_epoch=6,
                    large_death_rate=0.8)
    before = {n: m.clone() for n, m in sp.mask.items()}
    fit(model, data.train, cfg, val=data.val, callbacks=[sp, ph], progress=False)
    assert sp.updates == 1  # the one large prune, at the end of epoch 3 (phase 1 → 2)
    assert _counts(sp.mask) == _counts(before)
    moved = sum(int((before[n] & ~sp.mask[n]).sum()) for n in before)
    assert moved >= 0.5 * sum(_counts(before).values())
    fresh = EDSTPhases(sp, lr=0.01, explore_epochs=2, phases=[(2, 3), (3, 4)], steps_per_epoch=6)
    fresh.load_state_dict(ph.state_dict())
    assert fresh.best_epoch == ph.best_epoch == [2, 3] and fresh.best_acc == ph.best_acc
    assert all(torch.equal(fresh.best[k][n], ph.best[k][n]) for k in ph.best for n in ph.best[k])
