"""Corrupted test sets: the transforms, generation (determinism, manifest, atomic writes,
skipping), loading (normalisation, names, errors) and the released CIFAR-C layout."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from evo_ensembles.data import (
    corrupted_test,
    dataset_augment,
    generate_corrupted,
    load_corrupted,
    load_dataset,
    plot_corruption_grid,
)
from evo_ensembles.data import image_corruptions as C
from evo_ensembles.data.cifar import write_cifar_bin
from evo_ensembles.data.corruptions import main
from evo_ensembles.data.idx import write_idx
from evo_ensembles.data.registry import split_corrupted_name
from evo_ensembles.errors import DataNotFoundError, UnknownNameError, UserError

N_TEST = 6
# Types whose output depends on the seed (the others are fixed functions of the image).
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow",
          "frost", "fog", "elastic_transform", "rotate", "shear", "scale", "translate", "stripe",
          "zigzag", "dotted_line"}
# Canny replaces the image by its edge map at every severity, so its distance from the
# clean image does not measure severity.
NOT_MONOTONE = {"canny_edges"}


def _objects(n: int, seed: int) -> np.ndarray:
    """Clothing-like test images: a textured bright ellipse with a darker patch, on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(11, 17, 2)
        ry, rx = rng.uniform(7, 11, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        img = np.where(inside, rng.uniform(140, 230) + 20 * np.sin(xx / rng.uniform(1.5, 3)), 0)
        y0, x0 = rng.integers(8, 14, 2)
        img[y0:y0 + 5, x0:x0 + 6] *= 0.4
        out[i] = np.clip(img, 0, 255)
    return out


def _fake_root(root: Path, n_test: int = N_TEST) -> Path:
    d = root / "fashion-mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, imgs in [("train", _objects(40, 2)), ("t10k", _objects(n_test, 3))]:
        write_idx(d / f"{split}-images-idx3-ubyte.gz", imgs)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, len(imgs)).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A root with fake Fashion-MNIST and its generated corrupted set (seed 0)."""
    root = _fake_root(tmp_path_factory.mktemp("made"))
    generate_corrupted("fashion-mnist", root, seed=0, progress=False)
    return root


def _manifest(root: Path) -> dict:
    return json.loads((root / "fashion-mnist-c" / "manifest.json").read_text())


# ---------------------------------------------------------------- the transforms
def test_every_type_and_severity_is_uint8_in_shape_and_changes_the_image():
    x = _objects(8, 0)
    assert len(C.CORRUPTIONS) == 23 and set(C.CORRUPTIONS) == set(C.PARAMS) == set(C.MEANINGS)
    assert sorted(sum(C.GROUPS.values(), ())) == sorted(C.CORRUPTIONS)
    for kind in C.CORRUPTIONS:
        assert len(C.PARAMS[kind]) == 5
        for s in C.SEVERITIES:
            y = C.corrupt(x, kind, s, C.corruption_rng(0, kind, s))
            assert y.dtype == np.uint8 and y.shape == x.shape, (kind, s)
            assert not np.array_equal(y, x), (kind, s)


def test_damage_grows_with_severity():
    x = _objects(32, 5)
    for kind in C.CORRUPTIONS:
        mad = [np.abs(C.corrupt(x, kind, s, C.corruption_rng(0, kind, s)).astype(float) - x).mean()
               for s in C.SEVERITIES]
        if kind in NOT_MONOTONE:
            continue
        assert all(b >= a for a, b in zip(mad, mad[1:])), (kind, mad)
        assert mad[-1] > 1.2 * mad[0], (kind, mad)


def test_canny_gives_a_binary_edge_map():
    y = C.corrupt(_objects(4, 0), "canny_edges", 3, C.corruption_rng(0, "canny_edges", 3))
    assert set(np.unique(y)) == {0, 255}
    assert 0.02 < (y == 255).mean() < 0.4


def test_rng_depends_on_every_part_and_bad_arguments_are_rejected():
    draws = {C.corruption_rng(*a).random() for a in
             [(0, "fog", 1), (1, "fog", 1), (0, "snow", 1), (0, "fog", 2), (0, "fog", 1, 1)]}
    assert len(draws) == 5
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(_objects(1, 0), "rain", 1, C.corruption_rng(0, "fog", 1))
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(_objects(1, 0), "fog", 6, C.corruption_rng(0, "fog", 1))


# ---------------------------------------------------------------- generation
def test_same_seed_same_bytes_and_other_seed_changes_only_random_types(made, tmp_path):
    again = generate_corrupted("fashion-mnist", _fake_root(tmp_path / "a"), seed=0, progress=False)
    other = generate_corrupted("fashion-mnist", _fake_root(tmp_path / "b"), seed=1, progress=False)
    first = made / "fashion-mnist-c"
    for kind in C.CORRUPTIONS:
        a = (first / f"{kind}.npy").read_bytes()
        assert (again / f"{kind}.npy").read_bytes() == a, kind
        assert ((other / f"{kind}.npy").read_bytes() != a) == (kind in RANDOM), kind
    assert _manifest(made)["files"] == json.loads((again / "manifest.json").read_text())["files"]


def test_layout_and_manifest(made):
    d = made / "fashion-mnist-c"
    m = _manifest(made)
    assert sorted(p.name for p in d.iterdir()) == sorted(
        [f"{k}.npy" for k in C.CORRUPTIONS] + ["labels.npy", "manifest.json"])
    assert m["types"] == list(C.CORRUPTIONS) and m["severities"] == [1, 2, 3, 4, 5]
    assert m["seed"] == 0 and m["n"] is None and m["size"] == N_TEST
    assert m["generator_version"] == C.GENERATOR_VERSION and "evo_ensembles" in m["versions"]
    assert m["parameters"]["fog"]["values"] == [list(p) for p in C.PARAMS["fog"]]
    for name, digest in m["files"].items():
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == digest, name
    arr = np.load(d / "snow.npy")
    assert arr.shape == (5, N_TEST, 28, 28) and arr.dtype == np.uint8
    assert np.load(d / "labels.npy").dtype == np.int64


def test_n_corrupts_only_the_first_images(tmp_path):
    root = _fake_root(tmp_path)
    d = generate_corrupted("fashion-mnist", root, n=2, progress=False)
    assert np.load(d / "fog.npy").shape == (5, 2, 28, 28) and _manifest(root)["n"] == 2
    with pytest.raises(UserError, match="n must be >= 1"):
        generate_corrupted("fashion-mnist", root, n=0, progress=False)


def test_complete_set_is_skipped_and_a_damaged_one_regenerated(tmp_path, monkeypatch):
    root = _fake_root(tmp_path)
    d = generate_corrupted("fashion-mnist", root, n=2, progress=False)
    good = (d / "zigzag.npy").read_bytes()

    def boom(*a, **k):
        raise AssertionError("recomputed a complete set")

    with monkeypatch.context() as mp:
        mp.setattr(C, "corrupt", boom)
        assert generate_corrupted("fashion-mnist", root, n=2, progress=False) == d
    damaged = bytearray(good)
    damaged[-1] ^= 1
    (d / "zigzag.npy").write_bytes(bytes(damaged))
    with pytest.raises(UserError, match="does not match its manifest"):
        load_corrupted("fashion-mnist", root, mean=(0.0,), std=(1.0,)).verify()
    generate_corrupted("fashion-mnist", root, n=2, progress=False)
    assert (d / "zigzag.npy").read_bytes() == good


def test_a_crash_leaves_no_half_written_set(tmp_path, monkeypatch):
    root = _fake_root(tmp_path)
    real, calls = C.corrupt, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) > 30:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(C, "corrupt", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_corrupted("fashion-mnist", root, n=2, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["fashion-mnist"]
    # An existing set survives a crashed regeneration with other settings.
    monkeypatch.setattr(C, "corrupt", real)
    d = generate_corrupted("fashion-mnist", root, n=2, progress=False)
    calls.clear()
    monkeypatch.setattr(C, "corrupt", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_corrupted("fashion-mnist", root, n=2, seed=5, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["fashion-mnist", "fashion-mnist-c"]
    load_corrupted("fashion-mnist", root, mean=(0.0,), std=(1.0,)).verify()
    assert _manifest(root)["seed"] == 0 and d.is_dir()


def test_other_settings_replace_the_set(tmp_path):
    root = _fake_root(tmp_path)
    generate_corrupted("fashion-mnist", root, n=2, progress=False)
    generate_corrupted("fashion-mnist", root, n=2, seed=3, progress=False)
    assert _manifest(root)["seed"] == 3
    assert sorted(p.name for p in root.iterdir()) == ["fashion-mnist", "fashion-mnist-c"]


def test_only_mnist_family_is_generated(tmp_path):
    with pytest.raises(UserError, match="zenodo"):
        generate_corrupted("cifar10", tmp_path, progress=False)


# ---------------------------------------------------------------- loading
def test_loader_normalises_like_the_clean_test_split(made):
    s = load_dataset("fashion-mnist-c", made, val_fraction=0.25, seed=1)
    cs = corrupted_test(s)
    assert s.name == cs.name == "fashion-mnist-c" and (cs.mean, cs.std) == (s.mean, s.std)
    assert len(cs) == 23 * 5 and cs.size == len(s.test) and torch.equal(cs.labels, s.test.y)
    raw = np.load(made / "fashion-mnist-c" / "frost.npy")[3]
    d = cs.get("frost", 4)
    assert d.x.shape == (N_TEST, 1, 28, 28) and d.x.dtype == torch.float32
    expected = (torch.from_numpy(raw).float()[:, None] / 255 - s.mean[0]) / s.std[0]
    torch.testing.assert_close(d.x, expected)
    # Lazily, in (type, severity) order.
    it = iter(cs)
    assert [next(it)[:2] for _ in range(6)] == [("gaussian_noise", s) for s in range(1, 6)] + [("shot_noise", 1)]
    # Standalone, with the default split's statistics.
    alone = load_corrupted("fashion-mnist-c", made)
    assert (alone.mean, alone.std) == (load_dataset("fashion-mnist", made).mean,
                                       load_dataset("fashion-mnist", made).std)


def test_subset_cuts_the_corrupted_set_like_test(made):
    s = load_dataset("fmnist-c", made, subset=3)  # test keeps max(1000, 3) → all 6
    assert s.corrupted.size == len(s.test) == N_TEST
    cut = s.corrupted.head(2)
    assert cut.get("fog", 1).x.shape[0] == 2 and cut.labels.tolist() == s.test.y[:2].tolist()


def test_describe_gains_a_key_only_for_the_c_name(tmp_path):
    root = _fake_root(tmp_path)
    before = load_dataset("fashion-mnist", root).describe()
    generate_corrupted("fashion-mnist", root, progress=False)
    plain = load_dataset("fashion-mnist", root)
    assert plain.corrupted is not None and plain.describe() == before
    with_c = load_dataset("fashion-mnist-c", root).describe()
    assert with_c["corrupted"]["name"] == "fashion-mnist-c" and with_c["corrupted"]["seed"] == 0
    assert with_c["corrupted"]["types"] == list(C.CORRUPTIONS)
    assert {k: v for k, v in with_c.items() if k not in ("corrupted", "name")} == \
        {k: v for k, v in before.items() if k != "name"}


def test_missing_set_says_how_to_generate_it(tmp_path):
    root = _fake_root(tmp_path)
    for call in (lambda: load_dataset("fashion-mnist-c", root), lambda: load_corrupted("fashion-mnist", root)):
        with pytest.raises(DataNotFoundError) as err:
            call()
        msg = str(err.value)
        assert f"python -m evo_ensembles.data.corruptions fashion-mnist --root {root}" in msg
        assert "generate_corrupted" in msg and "\n" not in msg
    plain = load_dataset("fashion-mnist", root)
    assert plain.corrupted is None and "corrupted" not in plain.describe()
    with pytest.raises(DataNotFoundError, match="no corrupted test set attached"):
        corrupted_test(plain)


def test_names():
    assert split_corrupted_name("fashion-mnist-c") == ("fashion-mnist", True)
    assert split_corrupted_name("Fashion_MNIST_C") == ("fashion-mnist", True)
    assert split_corrupted_name("mnist") == ("mnist", False)
    assert split_corrupted_name("cifar-100-c") == ("cifar100", True)
    assert dataset_augment("fashion-mnist-c") == dataset_augment("fashion-mnist")
    with pytest.raises(UnknownNameError, match="add -c"):
        split_corrupted_name("imagenet-c")


def test_command_generates_and_reports_errors(tmp_path, capsys):
    root = _fake_root(tmp_path)
    assert main(["fashion-mnist", "--root", str(root), "--n", "2", "--no-progress"]) == 0
    assert str(root / "fashion-mnist-c") in capsys.readouterr().out
    assert main(["cifar10", "--root", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10-C is not generated here") and err.count("\n") == 1


def test_grid_figure(made, tmp_path):
    out = plot_corruption_grid("fashion-mnist-c", tmp_path / "grid.png", index=1, root=made)
    assert out.is_file() and out.stat().st_size > 10_000
    with pytest.raises(UserError, match="index"):
        plot_corruption_grid("fashion-mnist", tmp_path / "g.png", index=N_TEST, root=made)


# ---------------------------------------------------------------- released CIFAR-C layout
def _fake_cifar_c(root: Path, n: int = 4, types=("fog", "gaussian_noise", "speckle_noise")) -> np.ndarray:
    d = root / "CIFAR-10-C"
    d.mkdir(parents=True)
    labels = np.arange(n) % 10
    np.save(d / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    for t, kind in enumerate(types):
        arr = np.zeros((5 * n, 32, 32, 3), np.uint8)
        arr[..., 0] = (np.arange(5 * n) // n + 1)[:, None, None]  # red: severity
        arr[..., 1] = (np.arange(5 * n) % n)[:, None, None]  # green: image index
        arr[..., 2] = t  # blue: type
        np.save(d / f"{kind}.npy", arr)
    return labels


def test_cifar_c_layout_is_parsed(tmp_path):
    labels = _fake_cifar_c(tmp_path)
    cs = load_corrupted("CIFAR-10-C", tmp_path, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert cs.name == "cifar10-c" and cs.input_shape == (3, 32, 32)
    assert cs.types == ("gaussian_noise", "fog", "speckle_noise")  # paper's order, extras last
    assert cs.labels.tolist() == labels.tolist() and len(cs) == 15
    for s in (1, 4):
        raw = cs.raw("fog", s)
        assert raw.shape == (4, 3, 32, 32)
        assert (raw[:, 0] == s).all() and (raw[:, 1] == np.arange(4)[:, None, None]).all()
        assert (raw[:, 2] == 0).all()
    x = cs.get("speckle_noise", 2).x
    assert x.shape == (4, 3, 32, 32) and torch.allclose(x[:, 0], torch.full_like(x[:, 0], 2 / 255))
    assert cs.describe()["source"] == "released"


def test_cifar_c_attaches_to_cifar10(tmp_path):
    labels = _fake_cifar_c(tmp_path, n=4)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        write_cifar_bin(d / f"data_batch_{i}.bin", rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8),
                        rng.integers(0, 10, 4))
    write_cifar_bin(d / "test_batch.bin", rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), labels)
    s = load_dataset("cifar-10-c", tmp_path, val_fraction=0.0)
    assert s.name == "cifar10-c" and s.corrupted.mean == s.mean and len(s.mean) == 3
    assert s.describe()["corrupted"]["size"] == 4
    assert load_dataset("cifar10", tmp_path).corrupted is not None


def test_cifar_c_missing_or_malformed(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_corrupted("cifar100-c", tmp_path, mean=(0.0,) * 3, std=(1.0,) * 3)
    msg = str(err.value)
    assert "CIFAR-100-C" in msg and "zenodo.org/records/3555552" in msg and "\n" not in msg
    _fake_cifar_c(tmp_path)
    np.save(tmp_path / "CIFAR-10-C" / "fog.npy", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(UserError, match=r"fog.npy holds uint8 \(20, 32, 32\)"):
        load_corrupted("cifar10", tmp_path, mean=(0.0,) * 3, std=(1.0,) * 3)


def _fmt(v) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_fmt(a) for a in v) + ")"
    s = f"{v:g}"
    return s[1:] if s.startswith("0.") else s


def test_docstring_table_matches_the_parameters():
    doc = C.__doc__
    for kind in C.CORRUPTIONS:
        vals = C.PARAMS[kind]
        if kind in ("rotate", "shear", "scale", "translate"):
            text = " ".join(f"{_fmt(a)}-{_fmt(b)}" for a, b in vals)
        else:
            text = " ".join(_fmt(v) for v in vals)
        rows = [line for line in doc.splitlines() if line.startswith(kind + " ")]
        assert len(rows) == 1, kind
        if kind in ("snow", "elastic_transform"):  # rows wrapped over several lines
            following = C.CORRUPTIONS[C.CORRUPTIONS.index(kind) + 1]
            block = doc[doc.index(rows[0]):doc.index("\n" + following + " ")]
            assert all(_fmt(v) in block for v in vals), kind
        else:
            assert rows[0].rstrip().endswith(text), (kind, text)


def test_the_set_folder_gets_the_usual_permissions(made):
    umask = os.umask(0)
    os.umask(umask)
    assert (made / "fashion-mnist-c").stat().st_mode & 0o777 == 0o777 & ~umask  # not 0700
