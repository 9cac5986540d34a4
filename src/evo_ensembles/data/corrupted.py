"""Corrupted test sets: generate Fashion-MNIST-C / MNIST-C, load them and CIFAR-10-C / -100-C.

A generated set, ``<root>/<name>-c/`` (``fashion-mnist-c``, ``mnist-c``), holds one uint8
``<type>.npy`` of shape (5, N, 28, 28) per corruption (severities 1..5, the clean test
files' order), ``labels.npy`` (N,) and ``manifest.json`` (types, severities, parameters,
seed, versions, a sha256 per file). It is written into a temporary folder beside it and
renamed into place, so a crash leaves no half-written set; asking again for a complete set
with the same settings does nothing. The transforms are in :mod:`.image_corruptions`.

The released CIFAR-10-C / CIFAR-100-C (Hendrycks & Dietterich, 2019) are read as
published: ``<root>/CIFAR-10-C/<corruption>.npy`` uint8 (5·N, 32, 32, 3), severity 1's N
images first, and ``labels.npy`` (5·N,).

:class:`CorruptedSet` gives each (type, severity) as an :class:`ArrayData` normalised with
the clean training split's statistics (exactly those of ``load_dataset``'s ``test``),
read lazily through a memory map, so the whole set is never in memory at once. Loading by
name (``load_corrupted``, and ``load_dataset("NAME-c")`` attaching the set) is in
:mod:`.registry`, beside ``load_dataset``.

Examples:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.symlink("/usr/share/datasets/fashion-mnist", f"{root}/fashion-mnist")
    >>> path = generate_corrupted("fashion-mnist", root, n=4, progress=False)
    >>> sorted(p.name for p in path.iterdir())[:3]
    ['brightness.npy', 'canny_edges.npy', 'contrast.npy']
    >>> from evo_ensembles.data import load_corrupted
    >>> cs = load_corrupted("fashion-mnist-c", root, mean=(0.286,), std=(0.353,))
    >>> len(cs), cs.get("fog", 5).x.shape
    (115, torch.Size([4, 1, 28, 28]))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..checks import check_nonneg_int, check_positive_int
from ..errors import DataNotFoundError, UserError, first_line
from ..run_folder import atomic_directory
from .arrays import ArrayData
from .catalog import _lookup, _normalise, resolve_root, split_corrupted_name

FORMAT = 1
CHUNK = 2000  # images corrupted at once: bounds memory; each chunk has its own random stream
SEVERITIES = (1, 2, 3, 4, 5)
# The released CIFAR-C files: the 15 ImageNet-C types first, in the paper's order.
CIFAR_C_TYPES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)


@dataclass(frozen=True)
class _CSpec:
    clean: str  # the clean data set's canonical name
    dirname: str
    title: str
    generated: bool  # made here (else the released files)
    url: str = ""


_CSPECS = {
    s.clean: s
    for s in [
        _CSpec("fashion-mnist", "fashion-mnist-c", "Fashion-MNIST-C", True),
        _CSpec("mnist", "mnist-c", "MNIST-C (this toolkit's)", True),
        _CSpec("cifar10", "CIFAR-10-C", "CIFAR-10-C", False, "https://zenodo.org/records/2535967"),
        _CSpec("cifar100", "CIFAR-100-C", "CIFAR-100-C", False, "https://zenodo.org/records/3555552"),
    ]
}


def _cspec(name: str) -> _CSpec:
    return _CSPECS[split_corrupted_name(name)[0]]


def _hint(cs: _CSpec, root: Path) -> str:
    if cs.generated:
        return (f"generate it with `python -m evo_ensembles.data.corruptions {cs.clean} --root "
                f"{root}` (or evo_ensembles.data.generate_corrupted({cs.clean!r}, root=...); "
                "a few minutes on 2 CPU cores)")
    return (f"download {cs.dirname}.tar from {cs.url} and extract it into {root}, so that "
            f"{root / cs.dirname} holds <corruption>.npy and labels.npy")


@dataclass(frozen=True, eq=False)
class CorruptedSet:
    """A corrupted test set: ``len(types) * len(severities)`` versions of the same images.

    ``get(type, severity)`` is an :class:`ArrayData` (x float32 (N, C, H, W) normalised
    with ``mean``/``std``, y int64 (N,)); iterating yields ``(type, severity, data)``
    lazily, one (type, severity) in memory at a time.
    """

    name: str  # e.g. "fashion-mnist-c"
    title: str
    path: Path
    types: tuple[str, ...]
    severities: tuple[int, ...]
    labels: torch.Tensor  # (size,) int64
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, int, int]
    per_severity: int  # images per severity in the files (size may be fewer: head())
    manifest: dict | None = field(default=None, repr=False)  # generated sets only

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    def __len__(self) -> int:
        return len(self.types) * len(self.severities)

    def _check(self, kind: str, severity: int) -> None:
        if kind not in self.types:
            raise UserError(f"{self.title} has no corruption {kind!r}; it has {', '.join(self.types)}")
        if severity not in self.severities:
            raise UserError(f"severity must be one of {self.severities}, got {severity!r}")

    def raw(self, kind: str, severity: int) -> np.ndarray:
        """The uint8 images (size, C, H, W) of one (type, severity): a memory-mapped view."""
        self._check(kind, severity)
        arr = np.load(self.path / f"{kind}.npy", mmap_mode="r")
        if self.manifest is not None:  # (5, N, H, W)
            return arr[severity - 1, : self.size][:, None]
        start = (severity - 1) * self.per_severity  # (5N, H, W, C), severity-major
        return arr[start: start + self.size].transpose(0, 3, 1, 2)

    def get(self, kind: str, severity: int) -> ArrayData:
        """One (type, severity), normalised like the clean test split."""
        x = torch.from_numpy(np.array(self.raw(kind, severity)))  # a copy: the map is read-only
        return ArrayData(_normalise(x, self.mean, self.std), self.labels.clone())

    def __iter__(self) -> Iterator[tuple[str, int, ArrayData]]:
        for kind in self.types:
            for severity in self.severities:
                yield kind, severity, self.get(kind, severity)

    def head(self, n: int) -> CorruptedSet:
        """The same set cut to its first ``n`` images (as ``load_dataset`` cuts ``test``)."""
        return dataclasses.replace(self, labels=self.labels[: max(0, int(n))].clone())

    def verify(self) -> None:
        """Check every file against the manifest's sha256 (generated sets only)."""
        if self.manifest is not None and not _hashes_match(self.path, self.manifest):
            raise UserError(f"{self.title} at {self.path} does not match its manifest; "
                            + _hint(_cspec(self.name), self.path.parent))

    def describe(self) -> dict:
        """A JSON-able summary for run metadata (stable keys)."""
        out = {"name": self.name, "types": list(self.types), "severities": list(self.severities),
               "size": self.size, "source": "generated" if self.manifest else "released"}
        if self.manifest is not None:
            out["seed"] = self.manifest["seed"]
            out["generator_version"] = self.manifest["generator_version"]
            files = json.dumps(self.manifest["files"], sort_keys=True).encode()
            out["digest"] = hashlib.sha256(files).hexdigest()[:16]
        return out


