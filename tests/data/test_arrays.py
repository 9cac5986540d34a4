"""ArrayData, Augment and BatchLoader."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evo_ensembles.data import ArrayData, Augment, BatchLoader
from evo_ensembles.errors import UserError


def _data(n: int = 37, shape=(3, 8, 8)) -> ArrayData:
    # Each image is filled with its index so batches reveal which samples they hold.
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, *shape).clone()
    return ArrayData(x, torch.arange(n))


def _reference_augment(x, shifts, flips, pad):
    out = []
    xp = F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    for k in range(len(x)):
        dy, dx = int(shifts[k, 0]), int(shifts[k, 1])
        img = xp[k, :, dy : dy + h, dx : dx + w]
        out.append(img.flip(-1) if flips[k] else img)
    return torch.stack(out)


# ---- ArrayData -----------------------------------------------------------------------


def test_arraydata_len_and_subset():
    d = _data(10)
    assert len(d) == 10
    for idx in ([3, 1, 3], torch.tensor([3, 1, 3])):
        s = d.subset(idx)
        assert s.y.tolist() == [3, 1, 3] and s.x[:, 0, 0, 0].tolist() == [3.0, 1.0, 3.0]
    empty = d.subset([])
    assert len(empty) == 0 and empty.x.shape == (0, 3, 8, 8)


def test_arraydata_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="x"):
        ArrayData(torch.zeros(3, 1, 2, 2), torch.zeros(4, dtype=torch.long))


def test_arraydata_to_same_device_is_self():
    d = _data(4)
    assert d.to("cpu") is d


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_arraydata_to_cuda_is_cached():
    d = _data(4)
    a, b = d.to("cuda"), d.to("cuda")
    assert a is b and a.x.is_cuda
    d.x.add_(1)  # in-place change invalidates the cached copy
    assert d.to("cuda") is not a


# ---- Augment -------------------------------------------------------------------------


def test_identity_augment_returns_input_and_draws_nothing():
    x = torch.randn(5, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert Augment()(x, g) is x
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("aug", [Augment(pad=2), Augment(flip=True), Augment(pad=4, flip=True)])
def test_augment_shape_and_determinism(aug):
    x = torch.randn(16, 3, 32, 32)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("pad,flip", [(2, False), (0, True), (3, True)])
def test_augment_matches_per_sample_reference(pad, flip):
    aug = Augment(pad=pad, flip=flip)
    x = torch.randn(32, 2, 7, 9)  # non-square to catch row/column mix-ups
    shifts, flips = aug.sample(len(x), torch.Generator().manual_seed(0))
    expected = _reference_augment(x, shifts, flips if flip else torch.zeros(32, dtype=torch.bool), pad)
    assert torch.equal(aug.apply(x, shifts, flips), expected)
    if pad:
        assert shifts.min() >= 0 and shifts.max() <= 2 * pad and len(shifts.unique()) > 1
    if flip:
        assert 0 < int(flips.sum()) < 32


def test_augment_leaves_global_rng_alone():
    x = torch.randn(4, 3, 8, 8)
    state = torch.random.get_rng_state()
    Augment(pad=4, flip=True)(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_augment_rejects_negative_pad():
    with pytest.raises(UserError):
        Augment(pad=-1)


# ---- BatchLoader ---------------------------------------------------------------------


def _epoch(loader: BatchLoader, epoch: int | None = None):
    if epoch is not None:
        loader.set_epoch(epoch)
    xs, ys = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_exactly_once(shuffle):
    d = _data(37)
    loader = BatchLoader(d, 8, shuffle=shuffle)
    batches = list(loader)
    assert len(loader) == len(batches) == 5 and loader.num_samples == 37
    assert [len(y) for _, y in batches] == [8, 8, 8, 8, 5]
    x, y = _epoch(loader)
    assert sorted(y.tolist()) == list(range(37))
    assert torch.equal(x[:, 0, 0, 0].long(), y)  # images travel with their labels
    assert (y.tolist() == list(range(37))) == (not shuffle)


def test_drop_last():
    loader = BatchLoader(_data(37), 8, shuffle=True, drop_last=True)
    assert len(loader) == 4 and loader.num_samples == 32
    _, y = _epoch(loader)
    assert len(y) == 32 and len(set(y.tolist())) == 32
    assert len(BatchLoader(_data(5), 8, drop_last=True)) == 0
    assert list(BatchLoader(_data(5), 8, drop_last=True)) == []


def test_set_epoch_reproducible_and_resumable():
    d = _data(50)
    a = BatchLoader(d, 16, shuffle=True, augment=Augment(pad=2, flip=True), seed=3)
    e0, e1 = _epoch(a, 0), _epoch(a, 1)
    assert not torch.equal(e0[1], e1[1])
    again = _epoch(a, 0)
    assert torch.equal(e0[0], again[0]) and torch.equal(e0[1], again[1])
    # A fresh loader jumping straight to epoch 1 (a resumed run) sees the same epoch 1.
    b = BatchLoader(d, 16, shuffle=True, augment=Augment(pad=2, flip=True), seed=3)
    resumed = _epoch(b, 1)
    assert torch.equal(resumed[0], e1[0]) and torch.equal(resumed[1], e1[1])
    other_seed = BatchLoader(d, 16, shuffle=True, seed=4)
    assert not torch.equal(_epoch(other_seed, 0)[1], e0[1])


def test_augmentation_does_not_change_order():
    d = _data(40)
    plain = _epoch(BatchLoader(d, 16, shuffle=True, seed=7), 2)[1]
    augmented = _epoch(BatchLoader(d, 16, shuffle=True, augment=Augment(pad=1), seed=7), 2)[1]
    assert torch.equal(plain, augmented)


def test_loader_augments_and_leaves_data_and_global_rng_alone():
    d = ArrayData(torch.randn(20, 3, 8, 8), torch.arange(20))
    before = d.x.clone()
    state = torch.random.get_rng_state()
    x, y = _epoch(BatchLoader(d, 6, augment=Augment(pad=2, flip=True)), 0)
    assert x.shape == d.x.shape and not torch.equal(x, d.x)
    assert torch.equal(d.x, before) and torch.equal(torch.random.get_rng_state(), state)


def test_bad_batch_size():
    with pytest.raises(UserError):
        BatchLoader(_data(4), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_match_cpu():
    d = ArrayData(torch.randn(30, 3, 8, 8), torch.arange(30))
    kw = dict(shuffle=True, augment=Augment(pad=2, flip=True), seed=1)
    cpu = _epoch(BatchLoader(d, 8, **kw), 1)
    gpu = _epoch(BatchLoader(d, 8, device="cuda", **kw), 1)
    assert gpu[0].is_cuda and torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
