import os

import numpy as np
import pytest
import torch
from torch import nn

from evo_ensembles.cli import main

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")
needs_fashion = pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")),
                                   reason="Fashion-MNIST not installed")



@pytest.fixture
def conv_net():
    """A 2-conv net on 1×16×16 inputs with 3 classes; seeded weights."""

    def make(seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(6 * 4 * 4, 3),
        )

    return make


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 1, 16, 16, generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    return x, y


TINY = ["--model", "lenet-5", "--subset", "256", "--corrupted-examples", "2", "--threads", "1", "--quiet"]
CHILDREN = ["--parent-epochs", "1", "--children", "2", "--child-epochs", "1"]
COMMANDS = {
    "sparse": ["sparse", *TINY, *CHILDREN],
    "stochastic": ["stochastic", *TINY, *CHILDREN],
    "noisy": ["noisy", *TINY, "--parent-epochs", "1", "--sigma", "0.01", "--population", "4", "--top-k", "2",
              "--probe-size", "50"],
    "batchensemble": ["baseline", "--method", "batchensemble", *TINY, "--epochs", "1", "--members", "2"],
    "mc-dropout": ["baseline", "--method", "mc-dropout", *TINY, "--epochs", "1", "--members", "2"],
    "deep-ensemble": ["baseline", "--method", "deep-ensemble", *TINY, "--epochs", "1", "--members", "2"],
}
CLASSIFIERS = list(COMMANDS)


def _images(root, per_class: int = 3):
    from PIL import Image

    n = 0
    for wnid in ("n01440764", "n01443537", "n01484850"):
        (root / wnid).mkdir(parents=True)
        for _ in range(per_class):
            n += 1
            pixels = np.random.default_rng(n).integers(0, 256, (30, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / wnid / f"ILSVRC2012_val_{n:08d}.JPEG", quality=90)
    return root


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """``run_dir(name)``: the directory of a tiny run, built the first time it is asked for."""
    base, built = tmp_path_factory.mktemp("runs"), {}

    def get(name: str):
        if name not in built:
            out = base / name
            if name in COMMANDS:
                args = [*COMMANDS[name], "--out", str(out)]
            elif name == "imagenet":
                pytest.importorskip("torchvision")
                args = ["imagenet", "--data", str(_images(base / "imagenet-val")), "--model", "squeezenet1_1",
                        "--weights", "none", "--val-per-class", "1", "--test-per-class", "2", "--population",
                        "4", "--top-k", "2", "--probe-children", "1", "--sigma", "0.01", "--loader-workers",
                        "0", "--batch-size", "8", "--threads", "1", "--quiet", "--out", str(out)]
            elif name == "agent":
                pytest.importorskip("stable_baselines3")
                args = ["rl", "train", "--env", "gym:CartPole-v1", "--preset", "smoke", "--timesteps", "256",
                        "--n-envs", "2", "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out)]
            else:  # "rl": the agent's evaluation with a noisy ensemble
                args = ["rl", "evaluate", "--agent", str(get("agent")), "--episodes", "2", "--members", "2",
                        "--sigma", "0.05", "--n-envs", "2", "--device", "cpu", "--threads", "1", "--quiet",
                        "--out", str(out)]
            assert main(args) == 0
            built[name] = out
        return built[name]

    return get
