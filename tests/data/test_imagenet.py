"""ImageNet val layouts, the wnid mapping of the devkit, the paper's split, and the image cache,
on images and devkit files the tests make themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from evo_ensembles.data.image_cache import Normalize, Preprocess, cached_images
from evo_ensembles.data.imagenet import (
    find_imagenet_val,
    load_split,
    make_split,
    read_devkit,
    save_split,
)
from evo_ensembles.errors import DataNotFoundError, UserError

WNIDS = ["n01440764", "n01443537", "n01484850"]


def _jpeg(path, seed: int, size=(40, 30)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


def image_folder(root, per_class: int = 5):
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for wnid in WNIDS:
        (root / wnid).mkdir()
        for _ in range(per_class):
            n += 1
            _jpeg(root / wnid / f"ILSVRC2012_val_{n:08d}.JPEG", n)
    return root


def devkit(root, ids_to_wnid: dict[int, str], ground_truth: list[int], extra_parent: bool = True):
    """meta.mat (leaf synsets in ILSVRC2012_ID order, plus a non-leaf one) and the ground truth."""
    import scipy.io

    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    rows = [(i, w, f"class {w}", 0) for i, w in sorted(ids_to_wnid.items())]
    if extra_parent:
        rows.append((len(rows) + 1, "n99999999", "a parent synset", 3))
    synsets = np.array(rows, dtype=dt)
    scipy.io.savemat(str(data / "meta.mat"), {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(map(str, ground_truth)) + "\n")


def test_an_image_folder_tree_labels_by_sorted_wnid(tmp_path):
    images = find_imagenet_val(image_folder(tmp_path / "val"))
    assert images.layout == "imagefolder" and images.wnids == WNIDS
    assert [images.wnids[c] for c in images.labels] == [w for w in WNIDS for _ in range(5)]
    assert find_imagenet_val(tmp_path).names == images.names  # ROOT/val/<wnid> is found too


def test_flat_folder_ground_truth_ids_map_through_wnids_not_positions(tmp_path):
    # The devkit's ILSVRC2012_IDs are in meta.mat order, which is not the sorted-wnid order.
    ids = {1: WNIDS[2], 2: WNIDS[0], 3: WNIDS[1]}
    truth = [1, 2, 3, 3, 1, 2]
    for n in range(1, len(truth) + 1):
        _jpeg(tmp_path / f"ILSVRC2012_val_{n:08d}.JPEG", n)
    devkit(tmp_path, ids, truth)
    assert read_devkit(tmp_path / "ILSVRC2012_devkit_t12" / "data" / "meta.mat") == ids  # parent synset left out
    images = find_imagenet_val(tmp_path)
    assert images.layout == "flat+devkit" and images.wnids == WNIDS
    assert [images.wnids[c] for c in images.labels] == [ids[t] for t in truth]
    # The same images as an ImageFolder tree have the same identity (so one split file serves both).
    tree = tmp_path / "tree"
    for f, c in zip(images.files, images.labels):
        (tree / images.wnids[c]).mkdir(parents=True, exist_ok=True)
        (tree / images.wnids[c] / f.name).write_bytes(f.read_bytes())
    assert find_imagenet_val(tree).fingerprint() == images.fingerprint()


@pytest.mark.parametrize("case", ["empty", "no devkit", "missing dir", "empty class", "fake tars"])
def test_unsupported_or_partial_layouts_say_which_layouts_work(tmp_path, case):
    root = tmp_path / "data"
    if case != "missing dir":
        root.mkdir()
    if case == "no devkit":
        _jpeg(root / "ILSVRC2012_val_00000001.JPEG", 1)
    if case == "empty class":
        (root / WNIDS[0]).mkdir()
    if case == "fake tars":
        (root / "ILSVRC2012_img_val.tar").write_bytes(b"not a tar")
        (root / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(UserError) as e:
        find_imagenet_val(root)
    assert len(str(e.value).splitlines()) == 1
    if case != "fake tars":
        assert isinstance(e.value, DataNotFoundError) and "layouts that work" in str(e.value)


def test_the_split_is_stratified_disjoint_and_reproducible(tmp_path):
    images = find_imagenet_val(image_folder(tmp_path / "val", per_class=6))
    split = make_split(images, val_per_class=2, test_per_class=3, seed=0)
    assert not set(split.val) & set(split.test)
    for c in range(len(WNIDS)):
        assert sum(images.labels[i] == c for i in split.val) == 2
        assert sum(images.labels[i] == c for i in split.test) == 3
    assert make_split(images, val_per_class=2, test_per_class=3, seed=0) == split
    assert make_split(images, val_per_class=2, test_per_class=3, seed=1).val != split.val
    with pytest.raises(UserError, match="fewer than 7 images"):
        make_split(images, val_per_class=3, test_per_class=4)


def test_a_split_file_round_trips_and_refuses_other_data(tmp_path):
    images = find_imagenet_val(image_folder(tmp_path / "a"))
    split = make_split(images, val_per_class=1, test_per_class=3, seed=4)
    save_split(tmp_path / "split.json", split, images)
    assert load_split(tmp_path / "split.json", images) == split
    other = find_imagenet_val(image_folder(tmp_path / "b", per_class=4))
    with pytest.raises(UserError, match="other data"):
        load_split(tmp_path / "split.json", other)
    d = json.loads((tmp_path / "split.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps({**d, "test": d["test"] + d["val"][:1]}))
    with pytest.raises(UserError, match="overlap"):
        load_split(tmp_path / "bad.json", images)
    (tmp_path / "junk.json").write_bytes(b"\xff\x00")
    with pytest.raises(UserError):
        load_split(tmp_path / "junk.json", images)


def test_the_cache_is_exactly_the_weights_transforms_and_decodes_once(tmp_path):
    from torchvision.models import MobileNet_V3_Small_Weights

    files = list(find_imagenet_val(image_folder(tmp_path / "val", per_class=2)).files)
    weights = MobileNet_V3_Small_Weights.DEFAULT
    pre = Preprocess.from_weights(weights)
    x, info = cached_images(files, pre, tmp_path / "cache", progress=False)
    assert info["decoded_now"] and x.dtype == torch.uint8 and x.shape == (6, 3, pre.crop, pre.crop)
    expected = torch.stack([weights.transforms()(Image.open(f)) for f in files])
    got = Normalize(torch.nn.Identity(), pre.mean, pre.std)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    again, info2 = cached_images(files, pre, tmp_path / "cache", progress=False)
    assert not info2["decoded_now"] and torch.equal(again, x)
    # Only the geometry keys the cache: the paper's 256 → 224 bilinear is these weights' too.
    assert not cached_images(files, Preprocess.paper(), tmp_path / "cache", progress=False)[1]["decoded_now"]
    small, info3 = cached_images(files, Preprocess(64, 48), tmp_path / "cache", progress=False)
    assert info3["decoded_now"] and small.shape[-1] == 48


@pytest.mark.parametrize("workers", [0, 1])
def test_an_undecodable_image_is_one_line_and_leaves_no_cache(tmp_path, workers):
    root = image_folder(tmp_path / "val", per_class=1)
    bad = root / WNIDS[1] / "ILSVRC2012_val_00000002.JPEG"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    files = list(find_imagenet_val(root).files)
    with pytest.raises(UserError) as e:
        cached_images(files, Preprocess.paper(), tmp_path / "cache", workers=workers, progress=False)
    assert len(str(e.value).splitlines()) == 1 and bad.name in str(e.value)
    assert not list((tmp_path / "cache").glob("*.u8*"))
