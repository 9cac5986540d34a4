"""Trained Fashion-MNIST parents shared by the noisy benchmarks (trained once, then reused)."""

from __future__ import annotations

from pathlib import Path

from evo_ensembles import load_dataset
from evo_ensembles.devices import resolve_device
from evo_ensembles.train import parent_train_config
from evo_ensembles.train.parent import train_or_load_parent

RUNS = Path(__file__).resolve().parent / "runs"


def fashion_parent(model: str = "lenet-s", epochs: int = 10, seed: int = 0, progress: bool = False):
    """(parent, data): ``model`` trained ``epochs`` epochs with Adam 1e-3 (the table4_1 recipe).

    Reuses benchmarks/runs/table4_1/<model>_seed<seed> when table4_1.py trained it already.
    """
    data = load_dataset("fashion-mnist", seed=seed)
    out = RUNS / "table4_1" / f"{model}_seed{seed}"
    cfg = parent_train_config(epochs, 1e-3, "adam", 128, seed)
    parent, _, _ = train_or_load_parent(out, data, model, cfg, parent_path=None,
                                        device=resolve_device("auto"), progress=progress)
    return parent.eval(), data
