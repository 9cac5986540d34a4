import numpy as np
import pytest
import torch

from evo_ensembles.analysis import member_embedding, plot_tsne
from evo_ensembles.errors import UserError


def _probs(seed: int = 0, m: int = 3, b: int = 20, c: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(m, b, c, generator=g), dim=-1)


def test_shape_and_determinism():
    p = _probs()
    np_state = np.random.get_state()[1].copy()
    e1 = member_embedding(p, seed=0, perplexity=10.0)
    e2 = member_embedding(p, seed=0, perplexity=10.0)
    assert e1.shape == (60, 2) and np.isfinite(e1).all()
    assert np.array_equal(e1, e2)
    assert np.array_equal(np.random.get_state()[1], np_state)  # global NumPy RNG untouched


def test_bad_inputs():
    with pytest.raises(UserError, match="perplexity"):
        member_embedding(_probs(b=5), perplexity=30.0)
    with pytest.raises(UserError, match="M, B, C"):
        member_embedding(torch.rand(5, 3))


def test_plot(tmp_path):
    p = _probs()
    y = torch.randint(0, 4, (20,), generator=torch.Generator().manual_seed(1))
    e = member_embedding(p, perplexity=10.0)
    plot_tsne(tmp_path / "tsne.png", e, p, y, title="t", member_labels=["parent", "c1", "c2"])
    assert (tmp_path / "tsne.png").stat().st_size > 0
    with pytest.raises(UserError):
        plot_tsne(tmp_path / "bad.png", e[:10], p, y, title="t")
