"""cAcc/cNLL/cECE reach results.json for every method when the data set has a corrupted
counterpart, and are the means over every (type, severity) cell."""

import os

import pytest

from evo_ensembles.cli import main
from evo_ensembles.data import load_dataset
from evo_ensembles.data.corrupted import generate_corrupted
from evo_ensembles.ensemble import predict_probs
from evo_ensembles.metrics import classification_metrics
from evo_ensembles.scoring import corrupted_scores

CLEAN = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    if not os.path.isdir(CLEAN):
        pytest.skip("Fashion-MNIST is not installed")
    r = tmp_path_factory.mktemp("root")
    (r / "fashion-mnist").symlink_to(CLEAN)
    generate_corrupted("fashion-mnist", r, n=40, progress=False)
    return r


def test_scores_are_means_over_every_cell(root):
    from evo_ensembles.models import build_model

    data = load_dataset("fashion-mnist-c", root, subset=256)
    net = build_model("lenet-5", data.input_shape, data.num_classes, seed=0)
    out = corrupted_scores(data, {"parent": lambda x: predict_probs(net, x)}, ece_bins=15, examples=20)
    cells = [classification_metrics(predict_probs(net, part.x), part.y) for _, _, part in data.corrupted.head(20)]
    assert out["parent"]["cells"] == len(cells) == len(data.corrupted)
    assert out["parent"]["nll"] == pytest.approx(sum(c["nll"] for c in cells) / len(cells))
    assert out["parent"]["accuracy"] == pytest.approx(sum(c["accuracy"] for c in cells) / len(cells))
    assert sorted(out["parent"]["accuracy_by_severity"]) == ["1", "2", "3", "4", "5"]
    assert out["set"]["name"] == "fashion-mnist-c"
    import dataclasses

    assert corrupted_scores(dataclasses.replace(data, corrupted=None), {"p": net}, ece_bins=15) is None


@pytest.mark.parametrize("argv", [
    ["sparse", "--parent-epochs", "1", "--children", "2", "--child-epochs", "1"],
    ["noisy", "--parent-epochs", "1", "--sigma", "0.01", "--population", "4", "--top-k", "2"],
    ["baseline", "--method", "independent", "--epochs", "1"],
])
def test_every_run_reports_the_corrupted_test_set(root, tmp_path, argv):
    import json

    out = tmp_path / "run"
    assert main([*argv, "--model", "lenet-5", "--dataset", "fashion-mnist-c", "--data-root", str(root),
                 "--subset", "256", "--corrupted-examples", "10", "--out", str(out), "--quiet"]) == 0
    r = json.loads((out / "results.json").read_text())
    ens = r["corrupted"]["ensemble"]
    assert 0 <= ens["accuracy"] <= 1 and ens["nll"] > 0 and ens["cells"] == 23 * 5
    if argv[0] != "baseline":
        assert r["corrupted"]["parent"]["cells"] == 23 * 5
