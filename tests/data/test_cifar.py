"""CIFAR binary reader and the cifar10/cifar100 data sets on tiny fake files."""

from __future__ import annotations

import numpy as np
import pytest

from evo_ensembles.data import load_dataset
from evo_ensembles.data.cifar import PIXELS, parse_cifar_bin, read_cifar_bin, write_cifar_bin
from evo_ensembles.errors import DataNotFoundError, UserError


def _record(label: bytes, seed: int) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, PIXELS, dtype=np.uint8)
    return label + pixels.tobytes(), pixels


def test_record_layout_is_planar_rgb():
    rec, pixels = _record(bytes([3]), 0)
    x, y = parse_cifar_bin(rec + rec, label_bytes=1)
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.uint8 and y.tolist() == [3, 3]
    assert y.dtype == np.int64
    # Channel c, row i, column j is byte c*1024 + i*32 + j of the pixel block.
    for c, i, j in [(0, 0, 0), (1, 5, 7), (2, 31, 31)]:
        assert x[0, c, i, j] == pixels[c * 1024 + i * 32 + j]


def test_cifar100_keeps_the_fine_label():
    rec, _ = _record(bytes([4, 77]), 1)
    _, y = parse_cifar_bin(rec, label_bytes=2)
    assert y.tolist() == [77]


def test_files_are_concatenated_in_order(tmp_path):
    a = write_cifar_bin(tmp_path / "a.bin", np.zeros((2, 3, 32, 32), np.uint8), [1, 2])
    b = write_cifar_bin(tmp_path / "b.bin", np.full((1, 3, 32, 32), 9, np.uint8), [3])
    x, y = read_cifar_bin([a, b], label_bytes=1)
    assert y.tolist() == [1, 2, 3] and x[2].min() == 9 and x[:2].max() == 0


def test_writer_roundtrip_with_coarse_labels(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    p = write_cifar_bin(tmp_path / "t.bin", imgs, [10, 20, 30, 99], coarse=[0, 1, 2, 3])
    x, y = read_cifar_bin([p], label_bytes=2)
    np.testing.assert_array_equal(x, imgs)
    assert y.tolist() == [10, 20, 30, 99]


@pytest.mark.parametrize("size", [0, 3073 * 2 - 1])
def test_wrong_size_is_a_clear_error(size):
    with pytest.raises(UserError, match="multiple of the 3073-byte CIFAR record"):
        parse_cifar_bin(bytes(size), label_bytes=1, source="x.bin")


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="test_batch.bin"):
        read_cifar_bin([tmp_path / "test_batch.bin"], label_bytes=1)


def _fake_cifar10(root, n_per_batch=8, n_test=6, skip=()):
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        if name in skip:
            continue
        n = n_test if name == "test_batch.bin" else n_per_batch
        write_cifar_bin(d / name, rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                        rng.integers(0, 10, n))
    return root


def test_load_cifar10_from_fake_files(tmp_path):
    s = load_dataset("cifar-10", _fake_cifar10(tmp_path), val_fraction=0.25)
    assert (len(s.train), len(s.val), len(s.test)) == (30, 10, 6)
    assert s.name == "cifar10" and s.num_classes == 10 and s.input_shape == (3, 32, 32)
    assert s.train.x.shape == (30, 3, 32, 32) and len(s.mean) == len(s.std) == 3
    assert s.augment is not None and (s.augment.pad, s.augment.flip) == (4, True)


def test_load_cifar100_from_fake_files(tmp_path):
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [("train.bin", 20), ("test.bin", 5)]:
        write_cifar_bin(d / name, rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                        rng.integers(0, 100, n), coarse=rng.integers(0, 20, n))
    s = load_dataset("cifar100", tmp_path, val_fraction=0.0)
    assert s.num_classes == 100 and (len(s.train), len(s.val), len(s.test)) == (20, 0, 5)


def test_missing_cifar_batch_names_file_and_binary_version(tmp_path):
    root = _fake_cifar10(tmp_path, skip={"data_batch_3.bin"})
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root)
    msg = str(err.value)
    assert str(root / "cifar-10-batches-bin" / "data_batch_3.bin") in msg
    assert "binary version" in msg and "\n" not in msg
