"""OOD test sets: generation (determinism, streams, manifest, skipping), what the images
look like, loading (normalisation, names, errors), SVHN's released file and ood_from."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from evo_ensembles.data import (
    ArrayData,
    DataSplits,
    available_ood_sets,
    generate_ood,
    load_dataset,
    load_ood,
    ood_from,
    ood_sets,
    plot_ood_grid,
)
from evo_ensembles.data.ood import _find_fonts, main
from evo_ensembles.data.registry import _normalise
from evo_ensembles.errors import DataNotFoundError, UnknownNameError, UserError

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")
N = 12
FMNIST_SETS = ["digits", "letters", "noise-uniform", "noise-gaussian"]
SEEDED = ["letters", "noise-uniform", "noise-gaussian"]


def _root(path: Path) -> Path:
    os.symlink(REAL_FMNIST, path / "fashion-mnist")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A root with the real Fashion-MNIST and its OOD sets (seed 0, N images each)."""
    root = _root(tmp_path_factory.mktemp("made"))
    generate_ood("fashion-mnist", root, seed=0, n=N, progress=False)
    return root


@pytest.fixture(scope="module")
def data(made) -> DataSplits:
    return load_dataset("fashion-mnist", made, subset=500)


def _raw(root: Path, key: str, clean: str = "fashion-mnist") -> np.ndarray:
    return np.load(root / f"{clean}-ood" / f"{key}.npy")


# ---------------------------------------------------------------- generation
def test_same_arguments_give_the_same_bytes_and_another_seed_other_bytes(made, tmp_path):
    (tmp_path / "a").mkdir()
    again = generate_ood("fashion-mnist", _root(tmp_path / "a"), seed=0, n=N, progress=False)
    first = made / "fashion-mnist-ood"
    assert _manifest(again)["files"] == _manifest(first)["files"]
    for key in FMNIST_SETS:
        assert np.array_equal(np.load(again / f"{key}.npy"), np.load(first / f"{key}.npy"))
    (tmp_path / "b").mkdir()
    other = generate_ood("fashion-mnist", tmp_path / "b", seed=1, n=N, progress=False)
    for key in SEEDED:
        assert _sha(other / f"{key}.npy") != _sha(first / f"{key}.npy"), key
    # digits are scikit-learn's images resized: the seed has nothing to draw there
    assert _sha(other / "digits.npy") == _sha(first / "digits.npy")


def test_each_set_has_its_own_stream(made, tmp_path):
    """MNIST has no digits set; its other sets are byte for byte Fashion-MNIST's."""
    path = generate_ood("mnist", tmp_path, seed=0, n=N, progress=False)
    assert sorted(p.name for p in path.glob("*.npy")) == [f"{k}.npy" for k in sorted(SEEDED)]
    for key in SEEDED:
        assert _sha(path / f"{key}.npy") == _sha(made / "fashion-mnist-ood" / f"{key}.npy")