# ---------------------------------------------------------------- opening
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable .npy file ({first_line(e)})") from None
    return arr.shape, arr.dtype


def _read_manifest(path: Path) -> dict | None:
    try:
        m = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def write_manifest(folder: Path, manifest: dict) -> None:
    """``manifest.json`` of a generated set, written into its staging folder last."""
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _open_generated(cs: _CSpec, path: Path, mean, std) -> CorruptedSet:
    if not (path / "manifest.json").is_file():
        raise DataNotFoundError(f"{cs.title} not found: {path} has no manifest.json; "
                                + _hint(cs, path.parent))
    m = _read_manifest(path)
    if m is None or not {"types", "size", "files"} <= set(m):
        raise UserError(f"{path}/manifest.json is unreadable or of another format; "
                        + _hint(cs, path.parent))
    n = int(m["size"])
    if not (path / "labels.npy").is_file() or _npy_header(path / "labels.npy")[0] != (n,):
        raise UserError(f"{cs.title} at {path} is incomplete or damaged (labels.npy); "
                        + _hint(cs, path.parent))
    for kind in m["types"]:
        shape, dtype = _npy_header(path / f"{kind}.npy") if (path / f"{kind}.npy").is_file() \
            else ((), None)
        if shape != (len(SEVERITIES), n, 28, 28) or dtype != np.uint8:
            raise UserError(f"{cs.title} at {path} is incomplete or damaged ({kind}.npy); "
                            + _hint(cs, path.parent))
    labels = np.load(path / "labels.npy")
    return CorruptedSet(f"{cs.clean}-c", cs.title, path, tuple(m["types"]), SEVERITIES,
                        torch.from_numpy(labels.astype(np.int64)), tuple(mean), tuple(std),
                        (1, 28, 28), n, m)


