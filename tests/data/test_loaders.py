"""The user's own data: a torchvision Dataset object and a DataLoader with workers, through
fit, prune_and_tune, noisy_ensemble and Ensemble.evaluate."""

import gzip
import os
import shutil

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from evo_ensembles import (
    Callback,
    TrainConfig,
    fit,
    make_child_specs,
    noisy_ensemble,
    prune_and_tune,
)
from evo_ensembles.data import ArrayData
from evo_ensembles.data.loaders import as_tensors, epoch_batches, steps_per_epoch
from evo_ensembles.errors import UserError
from evo_ensembles.subnet import eligible_parameters, masked_fraction_zero

FASHION = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed")


@pytest.fixture(scope="module")
def torchvision_fashion(tmp_path_factory):
    """torchvision's own FashionMNIST class over the Debian package's files (no download)."""
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    raw = tmp_path_factory.mktemp("tv") / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in os.listdir(FASHION):
        with gzip.open(os.path.join(FASHION, name)) as src, open(raw / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    test = FashionMNIST(str(raw.parent.parent), train=False, transform=transforms.ToTensor())
    return Subset(test, range(600)), Subset(test, range(600, 900))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


@needs_fashion
def test_torchvision_dataset_and_worker_loader_run_every_path(torchvision_fashion):
    train, val = torchvision_fashion
    cfg = TrainConfig(epochs=1, batch_size=64, schedule="one-cycle", lr=3e-3)
    parent = _net()
    res = fit(parent, train, cfg, val=val, progress=False)  # a Dataset: batched and shuffled here
    assert res.samples == 600 and "val_accuracy" in res.history[0]

    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=2)  # the user's own loader
    specs = make_child_specs(2, 0.5, partition=True, seed=0)
    done = []
    ens = prune_and_tune(parent, specs, loader, cfg, progress=False, on_child=done.append)
    assert [c.result.samples for c in done] == [600, 600]
    assert all(masked_fraction_zero(eligible_parameters(c.model), c.mask) for c in done)

    val_loader = DataLoader(val, batch_size=100, num_workers=2)
    scores = ens.evaluate(val_loader)
    x, y = as_tensors(val)
    assert scores == ens.evaluate(x, y)  # the same numbers from a loader or from tensors

    noisy = noisy_ensemble(parent, val_loader, popsize=4, top_k=2, sigma=0.01, progress=False)
    assert len(noisy.ensemble) == 2 and len(noisy.records) == 4


def test_a_dataset_is_shuffled_reproducibly_per_epoch():
    ds = TensorDataset(torch.arange(20).float().unsqueeze(1), torch.arange(20))
    a, b = epoch_batches(ds, 5, shuffle=True, seed=3), epoch_batches(ds, 5, shuffle=True, seed=3)
    orders = []
    for loader in (a, b):
        loader.set_epoch(1)
        orders.append(torch.cat([y for _, y in loader]).tolist())
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(20))
    a.set_epoch(2)
    assert torch.cat([y for _, y in a]).tolist() != orders[0]
    assert steps_per_epoch(ds, 6) == 4 == steps_per_epoch(20, 6)


def test_fit_on_a_dataset_resumes_to_the_same_weights(tmp_path):
    # A Dataset's order depends only on (seed, epoch), so an interrupted run resumes exactly.
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g))
    cfg = TrainConfig(epochs=3, batch_size=16, seed=2)

    def net():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    whole = net()
    fit(whole, ds, cfg, progress=False)
    part = net()
    with pytest.raises(KeyboardInterrupt):
        fit(part, ds, cfg, progress=False, checkpoint_dir=tmp_path, callbacks=[_StopAfter(epoch=1)])
    resumed = net()
    fit(resumed, ds, cfg, progress=False, checkpoint_dir=tmp_path)
    assert all(torch.equal(p, q) for p, q in zip(whole.parameters(), resumed.parameters()))


class _StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, model, epoch, stats):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_bad_data_is_refused_clearly():
    with pytest.raises(UserError, match="Dataset"):
        epoch_batches(42, 4)
    with pytest.raises(UserError, match="len"):
        len(epoch_batches((b for b in []), 4))
    with pytest.raises(UserError, match="transforms"):
        from evo_ensembles.data import Augment

        fit(nn.Linear(2, 2), TensorDataset(torch.randn(4, 2), torch.zeros(4).long()), TrainConfig(),
            augment=Augment(pad=2, flip=True), progress=False)
    assert as_tensors(ArrayData(torch.zeros(2, 1), torch.zeros(2).long()))[0].shape == (2, 1)