def test_manifest_records_hashes_sizes_fonts_and_versions(made):
    path = made / "fashion-mnist-ood"
    m = _manifest(path)
    assert m["sets"] == FMNIST_SETS and m["seed"] == 0 and m["n"] == N
    assert m["files"] == {f"{k}.npy": _sha(path / f"{k}.npy") for k in FMNIST_SETS}
    assert m["sizes"] == dict.fromkeys(FMNIST_SETS, N)
    assert set(m["versions"]) >= {"numpy", "Pillow", "scikit-learn"}
    assert m["fonts"] and all(_sha(Path(f["file"])) == f["sha256"] for f in m["fonts"])
    assert [f["file"] for f in m["fonts"]] == sorted(f["file"] for f in m["fonts"])
    for key in FMNIST_SETS:
        arr = _raw(made, key)
        assert arr.dtype == np.uint8 and arr.shape == (N, 28, 28)
    assert not [p for p in made.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_second_generate_is_a_no_op_and_other_settings_replace_the_set(tmp_path):
    path = generate_ood("fashion-mnist", tmp_path, n=4, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    assert generate_ood("fashion-mnist", tmp_path, n=4, progress=False) == path
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before
    generate_ood("fashion-mnist", tmp_path, n=3, progress=False)
    assert _manifest(path)["sizes"] == dict.fromkeys(FMNIST_SETS, 3)
    assert _raw(tmp_path, "letters").shape == (3, 28, 28)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="SVHN"):
        generate_ood("cifar10", tmp_path)
    with pytest.raises(UnknownNameError):
        generate_ood("kmnist", tmp_path)
    with pytest.raises(UserError, match="seed"):
        generate_ood("mnist", tmp_path, seed=-1)
    with pytest.raises(UserError, match="n must be"):
        generate_ood("mnist", tmp_path, n=0)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        generate_ood("mnist", tmp_path / "nowhere")


def test_no_font_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a font")
    (tmp_path / "broken.ttf").write_bytes(b"not a font either")
    with pytest.raises(DataNotFoundError, match="apt-get install fonts-dejavu-core"):
        _find_fonts(tmp_path)


# ---------------------------------------------------------------- what the images are
def test_digits_are_scikit_learns_digits_in_a_20px_box_with_a_4px_empty_border(made):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = _raw(made, "digits")
    border = d.copy()
    border[:, 4:24, 4:24] = 0
    assert not border.any()  # bilinear upsampling stays inside its box
    assert (d[:, 4:24, 4:24].reshape(N, -1).max(1) >= 128).all()
    src = load_digits().images[:N]
    for img, orig in zip(d, src):
        back = np.asarray(Image.fromarray(img[4:24, 4:24].astype(np.float32)).resize(
            (8, 8), Image.Resampling.BOX))
        assert np.corrcoef(back.ravel(), orig.ravel())[0, 1] > 0.95


def test_letters_are_whole_glyphs_white_on_black_inside_the_frame(made):
    a = _raw(made, "letters")
    assert (a.reshape(N, -1).max(1) == 255).all()
    frame = a.copy()
    frame[:, 1:27, 1:27] = 0
    assert not frame.any()  # a 1 px empty margin: no glyph is cut by the frame
    ink = (a > 0).mean((1, 2))
    assert ((ink > 0.04) & (ink < 0.6)).all()
    assert len({img.tobytes() for img in a}) == N


def test_noise_sets_are_spread_over_the_grey_levels(made):
    u, g = _raw(made, "noise-uniform"), _raw(made, "noise-gaussian")
    assert u.min() <= 5 and u.max() >= 250 and abs(float(u.mean()) - 127.5) < 6
    assert (g.reshape(N, -1).std(1) > 30).all()
    # blurred: neighbours agree far more than in independent noise
    corr = [np.corrcoef(img[:, :-1].ravel(), img[:, 1:].ravel())[0, 1] for img in g]
    assert min(corr) > 0.5


# ---------------------------------------------------------------- loading
def test_loaded_sets_are_normalised_with_the_training_statistics(made, data):
    assert data.mean != (0.0,) and data.std != (1.0,)
    sets = ood_sets(data, root=made)
    assert list(sets) == FMNIST_SETS
    for key, ood in sets.items():
        raw = torch.from_numpy(_raw(made, key))[:, None]
        assert ood.x.dtype == torch.float32 and ood.x.shape == (N, 1, 28, 28)
        assert torch.equal(ood.x, _normalise(raw, data.mean, data.std))
        assert torch.equal(ood.y, torch.full((N,), -1))
    back = sets["letters"].x * (data.std[0] * 255) + data.mean[0] * 255
    assert torch.allclose(back, torch.from_numpy(_raw(made, "letters"))[:, None].float(), atol=1e-3)


def test_names_are_case_insensitive_and_unknown_ones_list_the_valid_names(made, data):
    assert list(ood_sets(data, ["Noise_Gaussian", "LETTERS"], made)) == ["noise-gaussian", "letters"]
    assert available_ood_sets("fmnist") == FMNIST_SETS
    assert available_ood_sets("mnist-c") == SEEDED
    with pytest.raises(UnknownNameError, match="digits, letters, noise-uniform, noise-gaussian"):
        ood_sets(data, ["letters", "cifar"], made)
    with pytest.raises(UnknownNameError, match="svhn"):
        load_ood("svhn", data, made)


def test_missing_sets_say_which_command_makes_them(tmp_path, data):
    assert ood_sets(data, root=tmp_path) == {}
    with pytest.raises(DataNotFoundError, match="python -m evo_ensembles.data.ood fashion-mnist"):
        ood_sets(data, ["letters"], tmp_path)
    generate_ood("mnist", tmp_path, n=2, progress=False)
    (tmp_path / "fashion-mnist-ood").mkdir()
    with pytest.raises(DataNotFoundError, match="python -m evo_ensembles.data.ood"):
        load_ood("digits", data, tmp_path)


def test_a_damaged_set_is_an_error_to_regenerate_and_generate_repairs_it(tmp_path, data):
    path = generate_ood("fashion-mnist", tmp_path, n=3, progress=False)
    arr = np.load(path / "letters.npy")
    arr[0, 0, 0] ^= 1
    np.save(path / "letters.npy", arr)
    with pytest.raises(UserError, match="regenerate") as err:
        load_ood("letters", data, tmp_path)
    assert not isinstance(err.value, DataNotFoundError)
    with pytest.warns(UserWarning, match="letters"):
        assert list(ood_sets(data, root=tmp_path)) == ["digits", "noise-uniform", "noise-gaussian"]
    generate_ood("fashion-mnist", tmp_path, n=3, progress=False)
    assert len(load_ood("letters", data, tmp_path)) == 3


def _cifar_splits(name: str = "cifar10") -> DataSplits:
    part = ArrayData(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64))
    return DataSplits(name, part, part, part, 10, (3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def test_svhn_is_read_from_the_released_mat_file(tmp_path):
    from scipy.io import savemat

    cifar = _cifar_splits()
    assert available_ood_sets("CIFAR-10") == ["svhn"] == available_ood_sets("cifar100")
    assert ood_sets(cifar, root=tmp_path) == {}
    with pytest.raises(DataNotFoundError, match="http://ufldl.stanford.edu/housenumbers/test_32x32.mat"):
        load_ood("svhn", cifar, tmp_path)
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    (tmp_path / "svhn").mkdir()
    savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": x, "y": np.arange(1, 6)[:, None]})
    ood = ood_sets(cifar, root=tmp_path)["svhn"]
    assert ood.x.shape == (5, 3, 32, 32) and torch.equal(ood.y, torch.full((5,), -1))
    expect = _normalise(torch.from_numpy(x).permute(3, 2, 0, 1), cifar.mean, cifar.std)
    assert torch.equal(ood.x, expect)
    i, c, h, w = 3, 2, 5, 17  # image i, channel c, row h, column w of X[h, w, c, i]
    want = (x[h, w, c, i] - cifar.mean[c] * 255) / (cifar.std[c] * 255)
    assert float(ood.x[i, c, h, w]) == pytest.approx(want, rel=1e-5)
    savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": x[:, :, :1]})
    with pytest.raises(UserError, match=r"\(32, 32, 3, N\)"):
        load_ood("svhn", cifar, tmp_path)


# ---------------------------------------------------------------- the user's own data
def test_ood_from_a_dataset_a_loader_or_a_tensor():
    x = torch.randn(10, 1, 6, 6)
    labels = torch.arange(10)
    for source in [TensorDataset(x, labels), TensorDataset(x), DataLoader(TensorDataset(x, labels), 3),
                   DataLoader(TensorDataset(x), 4), x, ArrayData(x, labels)]:
        ood = ood_from(source, batch_size=4)
        assert torch.equal(ood.x, x), type(source)
        assert torch.equal(ood.y, torch.full((10,), -1))
    with pytest.raises(UserError, match="normalised"):
        ood_from(torch.zeros(4, 1, 6, 6, dtype=torch.uint8))
    with pytest.raises(UserError):
        ood_from(TensorDataset(x[:0]))
    with pytest.raises(UserError, match="Dataset"):
        ood_from(3)


# ---------------------------------------------------------------- figure and command
def test_grid_figure(made, tmp_path):
    out = plot_ood_grid("fashion-mnist", tmp_path / "grid.png", made, per_set=4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataNotFoundError, match="test_32x32.mat"):
        plot_ood_grid("cifar10", tmp_path / "none.png", tmp_path)


def test_command_generates_and_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["mnist", "--root", str(tmp_path), "--n", "2", "--no-progress"]) == 0
    assert str(tmp_path / "mnist-ood") in capsys.readouterr().out
    assert main(["kmnist", "--root", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown data set 'kmnist'") and err.count("\n") == 1
    assert main(["cifar100", "--root", str(tmp_path)]) == 2
    assert "svhn" in capsys.readouterr().err.lower()


def test_module_runs_with_no_import_warning(tmp_path):
    """The package exports the OOD names lazily, so `-m` finds the module not yet imported."""
    out = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "evo_ensembles.data.ood",
                          "mnist", "--root", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: data root"), out.stderr