def _open_released(cs: _CSpec, path: Path, mean, std) -> CorruptedSet:
    if not (path / "labels.npy").is_file():
        raise DataNotFoundError(f"{cs.title} not found: missing {path / 'labels.npy'}; "
                                + _hint(cs, path.parent))
    labels = np.load(path / "labels.npy")
    present = {p.stem for p in path.glob("*.npy")} - {"labels"}
    types = [t for t in CIFAR_C_TYPES if t in present] + sorted(present - set(CIFAR_C_TYPES))
    if labels.ndim != 1 or len(labels) % len(SEVERITIES) or not types:
        raise UserError(f"{path} holds labels {labels.shape} and {len(types)} corruption files; "
                        f"expected (5·N,) labels and <corruption>.npy files; " + _hint(cs, path.parent))
    n = len(labels) // len(SEVERITIES)
    per = labels.reshape(len(SEVERITIES), n)
    if not (per == per[0]).all():
        raise UserError(f"{path / 'labels.npy'}: the severities' labels differ; expected the same "
                        "N labels repeated 5 times")
    for kind in types:
        shape, dtype = _npy_header(path / f"{kind}.npy")
        if shape != (len(labels), 32, 32, 3) or dtype != np.uint8:
            raise UserError(f"{path / f'{kind}.npy'} holds {dtype} {shape}; expected uint8 "
                            f"({len(labels)}, 32, 32, 3) like labels.npy")
    return CorruptedSet(f"{cs.clean}-c", cs.title, path, tuple(types), SEVERITIES,
                        torch.from_numpy(per[0].astype(np.int64)), tuple(mean), tuple(std),
                        (3, 32, 32), n)


def _open(cs: _CSpec, root: Path, mean, std) -> CorruptedSet:
    opener = _open_generated if cs.generated else _open_released
    return opener(cs, root / cs.dirname, mean, std)


# ---------------------------------------------------------------- generation
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hashes_match(path: Path, manifest: dict) -> bool:
    files = manifest.get("files", {})
    return bool(files) and all((path / f).is_file() and _sha256(path / f) == h
                               for f, h in files.items())


