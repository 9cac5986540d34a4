"""Out-of-distribution (OOD) test sets: images of no class the model knows, made offline.

A generated set, ``<root>/<name>-ood/`` (``fashion-mnist-ood``, ``mnist-ood``), holds one
uint8 ``<set>.npy`` of shape (N, 28, 28) per OOD set and ``manifest.json`` (sets, sizes,
parameters, seed, the fonts used with their sha256, versions, a sha256 per file). Like
:mod:`.corrupted`'s sets it is written into a temporary folder beside it and renamed into
place; asking again for a complete set with the same settings does nothing. The sets:

- ``digits``: scikit-learn's 1,797 bundled handwritten digits (8×8), resized MNIST-style
  to a 20×20 box padded by 4 px (near-OOD for Fashion-MNIST; not offered for MNIST);
- ``letters``: A–J (notMNIST-like) drawn from the TrueType fonts of Debian's font packages
  at random size, position and stroke width;
- ``noise-uniform`` and ``noise-gaussian`` (blurred Gaussian noise).

Each set draws from its own stream seeded from (seed, set name), so adding a set never
changes another's bytes; ``digits`` is a fixed function of scikit-learn's data. For
CIFAR-10/100 the OOD set is the released SVHN test file, ``<root>/svhn/test_32x32.mat``.

Loaded sets are normalised with the in-distribution training statistics (exactly like
``load_dataset``'s ``test``); their labels are all -1, because OOD images have no class.

Examples:
    >>> import os, tempfile
    >>> from evo_ensembles.data import load_dataset
    >>> root = tempfile.mkdtemp()
    >>> os.symlink("/usr/share/datasets/fashion-mnist", f"{root}/fashion-mnist")
    >>> path = generate_ood("fashion-mnist", root, n=4, progress=False)
    >>> sorted(p.name for p in path.iterdir())
    ['digits.npy', 'letters.npy', 'manifest.json', 'noise-gaussian.npy', 'noise-uniform.npy']
    >>> data = load_dataset("fashion-mnist", root, subset=500)
    >>> {k: tuple(v.x.shape) for k, v in ood_sets(data, ["letters"], root).items()}
    {'letters': (4, 1, 28, 28)}
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..checks import check_nonneg_int, check_positive_int
from ..config.generate import generator_main
from ..errors import DataNotFoundError, UnknownNameError, UserError, first_line
from ..run_folder import atomic_directory
from .arrays import ArrayData
from .catalog import _lookup, _normalise, resolve_root, split_corrupted_name
from .corrupted import FORMAT, _hashes_match, _read_manifest, _sha256, write_manifest
from .registry import DataSplits

GENERATOR_VERSION = 1
FONT_DIR = Path("/usr/share/fonts")
LETTERS = "ABCDEFGHIJ"
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/test_32x32.mat"
# Sets offered per in-distribution data set; the generated ones are 28×28 grey.
_OFFERED = {"fashion-mnist": ("digits", "letters", "noise-uniform", "noise-gaussian"),
            "mnist": ("letters", "noise-uniform", "noise-gaussian"),
            "cifar10": ("svhn",), "cifar100": ("svhn",)}
_SIZES = {"digits": 1797, "letters": 2000, "noise-uniform": 2000, "noise-gaussian": 2000}
PARAMS: dict[str, dict[str, Any]] = {
    "digits": {"meaning": "sklearn load_digits 8x8 (0..16) x 255/16, PIL bilinear to a "
                          "box x box square, zero-padded by pad px each side",
               "box": 20, "pad": 4},
    "letters": {"meaning": "one of letters (i mod 10) per image, white on black: font, size "
                           "(px, inclusive), stroke width and centre jitter (px) drawn per image",
                "letters": LETTERS, "size": [14, 24], "stroke_width": [0, 1], "jitter": 3},
    "noise-uniform": {"meaning": "independent uniform pixels", "low": 0, "high": 255},
    "noise-gaussian": {"meaning": "N(0,1) pixels blurred with sigma (px), standardised per "
                                  "image, then centre + scale * z, rounded, clipped to 0..255",
                       "sigma": 1.25, "centre": 127.5, "scale": 50.0},
}


def _hint(clean: str, root: Path) -> str:
    return (f"generate it with `python -m evo_ensembles.data.ood {clean} --root {root}` "
            f"(or evo_ensembles.data.generate_ood({clean!r}, root=...); a few seconds)")


def _clean(dataset: str) -> str:
    return split_corrupted_name(dataset)[0]  # "fashion-mnist-c" runs see the same OOD sets


def available_ood_sets(dataset: str) -> list[str]:
    """The OOD set names offered for an in-distribution data set (aliases and ``-c`` names
    accepted): e.g. ``['digits', 'letters', 'noise-uniform', 'noise-gaussian']``."""
    return list(_OFFERED[_clean(dataset)])


def _set_key(name: str, clean: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in _OFFERED[clean]:
        raise UnknownNameError(f"unknown OOD set {name!r} for {clean}; choose from "
                               f"{', '.join(_OFFERED[clean])}")
    return key


def _set_rng(seed: int, key: str) -> np.random.Generator:
    # A stable hash of the name (not Python's salted hash()) keeps streams per set.
    tag = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag]))


# ---------------------------------------------------------------- the sets
def _digits(n: int) -> np.ndarray:
    from PIL import Image
    from sklearn.datasets import load_digits

    p = PARAMS["digits"]
    box, pad = p["box"], p["pad"]
    images = load_digits().images[:n]
    out = np.zeros((len(images), box + 2 * pad, box + 2 * pad), np.uint8)
    for i, img in enumerate(images):
        # Resizing the float image rounds once, at the end.
        big = Image.fromarray((img * (255.0 / 16.0)).astype(np.float32)).resize(
            (box, box), Image.Resampling.BILINEAR)
        out[i, pad: pad + box, pad: pad + box] = np.clip(np.rint(np.asarray(big)), 0, 255)
    return out


def _glyph(font, letter: str, stroke: int) -> np.ndarray:
    """The ink of one letter, cropped to its bounding box (uint8)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(canvas).text((32, 32), letter, fill=255, font=font, anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    a = np.asarray(canvas)
    rows, cols = np.flatnonzero(a.any(1)), np.flatnonzero(a.any(0))
    if not len(rows):
        return np.zeros((0, 0), np.uint8)
    return a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _find_fonts(font_dir: Path = FONT_DIR) -> list[Path]:
    """TrueType fonts under ``font_dir`` that draw A–J as ten different non-empty glyphs
    (a symbol font's empty or repeated boxes are left out), sorted by path."""
    from PIL import ImageFont

    found = []
    for path in sorted(p for p in Path(font_dir).rglob("*") if p.suffix.lower() == ".ttf"):
        try:
            font = ImageFont.truetype(str(path), 24)
            glyphs = [_glyph(font, c, 0) for c in LETTERS]
        except OSError:
            continue
        if all(g.size for g in glyphs) and len({g.shape + (g.tobytes(),) for g in glyphs}) == len(LETTERS):
            found.append(path)
    if not found:
        raise DataNotFoundError(f"no usable TrueType font (.ttf) under {font_dir} for the letters "
                                "OOD set; install one as root: apt-get install fonts-dejavu-core")
    return found


def _letters(n: int, rng: np.random.Generator, fonts: list[Path]) -> np.ndarray:
    from PIL import ImageFont

    p = PARAMS["letters"]
    lo, hi = p["size"]
    side, margin = 28, 1
    cache: dict[tuple[int, int], Any] = {}
    out = np.zeros((n, side, side), np.uint8)
    for i in range(n):
        f, size = int(rng.integers(len(fonts))), int(rng.integers(lo, hi + 1))
        stroke = int(rng.integers(p["stroke_width"][0], p["stroke_width"][1] + 1))
        dy, dx = (int(v) for v in rng.integers(-p["jitter"], p["jitter"] + 1, 2))
        while True:  # a glyph too big for the frame is drawn smaller, never cut
            if (f, size) not in cache:
                cache[f, size] = ImageFont.truetype(str(fonts[f]), size)
            g = _glyph(cache[f, size], LETTERS[i % len(LETTERS)], stroke)
            if max(g.shape) <= side - 2 * margin or size <= 8:
                break
            size -= 1
        h, w = g.shape
        top = min(max((side - h) // 2 + dy, margin), side - margin - h)
        left = min(max((side - w) // 2 + dx, margin), side - margin - w)
        out[i, top: top + h, left: left + w] = g
    return out


def _noise(key: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if key == "noise-uniform":
        return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    from scipy.ndimage import gaussian_filter

    p = PARAMS["noise-gaussian"]
    z = gaussian_filter(rng.standard_normal((n, 28, 28)), sigma=(0, p["sigma"], p["sigma"]))
    z /= z.std(axis=(1, 2), keepdims=True)  # blurring shrinks the spread; restore it
    return np.clip(np.rint(p["centre"] + p["scale"] * z), 0, 255).astype(np.uint8)


def _digits_source() -> str | None:
    """sha256 of scikit-learn's bundled digits file, found without importing scikit-learn
    (seconds on a busy machine), so a complete set's check stays fast."""
    spec = importlib.util.find_spec("sklearn")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return _sha256(path)
    return None


def _settings(clean: str, seed: int, n: int | None, fonts: list[Path] | None) -> dict:
    """Everything that decides the sets' bytes: an existing set with these is complete."""
    sets = list(_OFFERED[clean])
    s = {"format": FORMAT, "kind": "ood", "name": f"{clean}-ood", "source": clean,
         "generator_version": GENERATOR_VERSION, "seed": seed, "n": n, "sets": sets,
         "sizes": {k: min(_SIZES[k], n or _SIZES[k]) for k in sets},
         "parameters": {k: PARAMS[k] for k in sets},
         "fonts": [{"file": str(f), "sha256": _sha256(f)} for f in fonts or []],
         "digits_source_sha256": _digits_source() if "digits" in sets else None}
    return json.loads(json.dumps(s))  # tuples → lists, as read back from the manifest


def generate_ood(name: str, root: str | os.PathLike | None = None, *, seed: int = 0,
                 n: int | None = None, progress: bool = True) -> Path:
    """Write ``<root>/<name>-ood/`` for ``fashion-mnist`` or ``mnist`` (see the module docstring).

    The same arguments (and fonts) give the same bytes; ``n`` caps every set's size (for
    tests). Returns the folder; does nothing when a complete set with the same settings is
    there, and replaces one with other settings. Needs no clean data, only the data root.
    """
    clean = _clean(name)
    base = resolve_root(root)
    if clean not in ("fashion-mnist", "mnist"):
        raise UserError(f"no OOD set is generated for {clean}; its OOD set is SVHN: "
                        + _svhn_hint(base / "svhn"))
    check_nonneg_int(seed, "seed")
    if n is not None:
        check_positive_int(n, "n")
    if not base.is_dir():
        raise DataNotFoundError(f"data root {base} does not exist; create it or pass root=/--root")
    fonts = _find_fonts()
    settings = _settings(clean, seed, n, fonts)
    target = base / settings["name"]
    found = _read_manifest(target)
    if found is not None and all(found.get(k) == v for k, v in settings.items()) \
            and _hashes_match(target, found):
        return target

    start = time.perf_counter()
    try:
        _generate(target, settings, seed, fonts, start, progress)
    except PermissionError:
        raise UserError(f"cannot write to the data root {base}; run `python -m "
                        f"evo_ensembles.data.ood {clean}` as a user who can, or pass --root") from None
    return target


def _generate(target: Path, settings: dict, seed: int, fonts: list[Path], start: float, progress: bool) -> None:
    """Draw the sets of ``settings`` into ``target``, its manifest last, atomically."""
    from tqdm.auto import tqdm

    with atomic_directory(target) as tmp:
        files = {}
        for key in tqdm(settings["sets"], desc=target.name, unit="set", disable=not progress):
            size = settings["sizes"][key]
            if key == "digits":
                images = _digits(size)
            elif key == "letters":
                images = _letters(size, _set_rng(seed, key), fonts)
            else:
                images = _noise(key, size, _set_rng(seed, key))
            np.save(tmp / f"{key}.npy", images)
            files[f"{key}.npy"] = _sha256(tmp / f"{key}.npy")
        import PIL
        import scipy
        import sklearn

        manifest = {**settings, "files": files, "seconds": round(time.perf_counter() - start, 1),
                    "versions": {"evo_ensembles": __version__, "numpy": np.__version__,
                                 "Pillow": PIL.__version__, "scikit-learn": sklearn.__version__,
                                 "scipy": scipy.__version__}}
        write_manifest(tmp, manifest)


# ---------------------------------------------------------------- loading
def _svhn_hint(d: Path) -> str:
    return f"download {SVHN_URL} into {d} (so that {d / 'test_32x32.mat'} exists)"


def _read_svhn(base: Path) -> np.ndarray:
    path = base / "svhn" / "test_32x32.mat"
    if not path.is_file():
        raise DataNotFoundError(f"SVHN test set not found: missing {path}; " + _svhn_hint(path.parent))
    from scipy.io import loadmat

    try:
        x = loadmat(path, variable_names=["X"]).get("X")
    except (OSError, ValueError, NotImplementedError) as e:
        raise UserError(f"{path} is not a readable .mat file ({first_line(e)}); "
                        + _svhn_hint(path.parent)) from None
    if x is None or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        got = "no 'X'" if x is None else f"'X' {x.dtype} {x.shape}"
        raise UserError(f"{path} holds {got}; expected uint8 'X' of shape (32, 32, 3, N)")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) → (N, C, H, W)


def _read_generated(clean: str, key: str, base: Path) -> np.ndarray:
    path = base / f"{clean}-ood"
    m = _read_manifest(path)
    if m is None:
        what = "has no readable manifest.json" if path.is_dir() else "does not exist"
        raise DataNotFoundError(f"OOD sets of {clean} not found: {path} {what}; " + _hint(clean, base))
    file = path / f"{key}.npy"
    if f"{key}.npy" not in m.get("files", {}) or not file.is_file():
        raise DataNotFoundError(f"OOD set {key!r} not found in {path}; " + _hint(clean, base))
    if _sha256(file) != m["files"][f"{key}.npy"]:
        raise UserError(f"OOD set {key!r} at {file} does not match its manifest (damaged); "
                        "re" + _hint(clean, base))
    x = np.load(file)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise UserError(f"{file} holds {x.dtype} {x.shape}; expected uint8 (N, H, W); re"
                        + _hint(clean, base))
    return x[:, None]


def _raw(clean: str, key: str, base: Path) -> np.ndarray:
    """One OOD set's uint8 images (N, C, H, W), checked against its manifest."""
    return _read_svhn(base) if key == "svhn" else _read_generated(clean, key, base)


def load_ood(name: str, data: DataSplits, root: str | os.PathLike | None = None) -> ArrayData:
    """One OOD set for ``data``: x float32 (N, C, H, W) normalised with ``data.mean`` /
    ``data.std`` (as ``data.test`` is); y int64 all -1 (OOD images have no class)."""
    clean = _clean(data.name)
    key = _set_key(name, clean)
    raw = _raw(clean, key, resolve_root(root))
    if tuple(raw.shape[1:]) != tuple(data.input_shape):
        raise UserError(f"OOD set {key!r} holds images {tuple(raw.shape[1:])}; {data.name} "
                        f"expects {tuple(data.input_shape)}")
    x = _normalise(torch.from_numpy(raw), data.mean, data.std)
    return ArrayData(x, torch.full((len(x),), -1, dtype=torch.int64))


def ood_sets(data: DataSplits, names: list[str] | None = None,
             root: str | os.PathLike | None = None) -> dict[str, ArrayData]:
    """OOD sets for ``data`` by name (see :func:`load_ood`), in the order asked.

    ``names=None`` gives every offered set that is on disk ({} when none is); a damaged
    one is then skipped with a warning. Named sets must exist: an unknown name raises
    UnknownNameError, a missing one DataNotFoundError, a damaged one UserError.
    """
    clean = _clean(data.name)
    if names is not None:
        keys = [_set_key(k, clean) for k in names]  # every name checked before any file
        return {k: load_ood(k, data, root) for k in dict.fromkeys(keys)}
    out = {}
    for key in _OFFERED[clean]:
        try:
            out[key] = load_ood(key, data, root)
        except DataNotFoundError:
            continue
        except UserError as e:
            warnings.warn(f"ignoring OOD set {key!r}: {first_line(e)}", stacklevel=2)
    return out


def _unlabelled(batches: Iterable) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    # as_tensors takes (x, y) batches: x with placeholder labels, whatever the source's.
    for b in batches:
        xb = b[0] if isinstance(b, (tuple, list)) and b else b
        xb = torch.from_numpy(xb) if isinstance(xb, np.ndarray) else xb
        if not isinstance(xb, torch.Tensor):
            raise UserError(f"expected batches of x or (x, ...) tensors, got {type(xb).__name__}")
        yield xb, torch.full((len(xb),), -1)


def ood_from(source: Any, *, batch_size: int = 1024) -> ArrayData:
    """The user's own OOD set from a tensor x, an ArrayData, a Dataset or a DataLoader (of x
    or (x, y, ...): labels are ignored and set to -1). The inputs must already be
    normalised as the model expects; they are kept as float32, in the source's order."""
    from torch.utils.data import DataLoader, Dataset

    from .loaders import as_tensors

    if isinstance(source, ArrayData):
        source = source.x
    if isinstance(source, torch.Tensor):
        x = source
    else:
        if not isinstance(source, (Dataset, Iterable)):
            raise UserError("expected a tensor, ArrayData, a Dataset or a DataLoader as the OOD "
                            f"set, got {type(source).__name__}")
        batches = DataLoader(source, batch_size=batch_size) if isinstance(source, Dataset) else source
        x, _ = as_tensors(_unlabelled(batches), batch_size=batch_size)
    if not torch.is_floating_point(x) or x.dim() < 2 or len(x) == 0:
        raise UserError(f"expected normalised float inputs (N, ...) with N > 0, got {x.dtype} "
                        f"{tuple(x.shape)}; normalise them as the model expects")
    x = x.detach().to(torch.float32)
    return ArrayData(x, torch.full((len(x),), -1, dtype=torch.int64))


# ---------------------------------------------------------------- figure and command
def plot_ood_grid(name: str, path: str | os.PathLike, root: str | os.PathLike | None = None,
                  per_set: int = 10) -> Path:
    """The first ``per_set`` images of every OOD set of ``name`` on disk, one row per set."""
    from ..reporting import _save, plt

    clean = _clean(name)
    base = resolve_root(root)
    rows = {}
    for key in _OFFERED[clean]:
        try:
            rows[key] = _raw(clean, key, base)[:per_set]
        except DataNotFoundError:
            continue
    if not rows:
        raise DataNotFoundError(f"no OOD set of {clean} under {base}; " + (
            _svhn_hint(base / "svhn") if clean.startswith("cifar") else _hint(clean, base)))
    fig, axes = plt.subplots(len(rows), per_set, figsize=(1.0 * per_set + 1.2, 1.05 * len(rows)),
                             squeeze=False, layout="constrained")
    for r, (key, imgs) in enumerate(rows.items()):
        for c in range(per_set):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                img = imgs[c].transpose(1, 2, 0)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(key, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"OOD test sets for {_lookup(clean).title}", fontsize=9)
    out = Path(path)
    _save(fig, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Generate the OOD sets of a data set (see :func:`generate_ood`); exit 2 on a user error."""
    return generator_main(argv, prog="python -m evo_ensembles.data.ood",
                          description="Generate NAME-ood (digits, letters, noise) beside the clean data set.",
                          generate=generate_ood)


if __name__ == "__main__":
    raise SystemExit(main())
