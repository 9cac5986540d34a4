"""The uncertainty entries of every classifier run: calibration on validation only, OOD
detection, selective risk; saved ensembles keep their temperature; bad input is one line."""

import json
import math
import os

import pytest
import torch

from evo_ensembles.cli import main
from evo_ensembles.data.ood import generate_ood
from evo_ensembles.scoring import Outputs, size_curve, uncertainty_results

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")
needs_fashion = pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")),
                                   reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
TINY = ["--model", "lenet-5", "--subset", "300", "--parent-epochs", "1", "--children", "2",
        "--child-epochs", "1", "--quiet", "--threads", "1", "--corrupted-examples", "20"]


def _outs(n: int, g: torch.Generator, m: int = 3, scale: float = 3.0) -> Outputs:
    return Outputs(scale * torch.randn(n, 4, generator=g), scale * torch.randn(m, n, 4, generator=g))


def _scored(seed: int = 0, y_test=None):
    g = torch.Generator().manual_seed(seed)
    val, test, far = _outs(80, g), _outs(120, g), _outs(50, g, scale=0.5)
    y_val = torch.arange(80) % 4
    y_test = torch.arange(120) % 4 if y_test is None else y_test
    return uncertainty_results(val, y_val, test, y_test, {"far": far})


def test_permuting_test_labels_changes_no_temperature_and_no_ood_score():
    a = _scored()
    perm = torch.randperm(120, generator=torch.Generator().manual_seed(3))
    b = _scored(y_test=(torch.arange(120) % 4)[perm])

    def temps(r):
        cal = r["calibrated"]
        return ([cal["parent"]["temperature"], cal["ensemble"]["temperature"]]
                + [m["temperature"] for m in cal["members"]])

    assert temps(a) == temps(b)
    assert a["ood"] == b["ood"]  # OOD detection reads no label


def test_calibrated_parent_keeps_its_accuracy_and_results_are_finite_json():
    r = _scored()
    p = r["calibrated"]["parent"]
    assert p["fit"]["nll_after"] <= p["fit"]["nll_before"]
    json.dumps(r, allow_nan=False)  # never NaN in results
    assert set(r["ood"]["sets"]["far"]["ensemble"]) == {"max_prob", "entropy", "mutual_information",
                                                        "variation_ratio", "energy"}
    assert set(r["ood"]["sets"]["far"]["parent"]) == {"max_prob", "entropy", "energy"}
    assert set(r["calibrated"]["reliability"]) == {"parent", "parent + T", "ensemble", "ensemble + T"}


def test_one_class_validation_falls_back_to_t1_without_nan():
    g = torch.Generator().manual_seed(0)
    val, test = _outs(40, g), _outs(60, g)
    r = uncertainty_results(val, torch.zeros(40, dtype=torch.long), test, torch.arange(60) % 4)
    assert r["calibrated"]["ensemble"]["temperature"] == 1.0
    assert "one class" in r["calibrated"]["ensemble"]["fit"]["fallback"]
    json.dumps(r, allow_nan=False)


def test_size_curve_is_mean_over_subsets_and_full_set_matches_the_ensemble():
    g = torch.Generator().manual_seed(1)
    val, test = _outs(100, g, m=3), _outs(100, g, m=3)
    y = torch.arange(100) % 4
    curve = size_curve(val, y, test, y)
    assert curve["sizes"] == [1, 2, 3] and curve["subsets"] == [3, 3, 1]
    full = uncertainty_results(val, y, test, y)["calibrated"]["ensemble"]["test"]["nll"]
    assert curve["nll"][-1] == pytest.approx(full)