def _settings(cs: _CSpec, seed: int, n: int | None, images: np.ndarray, labels: np.ndarray) -> dict:
    """Everything that decides a set's bytes: an existing set with these is complete."""
    from .image_corruptions import CORRUPTIONS, GENERATOR_VERSION, MEANINGS, PARAMS

    source = hashlib.sha256(images.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
    s = {"format": FORMAT, "name": cs.dirname, "source": cs.clean, "source_sha256": source,
         "generator_version": GENERATOR_VERSION, "seed": seed, "n": n, "size": len(images),
         "chunk": CHUNK, "types": list(CORRUPTIONS), "severities": list(SEVERITIES),
         "parameters": {k: {"meaning": MEANINGS[k], "values": PARAMS[k]} for k in CORRUPTIONS}}
    return json.loads(json.dumps(s))  # tuples → lists, as read back from the manifest


def generate_corrupted(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    n: int | None = None,
    progress: bool = True,
) -> Path:
    """Write ``<root>/<name>-c/`` from the clean test files of ``fashion-mnist`` or ``mnist``.

    Every random draw comes from (seed, corruption, severity, chunk of 2000 images): the
    same arguments give the same bytes. ``n`` corrupts only the first ``n`` test images
    (for tests). Returns the set's folder; does nothing when a complete set with the same
    settings is already there, and replaces one with other settings.
    """
    from tqdm.auto import tqdm

    from .image_corruptions import CORRUPTIONS, corrupt, corruption_rng

    cs = _cspec(name)
    base = resolve_root(root)
    if not cs.generated:
        raise UserError(f"{cs.title} is not generated here: " + _hint(cs, base))
    check_nonneg_int(seed, "seed")
    if n is not None:
        check_positive_int(n, "n")
    spec = _lookup(cs.clean)
    _, _, xte, yte = spec.read(base / spec.dirname, spec)
    images, labels = xte[:n, 0].numpy(), yte[:n].numpy()
    settings = _settings(cs, seed, n, images, labels)
    target = base / cs.dirname
    found = _read_manifest(target)
    if found is not None and all(found.get(k) == v for k, v in settings.items()) \
            and _hashes_match(target, found):
        return target

    start = time.perf_counter()
    with atomic_directory(target) as tmp:
        chunks = range(0, len(images), CHUNK)
        bar = tqdm(total=len(CORRUPTIONS) * len(SEVERITIES) * len(chunks), desc=cs.dirname,
                   unit="batch", disable=not progress)
        files = {}
        for kind in CORRUPTIONS:
            out = np.empty((len(SEVERITIES), *images.shape), np.uint8)
            for severity in SEVERITIES:
                for c, lo in enumerate(chunks):
                    rng = corruption_rng(seed, kind, severity, c)
                    out[severity - 1, lo: lo + CHUNK] = corrupt(images[lo: lo + CHUNK], kind, severity, rng)
                    bar.update()
            np.save(tmp / f"{kind}.npy", out)
            files[f"{kind}.npy"] = _sha256(tmp / f"{kind}.npy")
        bar.close()
        np.save(tmp / "labels.npy", labels.astype(np.int64))
        files["labels.npy"] = _sha256(tmp / "labels.npy")
        import PIL

        manifest = {**settings, "files": files, "seconds": round(time.perf_counter() - start, 1),
                    "versions": {"evo_ensembles": __version__, "torch": torch.__version__,
                                 "numpy": np.__version__, "Pillow": PIL.__version__}}
        write_manifest(tmp, manifest)
    return target


# ---------------------------------------------------------------- figure and command
def plot_corruption_grid(name: str, path: str | os.PathLike, index: int = 0,
                         root: str | os.PathLike | None = None) -> Path:
    """One test image across all types (rows) × clean and severities 1..5 (columns)."""
    from ..reporting import _save, plt

    cs = _cspec(name)
    found = _open(cs, resolve_root(root), (0.0,), (1.0,))
    if not 0 <= index < found.size:
        raise UserError(f"index must be in 0..{found.size - 1}, got {index}")
    try:  # the clean image, when the clean test files are there
        spec = _lookup(cs.clean)
        clean = spec.read(resolve_root(root) / spec.dirname, spec)[2][index].numpy()
    except UserError:
        clean = None
    cols = len(found.severities) + 1
    fig, axes = plt.subplots(len(found.types), cols, figsize=(1.1 * cols + 1.2, 1.1 * len(found.types)),
                             squeeze=False, layout="constrained")
    for r, kind in enumerate(found.types):
        row = [clean] + [found.raw(kind, s)[index] for s in found.severities]
        for c, img in enumerate(row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is not None:
                img = img.transpose(1, 2, 0)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title("clean" if c == 0 else f"severity {found.severities[c - 1]}", fontsize=8)
        axes[r, 0].set_ylabel(kind, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{found.title}, test image {index} (label {int(found.labels[index])})", fontsize=9)
    out = Path(path)
    _save(fig, out)
    return out
