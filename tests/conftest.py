import atexit
import os
import shutil
import tempfile

import pytest
import torch


def _hermetic_data_root() -> str:
    """A data root with the machine's clean data sets only: corrupted and OOD sets generated
    on this machine (fashion-mnist-c, fashion-mnist-ood, ...) would otherwise be picked up by
    every run, so a test would depend on what the machine's setup made."""
    real = os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets")
    root = tempfile.mkdtemp(prefix="evo-data-root-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    if os.path.isdir(real):
        for name in os.listdir(real):
            if not name.lower().endswith(("-c", "-ood")):
                os.symlink(os.path.join(real, name), os.path.join(root, name))
    return root


os.environ["EVO_ENSEMBLES_DATA_ROOT"] = _hermetic_data_root()

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
