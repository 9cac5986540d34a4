"""The ILSVRC-2012 validation images, from the layouts users have, and the paper's split.

Three layouts are read (never downloaded):

(a) an ImageFolder tree: ``ROOT/<wnid>/*.JPEG`` (or ``ROOT/val/<wnid>/...``);
(b) a flat folder of ``ILSVRC2012_val_*.JPEG`` with the devkit's ``meta.mat`` and
    ``ILSVRC2012_validation_ground_truth.txt`` (anywhere under ROOT, e.g. in
    ``ILSVRC2012_devkit_t12/data/``). The ground truth holds ILSVRC2012_IDs in ``meta.mat``
    order; they are mapped through each synset's wnid to torchvision's class index, which
    is the position of the wnid in the sorted list of the 1,000 leaf wnids;
(c) the official tar pair (``ILSVRC2012_img_val.tar`` + ``ILSVRC2012_devkit_t12.tar.gz``),
    unpacked once by ``torchvision.datasets.ImageNet`` into layout (a).

Images are named by their file name (``ILSVRC2012_val_00000001.JPEG``), which is the same in
every layout, so one split file serves them all.

The paper's split (SPEC §2): per class, a seeded draw of 10 validation and 40 test images
(10k / 40k of the 50k). :func:`make_split` draws it; :func:`save_split` /
:func:`load_split` write and check it, so every model of a table sees the same images.

Examples:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for wnid in ("n01440764", "n01443537"):
    ...     (root / wnid).mkdir()
    ...     for i in range(3):
    ...         Image.new("RGB", (8, 8)).save(root / wnid / f"{wnid}_{i}.JPEG")
    >>> images = find_imagenet_val(root)
    >>> images.layout, len(images), images.wnids
    ('imagefolder', 6, ['n01440764', 'n01443537'])
    >>> split = make_split(images, val_per_class=1, test_per_class=2, seed=0)
    >>> len(split.val), len(split.test)
    (2, 4)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataNotFoundError, UserError, first_line
from ..run_folder import write_json

WNID = re.compile(r"^n\d{8}$")
VAL_FILE = re.compile(r"^ILSVRC2012_val_(\d{8})\.(JPEG|jpeg|jpg|JPG|png|PNG)$")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
TARS = ("ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz")
SPLIT_FORMAT = "evo_ensembles.imagenet-split/1"
LAYOUTS = (
    "layouts that work: (a) ROOT/<wnid>/*.JPEG (an ImageFolder tree, also ROOT/val/<wnid>/); "
    "(b) ROOT with ILSVRC2012_val_*.JPEG plus the devkit's meta.mat and "
    f"{GROUND_TRUTH}; (c) ROOT with {TARS[0]} and {TARS[1]}"
)


@dataclass(frozen=True)
class ImageList:
    """Image files and labels (torchvision's class index: the position of the wnid in ``wnids``)."""

    root: Path
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    wnids: list[str]
    layout: str

    def __len__(self) -> int:
        return len(self.files)

    @property
    def names(self) -> list[str]:
        """Each image's file name: its identity in every layout."""
        return [f.name for f in self.files]

    def fingerprint(self) -> str:
        """A hash of (file name, wnid) over all images: which data set this is."""
        h = hashlib.sha256()
        for name, label in sorted(zip(self.names, self.labels)):
            h.update(f"{name}\t{self.wnids[label]}\n".encode())
        return h.hexdigest()


def find_imagenet_val(root: str | os.PathLike) -> ImageList:
    """The validation images under ``root`` in whichever supported layout it holds."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"ImageNet folder not found: {root}; {LAYOUTS}")
    for base in (root, root / "val"):
        if base.is_dir() and any(WNID.match(p.name) and p.is_dir() for p in base.iterdir()):
            return _image_folder(base, root)
    if any(VAL_FILE.match(p.name) for p in root.iterdir()):
        return _flat_with_devkit(root)
    if all((root / t).is_file() for t in TARS):
        return _from_tars(root)
    raise DataNotFoundError(f"no ILSVRC-2012 validation images found in {root}; {LAYOUTS}")


def _image_folder(base: Path, root: Path, layout: str = "imagefolder") -> ImageList:
    wnids = sorted(p.name for p in base.iterdir() if p.is_dir() and WNID.match(p.name))
    files, labels = [], []
    for i, wnid in enumerate(wnids):
        found = sorted(p for p in (base / wnid).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataNotFoundError(f"class folder {base / wnid} holds no images; {LAYOUTS}")
        files += found
        labels += [i] * len(found)
    return ImageList(root, tuple(files), tuple(labels), wnids, layout)


def _find_one(root: Path, name: str) -> Path | None:
    for depth in ("", "*/", "*/*/"):
        hits = sorted(root.glob(depth + name))
        if hits:
            return hits[0]
    return None


def read_devkit(meta_mat: Path) -> dict[int, str]:
    """ILSVRC2012_ID → wnid of the 1,000 leaf synsets in the devkit's ``meta.mat``."""
    import scipy.io

    try:
        synsets = scipy.io.loadmat(str(meta_mat), squeeze_me=True)["synsets"]
        ids = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except Exception as e:  # scipy raises several types for a file that is not a devkit
        raise UserError(f"cannot read the devkit's {meta_mat}: {e}") from None
    if not ids or not all(WNID.match(w) for w in ids.values()):
        raise UserError(f"{meta_mat} holds no ILSVRC synsets (ILSVRC2012_ID, WNID, num_children)")
    return ids


def _flat_with_devkit(root: Path) -> ImageList:
    meta, truth = _find_one(root, "meta.mat"), _find_one(root, GROUND_TRUTH)
    if meta is None or truth is None:
        missing = " and ".join(n for n, p in (("meta.mat", meta), (GROUND_TRUTH, truth)) if p is None)
        raise DataNotFoundError(f"{root} holds ILSVRC2012_val_*.JPEG but not the devkit's {missing}; {LAYOUTS}")
    id_to_wnid = read_devkit(meta)
    try:
        ground = [int(line) for line in truth.read_text().split()]
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {truth}: {e}") from None
    wnids = sorted(set(id_to_wnid.values()))
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    for p in sorted(root.iterdir()):
        m = VAL_FILE.match(p.name)
        if not m:
            continue
        n = int(m.group(1))  # 1-based position in the ground-truth file
        if not 1 <= n <= len(ground) or ground[n - 1] not in id_to_wnid:
            raise UserError(f"{truth} has no valid label for {p.name}")
        files.append(p)
        labels.append(index[id_to_wnid[ground[n - 1]]])
    return ImageList(root, tuple(files), tuple(labels), wnids, "flat+devkit")


def _from_tars(root: Path) -> ImageList:
    from torchvision.datasets import ImageNet

    try:
        ImageNet(str(root), split="val")  # unpacks into ROOT/val/<wnid>/ once, checking the archives
    except (RuntimeError, OSError, ValueError) as e:
        raise UserError(f"cannot use the ImageNet archives in {root}: {first_line(e)}") from None
    return _image_folder(root / "val", root, layout="tar")


@dataclass(frozen=True)
class Split:
    """Which images are validation and which are test (indices into an :class:`ImageList`)."""

    val: list[int]
    test: list[int]
    seed: int
    fingerprint: str


def make_split(images: ImageList, *, val_per_class: int = 10, test_per_class: int = 40, seed: int = 0) -> Split:
    """The paper's stratified split: per class, a seeded draw of validation and test images."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(images.labels):
        by_class.setdefault(label, []).append(i)
    need = val_per_class + test_per_class
    short = [images.wnids[c] for c, idx in sorted(by_class.items()) if len(idx) < need]
    if short:
        raise UserError(f"{len(short)} classes have fewer than {need} images (e.g. {short[0]}); the split "
                        f"takes {val_per_class} validation + {test_per_class} test images per class: is the "
                        f"data set complete?")
    val, test = [], []
    for c, idx in sorted(by_class.items()):
        g = torch.Generator().manual_seed(seed * 1_000_003 + c)
        order = [idx[j] for j in torch.randperm(len(idx), generator=g).tolist()]
        val += order[:val_per_class]
        test += order[val_per_class:need]
    return Split(sorted(val), sorted(test), seed, images.fingerprint())


def save_split(path: str | os.PathLike, split: Split, images: ImageList) -> None:
    """Write ``split`` as an index file of image names (atomic)."""
    write_json(path, {"format": SPLIT_FORMAT, "fingerprint": split.fingerprint, "seed": split.seed,
                      "val": [images.files[i].name for i in split.val],
                      "test": [images.files[i].name for i in split.test]})


def load_split(path: str | os.PathLike, images: ImageList) -> Split:
    """A split file written by :func:`save_split`, checked against ``images``."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read split file {path}: {e}") from None
    if not isinstance(d, dict) or d.get("format") != SPLIT_FORMAT:
        raise UserError(f"{path} is not an ImageNet split file ({SPLIT_FORMAT})")
    if d.get("fingerprint") != images.fingerprint():
        raise UserError(f"{path} was made for other data than the images in {images.root}")
    where = {name: i for i, name in enumerate(images.names)}
    try:
        val, test = ([where[n] for n in d[k]] for k in ("val", "test"))
        seed = int(d["seed"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: malformed split ({e})") from None
    if set(val) & set(test):
        raise UserError(f"{path}: validation and test images overlap")
    return Split(val, test, seed, d["fingerprint"])


__all__ = ["ImageList", "Split", "find_imagenet_val", "load_split", "make_split", "read_devkit", "save_split"]