@needs_fashion
def test_sparse_run_scores_calibration_ood_and_selective(tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(FASHION_DIR, root / "fashion-mnist")
    generate_ood("fashion-mnist", root, n=40, progress=False)
    out = tmp_path / "run"
    assert main(["sparse", *TINY, "--data-root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parent + T" in printed and "ensemble + T" in printed
    res = json.loads((out / "results.json").read_text())
    assert set(res["ood"]["sets"]) == {"digits", "letters", "noise-uniform", "noise-gaussian"}
    assert res["ood"]["sets"]["digits"]["examples"] == 40
    for metric in ("auroc", "aupr_in", "aupr_out", "fpr95"):
        assert 0 <= res["ood"]["sets"]["letters"]["ensemble"]["mutual_information"][metric] <= 1
    cal = res["calibrated"]
    assert cal["parent"]["test"]["accuracy"] == res["parent"]["accuracy"]  # T never moves one model's arg-max
    assert len(cal["members"]) == 2 and cal["ensemble"]["fit"]["examples"] == res["data"]["sizes"]["val"]
    assert {"aurc", "augrc", "risk_at_90"} <= set(res["selective"]["ensemble"])
    assert "adaptive_ece" in res["ensemble"]
    report = (out / "report.md").read_text()
    assert "## Out-of-distribution detection" in report and "## Calibration" in report
    assert (out / "figures" / "reliability.png").stat().st_size > 0

    # The run opened again predicts calibrated with the temperature it fit.
    from evo_ensembles.analysis.runs import open_run
    from evo_ensembles.metrics import nll

    run = open_run(out)
    data = run.data()
    assert run.temperature.temperature == pytest.approx(cal["ensemble"]["temperature"])
    p = run.predict_proba(data.test.x, calibrated=True)
    assert nll(p, data.test.y) == pytest.approx(cal["ensemble"]["test"]["nll"], abs=1e-5)

    # Only the named sets; none at all.
    out2 = tmp_path / "run2"
    assert main(["sparse", *TINY, "--data-root", str(root), "--ood-sets", "letters", "--out", str(out2)]) == 0
    assert set(json.loads((out2 / "results.json").read_text())["ood"]["sets"]) == {"letters"}
    out3 = tmp_path / "run3"
    assert main(["sparse", *TINY, "--data-root", str(root), "--ood-sets", "none", "--out", str(out3)]) == 0
    assert json.loads((out3 / "results.json").read_text())["ood"]["sets"] == {}


@needs_fashion
def test_unknown_or_missing_ood_set_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["sparse", *TINY, "--ood-sets", "cats", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "digits" in err and "letters" in err and "cats" in err
    assert not (tmp_path / "a").exists()
    # the hermetic test data root has no OOD sets: a named one is missing
    code = main(["sparse", *TINY, "--ood-sets", "letters", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "python -m evo_ensembles.data.ood" in err
    assert not (tmp_path / "b").exists()  # refused before any training


@needs_fashion
def test_saved_noisy_and_peer_ensembles_keep_their_temperature(tmp_path):
    from evo_ensembles.baselines.storage import load_peer
    from evo_ensembles.config.baseline import BaselineRunConfig
    from evo_ensembles.config.noisy import NoisyRunConfig
    from evo_ensembles.methods.noisy import NoisyEnsemble
    from evo_ensembles.recipes.baseline import run_baseline
    from evo_ensembles.recipes.noisy import run_noisy
    from evo_ensembles.train.parent import load_model_checkpoint

    common = {"model": "lenet-5", "subset": 300, "threads": 1, "corrupted_examples": 20, "ood_sets": "none"}
    res = run_baseline(BaselineRunConfig(method="deep-ensemble", epochs=2, members=2, **common),
                       tmp_path / "peer", progress=False)
    ens, _ = load_peer(tmp_path / "peer" / "checkpoints" / "ensemble.safetensors")
    assert ens.temperature.temperature == pytest.approx(res["calibrated"]["ensemble"]["temperature"])
    curve = res["calibrated"]["size_curve"]  # a deep ensemble is the DEE reference
    assert curve["sizes"] == [1, 2] and all(math.isfinite(v) for v in curve["nll"])

    cfg = NoisyRunConfig(parent_epochs=1, population=4, top_k=2, sigma=0.01, **common)
    res = run_noisy(cfg, tmp_path / "noisy", progress=False)
    data = cfg.load_data()
    parent, _ = load_model_checkpoint(tmp_path / "noisy" / "checkpoints" / "parent.safetensors", data)
    loaded = NoisyEnsemble.load(tmp_path / "noisy" / "ensemble.json", parent)
    assert loaded.temperature.temperature == pytest.approx(res["calibrated"]["ensemble"]["temperature"])
    from evo_ensembles.metrics import nll

    p = loaded.predict_proba(data.test.x, calibrated=True)
    assert nll(p, data.test.y) == pytest.approx(res["calibrated"]["ensemble"]["test"]["nll"], abs=1e-5)


def test_a_diverged_member_keeps_t1_and_gets_no_nan_scores():
    g = torch.Generator().manual_seed(0)
    val, test, far = _outs(40, g), _outs(60, g), _outs(30, g)
    bad = lambda o: Outputs(o.parent, torch.cat([o.members[:1] * float("nan"), o.members[1:]]))  # noqa: E731
    r = uncertainty_results(bad(val), torch.arange(40) % 4, bad(test), torch.arange(60) % 4, {"far": bad(far)})
    assert r["calibrated"]["ensemble"]["temperature"] == 1.0
    assert "non-finite" in r["calibrated"]["ensemble"]["fit"]["fallback"]
    assert r["selective"]["ensemble"] is None and r["selective"]["parent"] is not None
    assert r["ood"]["sets"]["far"]["skipped"] == {"ensemble": "non-finite outputs"}
    assert "parent" in r["ood"]["sets"]["far"]
    assert math.isfinite(r["calibrated"]["parent"]["temperature"])
    json.dumps({k: v for k, v in r.items() if k != "calibrated"}, allow_nan=False)


@needs_fashion
def test_a_users_own_ood_set_from_a_dataloader_is_scored(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from evo_ensembles.config.sparse import SparseRunConfig
    from evo_ensembles.data.ood import ood_from
    from evo_ensembles.recipes.sparse import run_sparse

    cfg = SparseRunConfig(model="lenet-5", subset=300, parent_epochs=1, children=2, child_epochs=1, threads=1,
                          corrupted_examples=20, ood_sets="none")
    data = cfg.load_data()
    noise = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 4 - 2
    data.ood["my-noise"] = ood_from(DataLoader(TensorDataset(noise), batch_size=16))
    res = run_sparse(cfg, tmp_path / "run", progress=False, data=data)
    assert set(res["ood"]["sets"]) == {"my-noise"} and res["ood"]["sets"]["my-noise"]["examples"] == 64
