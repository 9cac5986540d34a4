import os

import pytest
import torch

# Tests are tiny: one thread avoids oversubscription when the machine is busy.
torch.set_num_threads(1)

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")


@pytest.fixture
def tiny_net():
    def make(seed: int = 0):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(4 * 6 * 6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3),
        )
    return make


@pytest.fixture
def tiny_data():
    from evo_ensembles.data import ArrayData

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 8, 8, generator=g)
    # A learnable rule: the class is the quadrant of the brightest mean.
    y = (x[:, 0, :4, :].mean((1, 2)) > x[:, 0, 4:, :].mean((1, 2))).long() + (x.mean((1, 2, 3)) > 0).long()
    return ArrayData(x, y)
