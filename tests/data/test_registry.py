"""load_dataset: names, root resolution, splits, subset policy, normalisation, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evo_ensembles.data import available_datasets, load_dataset, resolve_root
from evo_ensembles.data.idx import write_idx
from evo_ensembles.errors import DataNotFoundError, UnknownNameError, UserError

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST = 200, 50


def _write_fake_idx(d: Path, n_train=N_TRAIN, n_test=N_TEST, gz=True, n_classes=10):
    """Fake 28x28 IDX files; pixels (0,0) and (0,1) encode each example's index."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in [("train", n_train), ("t10k", n_test)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
        write_idx(d / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(d / f"{split}-labels-idx1-ubyte{suffix}",
                  (np.arange(n) % n_classes).astype(np.uint8))


@pytest.fixture
def root(tmp_path):
    _write_fake_idx(tmp_path / "fashion-mnist")
    return tmp_path


def _indices(split, s) -> list[int]:
    """Recover the file indices of a split's examples from the encoding pixels."""
    raw = (split.x[:, 0, 0, :2] * s.std[0] + s.mean[0]) * 255
    raw = raw.round().long()
    return (raw[:, 0] + 256 * raw[:, 1]).tolist()


def test_names_and_aliases(root):
    assert available_datasets() == ["cifar10", "cifar100", "fashion-mnist", "mnist"]
    for alias in ["fashion-mnist", "fashion_mnist", "fmnist", "Fashion-MNIST"]:
        assert load_dataset(alias, root).name == "fashion-mnist"


def test_unknown_name_lists_valid_names(root):
    with pytest.raises(UnknownNameError, match="cifar10, cifar100, fashion-mnist, mnist"):
        load_dataset("imagenet", root)


def test_split_sizes_shapes_and_disjointness(root):
    s = load_dataset("fashion-mnist", root, val_fraction=0.1, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (180, 20, 50)
    assert s.num_classes == 10 and s.input_shape == (1, 28, 28)
    assert s.train.x.shape == (180, 1, 28, 28) and s.train.x.dtype == torch.float32
    assert s.train.y.dtype == torch.int64
    train, val = _indices(s.train, s), _indices(s.val, s)
    assert set(train).isdisjoint(val) and sorted(train + val) == list(range(N_TRAIN))
    assert torch.equal(s.train.y, torch.tensor(train) % 10)  # labels stay with their images
    assert _indices(s.test, s) == list(range(N_TEST))


def test_seed_controls_val_but_never_test(root):
    a, b, c = (load_dataset("fmnist", root, seed=k) for k in (0, 0, 1))
    assert _indices(a.val, a) == _indices(b.val, b) and torch.equal(a.train.x, b.train.x)
    assert _indices(a.val, a) != _indices(c.val, c)
    assert _indices(a.test, a) == _indices(c.test, c) == list(range(N_TEST))
    assert torch.equal(a.test.y, c.test.y)


def test_normalised_with_train_statistics(root):
    s = load_dataset("fmnist", root)
    x = s.train.x.double()
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(unbiased=False)) - 1) < 1e-5
    assert len(s.mean) == len(s.std) == 1 and 0.3 < s.mean[0] < 0.7


def test_zero_val_fraction_gives_empty_val(root):
    s = load_dataset("fmnist", root, val_fraction=0.0)
    assert len(s.train) == N_TRAIN and len(s.val) == 0 and s.val.x.shape == (0, 1, 28, 28)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_val_fraction(root, bad):
    with pytest.raises(UserError, match="val_fraction"):
        load_dataset("fmnist", root, val_fraction=bad)


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_bad_subset(root, bad):
    with pytest.raises(UserError, match="subset"):
        load_dataset("fmnist", root, subset=bad)


def test_subset_policy(root):
    s = load_dataset("fmnist", root, subset=45, val_fraction=0.1, seed=2)
    # train N; val ceil(N * 0.1 / 0.9) = 5; test first min(len, max(1000, N)) in file order.
    assert (len(s.train), len(s.val), len(s.test)) == (45, 5, 50)
    full = load_dataset("fmnist", root, val_fraction=0.1, seed=2)
    assert set(_indices(s.val, s)) <= set(_indices(full.val, full))  # same carve as full run
    assert set(_indices(s.train, s)).isdisjoint(_indices(full.val, full))
    assert abs(float(s.train.x.mean())) < 1e-5  # stats come from the subset actually used
    big = load_dataset("fmnist", root, subset=10_000)
    assert (len(big.train), len(big.val), len(big.test)) == (180, 20, 50)
    assert s.describe()["subset"] == 45


def test_augment_defaults(root):
    _write_fake_idx(root / "mnist")
    fm, mn = load_dataset("fmnist", root), load_dataset("mnist", root)
    assert (fm.augment.pad, fm.augment.flip) == (2, True)
    assert (mn.augment.pad, mn.augment.flip) == (2, False)
    assert load_dataset("mnist", root, augment=False).augment is None


def test_describe_is_json(root):
    d = json.loads(json.dumps(load_dataset("fmnist", root, subset=30, seed=5).describe()))
    assert d["name"] == "fashion-mnist" and d["sizes"] == {"train": 30, "val": 4, "test": 50}
    assert d["seed"] == 5 and d["val_fraction"] == 0.1 and d["input_shape"] == [1, 28, 28]


def test_raw_idx_files_are_accepted(tmp_path):
    _write_fake_idx(tmp_path / "mnist", gz=False)
    assert len(load_dataset("mnist", tmp_path).test) == N_TEST


def test_out_of_range_labels(tmp_path):
    _write_fake_idx(tmp_path / "mnist", n_classes=12)
    with pytest.raises(UserError, match=r"labels span 0\.\.11"):
        load_dataset("mnist", tmp_path)


def test_root_resolution(root, tmp_path_factory, monkeypatch):
    monkeypatch.delenv("EVO_ENSEMBLES_DATA_ROOT", raising=False)
    assert resolve_root() == Path("/usr/share/datasets")
    monkeypatch.setenv("EVO_ENSEMBLES_DATA_ROOT", str(root))
    assert resolve_root() == root and len(load_dataset("fmnist").train) == 180
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataNotFoundError, match=str(empty)):
        load_dataset("fmnist", empty)  # explicit root wins over the environment


def test_missing_files_name_path_and_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion-mnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg
    _write_fake_idx(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", tmp_path)


@pytest.mark.skipif(not REAL_FMNIST.is_dir(),
                    reason=f"{REAL_FMNIST} absent (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    s = load_dataset("fashion-mnist", "/usr/share/datasets", val_fraction=0.0)
    assert (len(s.train), len(s.val), len(s.test)) == (60000, 0, 10000)
    assert s.num_classes == 10 and s.input_shape == (1, 28, 28)
    assert s.train.y.bincount().tolist() == [6000] * 10
    assert s.test.y.bincount().tolist() == [1000] * 10
    small = load_dataset("fashion-mnist", "/usr/share/datasets", subset=500)
    assert (len(small.train), len(small.val), len(small.test)) == (500, 56, 1000)
