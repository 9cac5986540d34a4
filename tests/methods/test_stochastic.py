import pytest
import torch

from evo_ensembles.errors import UserError
from evo_ensembles.methods.stochastic import (
    IterativePruning,
    StochasticMasks,
    anneal_and_tune,
    build_child,
    steps_per_epoch,
)
from evo_ensembles.subnet import (
    ChildSpec,
    eligible_parameters,
    make_child_specs,
    mask_density,
    masked_fraction_zero,
)
from evo_ensembles.train import Callback, TrainConfig, fit


class Spy(Callback):
    """Records the eligible weights seen by each forward pass (zeros = dropped)."""

    def __init__(self, params):
        self.params, self.seen = params, []

    def on_batch_start(self, model, step):
        self.seen.append({n: (p != 0).clone() for n, p in self.params.items()})


def _tune(tiny_net, tiny_data, spec, cfg, spy=False):
    parent = tiny_net()
    child, cb = build_child(parent, spec, cfg, steps_per_epoch(len(tiny_data), cfg.batch_size))
    callbacks = [cb]
    if spy:
        callbacks.append(Spy(eligible_parameters(child)))
    fit(child, tiny_data, cfg, callbacks=callbacks, progress=False)
    return parent, child, cb, callbacks[-1]


def _spec(**kw):
    base = {
        "kind": "stochastic",
        "mask_seed": 3,
        "density": 0.3,
        "anneal": "temperature",
        "t0": 0.5,
        "anneal_epochs": 1,
    }
    return ChildSpec(**{**base, **kw})


@pytest.mark.parametrize("anneal", ["temperature", "temperature-symmetric", "random", "mog"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_pruned_weights_exactly_zero_after_annealing_and_tuning(
    tiny_net, tiny_data, anneal, optimizer
):
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer=optimizer, lr=0.01, weight_decay=1e-3)
    _, child, cb, spy = _tune(tiny_net, tiny_data, _spec(anneal=anneal), cfg, spy=True)
    params = eligible_parameters(child)
    assert cb.done and not cb._hooks
    assert masked_fraction_zero(params, cb.mask)
    assert mask_density(cb.mask) == pytest.approx(0.3, abs=0.01)
    steps = steps_per_epoch(len(tiny_data), 16)
    # During annealing the forward passes saw random masks; after it, exactly the target.
    for seen in spy.seen[steps:]:
        assert all(bool((~seen[n] | cb.mask[n]).all()) for n in seen)
    if anneal == "temperature":
        assert any(bool((s[n] & ~cb.mask[n]).any()) for s in spy.seen[:steps] for n in s)


def test_annealing_for_all_epochs_ends_sparse(tiny_net, tiny_data):
    cfg = TrainConfig(epochs=1, batch_size=16)
    _, child, cb, _ = _tune(tiny_net, tiny_data, _spec(anneal_schedule="exp"), cfg)
    assert cb.done and masked_fraction_zero(eligible_parameters(child), cb.mask)


def test_between_batches_the_model_is_the_target_subnetwork(tiny_net, tiny_data):
    parent = tiny_net()
    cfg = TrainConfig(epochs=2, batch_size=16)
    child, cb = build_child(parent, _spec(anneal_epochs=2, t0=1.0), cfg, 6)
    params = eligible_parameters(child)
    before = {n: p for n, p in params.items()}
    cb.on_train_start(child, None)
    assert masked_fraction_zero(params, cb.mask)
    cb.on_batch_start(child, 0)
    # t0 = 1: every weight is in the first forward pass, with the parent's value.
    assert all(torch.equal(params[n], dict(parent.named_parameters())[n]) for n in params)
    cb.on_after_step(child, 0)
    assert masked_fraction_zero(params, cb.mask)
    assert all(params[n] is before[n] for n in params)  # parameter identity kept


def test_dropped_weights_get_zero_gradient_and_keep_their_value(tiny_net, tiny_data):
    parent = tiny_net()
    child, cb = build_child(parent, _spec(t0=0.5, anneal_epochs=1), TrainConfig(epochs=1), 10)
    params = eligible_parameters(child)
    cb.on_train_start(child, None)
    cb.on_batch_start(child, 0)
    child(tiny_data.x[:8]).sum().backward()
    for n, p in params.items():
        assert bool((p.grad[~cb._sample[n]] == 0).all())
    dense = {n: d.clone() for n, d in cb._dense.items()}
    sample = dict(cb._sample)
    grads = {n: p.grad.clone() for n, p in params.items()}
    with torch.no_grad():
        for p in params.values():
            p.sub_(0.1 * p.grad)
    cb.on_after_step(child, 0)
    for n in params:  # dense copy: dropped weights unchanged, sampled ones took the step
        b = sample[n]
        assert torch.equal(cb._dense[n][~b], dense[n][~b])
        assert torch.allclose(cb._dense[n][b], dense[n][b] - 0.1 * grads[n][b])
        assert bool((~b).any())


def test_same_seed_same_children(tiny_net, tiny_data):
    cfg = TrainConfig(epochs=2, batch_size=16, seed=1)
    specs = make_child_specs(
        2, 0.5, partition=True, seed=4, kind="stochastic", anneal="random", anneal_epochs=1
    )
    a = anneal_and_tune(tiny_net(), specs, tiny_data, cfg, progress=False)
    b = anneal_and_tune(tiny_net(), specs, tiny_data, cfg, progress=False)
    for m, n in zip(a.members, b.members):
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), n.parameters()))
    # P and 1 − P: the two partition members' targets are disjoint and cover every weight.
    w0, w1 = a.members[0][0].weight, a.members[1][0].weight
    assert not bool(((w0 != 0) & (w1 != 0)).any())


