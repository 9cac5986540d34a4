import numpy as np
import pytest
import torch

from evo_ensembles.analysis import (
    HASH_KINDS,
    distance_matrices,
    hamming_matrices,
    image_hashes,
    mean_distances,
    plot_distance_matrices,
    rmse_matrix,
    to_pil,
)
from evo_ensembles.errors import UserError


def _stripes(c: int, vertical: bool) -> torch.Tensor:
    base = (torch.arange(32) // 4 % 2).float()
    img = base.view(1, 32).expand(32, 32) if vertical else base.view(32, 1).expand(32, 32)
    return img.unsqueeze(0).repeat(c, 1, 1)


def test_hash_sizes():
    h = image_hashes(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert set(h) == set(HASH_KINDS)
    assert {k: v.hash.size for k, v in h.items()} == {
        "average": 64, "perceptual": 64, "difference": 64, "wavelet": 64, "colour": 70}


@pytest.mark.parametrize("channels", [1, 3])
def test_self_distance_zero_and_different_images_differ(channels):
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(channels, 32, 32, generator=g)
    colour = torch.zeros(channels, 32, 32)
    colour[0, :, :16] = 1.0  # half bright (red when RGB), half black
    imgs = [_stripes(channels, True), _stripes(channels, True).clone(), _stripes(channels, False),
            noise, colour]
    d = hamming_matrices(imgs)
    assert set(d) == set(HASH_KINDS)
    for kind, mat in d.items():
        assert mat.shape == (5, 5) and (np.diag(mat) == 0).all() and (mat == mat.T).all()
        assert mat[0, 1] == 0, kind  # a copy hashes the same
    for kind in HASH_KINDS:
        assert d[kind][0, 3] > 0, kind  # stripes vs noise differ on every hash
    for kind in ("average", "difference", "wavelet"):
        assert d[kind][0, 2] > 0, kind  # vertical vs horizontal stripes (phash's low DCT block is symmetric here)


def test_rmse_matrix_symmetric_zero_diagonal():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(1, 8, 8, generator=g) for _ in range(4)]
    r = rmse_matrix(imgs)
    assert (r.shape == (4, 4) and np.allclose(r, r.T) and (np.diag(r) == 0).all()
            and (r[~np.eye(4, dtype=bool)] > 0).all())
    assert rmse_matrix([torch.zeros(2, 2), torch.full((2, 2), 3.0)])[0, 1] == pytest.approx(3.0)
    scaled = rmse_matrix([imgs[0], 10 * imgs[0] + 5], minmax=True)
    assert scaled[0, 1] == pytest.approx(0.0, abs=1e-6)  # float32 inputs
    with pytest.raises(UserError, match="one shape"):
        rmse_matrix([torch.zeros(2, 2), torch.zeros(3, 3)])


def test_conversion_and_summary(tmp_path):
    assert to_pil(torch.rand(1, 5, 6)).mode == "L" and to_pil(torch.rand(3, 5, 6)).mode == "RGB"
    assert np.asarray(to_pil(torch.full((4, 4), 2.0))).max() == 0  # constant → black
    with pytest.raises(UserError):
        to_pil(torch.rand(2, 4, 4))
    g = torch.Generator().manual_seed(1)
    mats = distance_matrices([torch.rand(1, 16, 16, generator=g) for _ in range(3)])
    means = mean_distances(mats)
    assert set(means) == {*HASH_KINDS, "rmse"} and all(v >= 0 for v in means.values())
    plot_distance_matrices(tmp_path / "d.png", mats, title="t")
    assert (tmp_path / "d.png").stat().st_size > 0
