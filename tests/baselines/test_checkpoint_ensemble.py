"""The checkpoint ensemble: the last M epoch-end weights of one run, through the baseline command."""

import json

import torch

from evo_ensembles.baselines import get_peer
from evo_ensembles.cli import main
from evo_ensembles.train import TrainConfig

from .test_peer_contract import splits


def test_members_are_the_last_epochs_of_one_run_at_one_models_cost(tmp_path):
    data = splits()
    res = get_peer("checkpoints")("lenet-5", data, TrainConfig(epochs=3, batch_size=16), members=2)
    assert [m["epoch"] for m in res.members] == [2.0, 3.0] and res.epochs == 3.0
    probs = res.ensemble.member_probs(data.test.x)
    assert probs.shape == (2, 32, 3) and not torch.allclose(probs[0], probs[1])
    assert main(["baseline", "--method", "checkpoints", "--model", "lenet-5", "--subset", "300", "--epochs", "2",
                 "--members", "2", "--quiet", "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["method"] == "checkpoints" and results["ensemble"]["size"] == 2