@pytest.mark.parametrize("selection", ["random", "magnitude"])
def test_iterative_pruning_reaches_target_at_ep(tiny_net, tiny_data, selection):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.01)
    spec = ChildSpec("prune", mask_seed=2, density=0.2, selection=selection, prune_epochs=3)
    parent, child, cb, spy = _tune(tiny_net, tiny_data, spec, cfg, spy=True)
    assert isinstance(cb, IterativePruning)
    steps = steps_per_epoch(len(tiny_data), 16)
    densities = [mask_density(spy.seen[e * steps]) for e in range(4)]
    expected = [1 - 0.8 * (e + 1) / 3 for e in range(3)] + [0.2]
    assert densities == pytest.approx(expected, abs=0.02)
    assert mask_density(cb.mask) == pytest.approx(0.2, abs=0.01)
    assert masked_fraction_zero(eligible_parameters(child), cb.mask)
    if selection == "random":  # ends on exactly the one-shot child's mask
        one_shot = spec.mask(eligible_parameters(parent))
        assert all(torch.equal(cb.mask[n], one_shot[n]) for n in one_shot)


def test_one_shot_baseline_is_keep_pruned(tiny_net, tiny_data):
    spec = ChildSpec("prune", mask_seed=2, density=0.1, selection="magnitude")
    _, child, cb, _ = _tune(
        tiny_net, tiny_data, spec, TrainConfig(epochs=1, batch_size=32, schedule="one-cycle")
    )
    assert not isinstance(cb, (IterativePruning, StochasticMasks))
    assert masked_fraction_zero(eligible_parameters(child), cb.mask)


def test_annealing_longer_than_tuning_is_rejected(tiny_net):
    with pytest.raises(UserError, match="annealing"):
        build_child(tiny_net(), _spec(anneal_epochs=3), TrainConfig(epochs=2), 5)
    with pytest.raises(UserError, match="iterative"):
        build_child(
            tiny_net(),
            ChildSpec("prune", mask_seed=0, density=0.5, prune_epochs=3),
            TrainConfig(epochs=2),
            5,
        )


class _Interrupt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, model, epoch, stats):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("stop_epoch", [1, 2])  # mid-annealing (state after epoch 1), after it (epoch 2)
def test_a_stochastic_child_resumes_mid_tuning_to_identical_weights(tiny_net, tiny_data, tmp_path, stop_epoch):
    spec = make_child_specs(1, 0.5, seed=2, kind="stochastic", anneal="temperature", t0=0.5,
                            anneal_epochs=2)[0]
    cfg = TrainConfig(epochs=3, batch_size=16, seed=5, optimizer="adam", schedule="one-cycle", lr=0.01)
    steps = steps_per_epoch(len(tiny_data), cfg.batch_size)
    parent = tiny_net()
    whole, cb = build_child(parent, spec, cfg, steps)
    fit(whole, tiny_data, cfg, callbacks=[cb], progress=False)

    part, cb = build_child(parent, spec, cfg, steps)
    with pytest.raises(KeyboardInterrupt):
        fit(part, tiny_data, cfg, callbacks=[cb, _Interrupt(stop_epoch)], progress=False, checkpoint_dir=tmp_path)
    resumed, cb = build_child(parent, spec, cfg, steps)  # a new process: fresh child and callback
    fit(resumed, tiny_data, cfg, callbacks=[cb], progress=False, checkpoint_dir=tmp_path)
    for (n, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert masked_fraction_zero(eligible_parameters(resumed), cb.mask)
