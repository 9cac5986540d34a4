import json
import os

import pytest

from evo_ensembles.cli import main
from evo_ensembles.results import NoisyResults

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")

TINY = ["--subset", "300", "--population", "4", "--top-k", "2", "--probe-size", "100", "--quiet",
        "--threads", "1"]


def _noisy(args, capsys):
    code = main(["noisy", *args])
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("noisy") / "run"
    code = main(["noisy", "--model", "lenet-5", "--parent-epochs", "1", *TINY, "--out", str(out)])
    assert code == 0
    return out


@needs_fashion
def test_noisy_run_writes_the_documented_results(parent_run, capsys):
    res = json.loads((parent_run / "results.json").read_text())
    assert NoisyResults.__required_keys__ <= set(res)  # the documented schema (evo_ensembles.results)
    for part in ("parent", "ensemble"):
        assert {"accuracy", "nll", "ece"} <= set(res[part])
    assert res["delta_accuracy"] == pytest.approx(res["ensemble"]["accuracy"] - res["parent"]["accuracy"])
    assert res["sigma"] > 0 and res["density"] == 0.5 and res["mean_kl"] > 0
    assert len(res["members"]) == 2
    for m in res["members"]:
        assert {"accuracy", "kl", "descriptor"} <= set(m) and m["descriptor"]["kind"] == "noise"
    grid = res["trust_region"]["grid"]
    assert {r["density"] for r in grid} >= {0.1, 0.5, 1.0} and all("kl" in r for r in grid)
    assert len(res["population"]) == 4 and sum(p["selected"] for p in res["population"]) == 2
    assert "| Model | Acc | NLL | ECE | eAcc | eNLL | eECE | σ | KL |" in (parent_run / "report.md").read_text()
    for fig in ("kl_vs_sigma.png", "accuracy_vs_kl.png", "member_accuracy.png"):
        assert (parent_run / "figures" / fig).stat().st_size > 0
    assert (parent_run / "ensemble.json").exists()


@needs_fashion
def test_saved_descriptors_reproduce_the_ensemble(parent_run, tmp_path, capsys):
    res = json.loads((parent_run / "results.json").read_text())
    out = tmp_path / "again"
    code, io = _noisy(["--parent", str(parent_run / "checkpoints" / "parent.safetensors"),
                       "--descriptors", str(parent_run / "ensemble.json"), *TINY, "--out", str(out)], capsys)
    assert code == 0, io.err
    again = json.loads((out / "results.json").read_text())
    assert again["ensemble"] == res["ensemble"] and again["mode"] == "descriptors"


@needs_fashion
def test_given_sigma_and_evolution(parent_run, tmp_path, capsys):
    parent = str(parent_run / "checkpoints" / "parent.safetensors")
    out = tmp_path / "evo"
    code, io = _noisy(["--parent", parent, "--sigma", "0.01", "--generations", "2", *TINY, "--out", str(out)],
                      capsys)
    assert code == 0, io.err
    res = json.loads((out / "results.json").read_text())
    assert res["sigma"] == 0.01 and res["trust_region"] is None and res["mode"] == "evolved-pgpe"
    assert len(res["evolution"]["history"]) == 2
    assert (out / "checkpoints" / "evolved_children.safetensors").exists()


@needs_fashion
def test_dense_layers_scope_the_children_and_reload(parent_run, tmp_path, capsys):
    parent = str(parent_run / "checkpoints" / "parent.safetensors")
    out = tmp_path / "scoped"
    code, io = _noisy(["--parent", parent, "--dense-layers", "first,last", *TINY, "--out", str(out)], capsys)
    assert code == 0, io.err
    res = json.loads((out / "results.json").read_text())
    assert res["trust_region"] is not None and res["config"]["dense_layers"] == ["first", "last"]
    assert all(m["descriptor"]["dense_layers"] == ["first", "last"] for m in res["members"])
    assert all(p["descriptor"]["dense_layers"] == ["first", "last"] for p in res["population"])
    assert "dense layers first, last kept" in (out / "report.md").read_text()
    again = tmp_path / "again"
    code, io = _noisy(["--parent", parent, "--descriptors", str(out / "ensemble.json"), *TINY,
                       "--out", str(again)], capsys)
    assert code == 0, io.err
    assert json.loads((again / "results.json").read_text())["ensemble"] == res["ensemble"]


@needs_fashion
@pytest.mark.parametrize("bad,msg", [
    (["--sigma", "-0.1"], "--sigma"),
    (["--density", "1.5"], "--density"),
    (["--density", "0"], "--density"),
    (["--top-k", "5"], "--top-k"),
    (["--target-kl", "0"], "--target-kl"),
    (["--target-kl", "-1"], "--target-kl"),
    (["--density", "0.3"], "1/k"),
    (["--dense-layers", "last,fc9"], "fc9"),
])
def test_bad_input_exits_2_and_writes_nothing(bad, msg, tmp_path, capsys):
    out = tmp_path / "bad"
    code, io = _noisy(["--model", "lenet-5", "--parent-epochs", "1", *TINY, *bad, "--out", str(out)], capsys)
    assert code == 2 and "evo-ensembles: error:" in io.err and msg in io.err
    assert len(io.err.strip().splitlines()) == 1
    assert not out.exists()


@needs_fashion
def test_descriptors_of_another_parent_exit_2(parent_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["noisy", "--model", "lenet-5", "--parent-epochs", "1", "--seed", "1", *TINY,
                 "--sigma", "0.01", "--out", str(other)]) == 0
    out = tmp_path / "mismatch"
    code, io = _noisy(["--parent", str(other / "checkpoints" / "parent.safetensors"),
                       "--descriptors", str(parent_run / "ensemble.json"), *TINY, "--out", str(out)], capsys)
    assert code == 2 and "different parent" in io.err
    assert not out.exists()


@needs_fashion
def test_selection_follows_validation_and_never_test(tmp_path):
    # Test labels that disagree with validation (same inputs, labels shifted by one class):
    # a recipe that peeked at test would keep other children. The check can fail.
    import dataclasses

    from evo_ensembles import ChildSpec, load_dataset
    from evo_ensembles.config.noisy import NoisyRunConfig
    from evo_ensembles.data import ArrayData
    from evo_ensembles.es import ClassifierFitness, evaluate_children
    from evo_ensembles.recipes.noisy import run_noisy
    from evo_ensembles.train.parent import load_model_checkpoint

    data = load_dataset("fashion-mnist", subset=600, seed=0)
    data = dataclasses.replace(data, test=ArrayData(data.val.x, (data.val.y + 1) % 10))
    cfg = NoisyRunConfig(model="lenet-5", parent_epochs=1, subset=600, population=8, top_k=3, sigma=0.1)
    res = run_noisy(cfg, tmp_path / "run", progress=False, data=data)
    parent, _ = load_model_checkpoint(tmp_path / "run" / "checkpoints" / "parent.safetensors", data)
    specs = [ChildSpec.from_dict(p["descriptor"]) for p in res["population"]]

    def top(split):
        recs = evaluate_children(parent, specs, ClassifierFitness(split.x, split.y), progress=False)
        return sorted(range(len(specs)), key=lambda i: -recs[i]["fitness"])[: cfg.top_k]

    chosen = [i for i, p in enumerate(res["population"]) if p["selected"]]
    by_val, by_test = set(top(data.val)), set(top(data.test))
    assert by_val != by_test  # the splits disagree, so this test can tell them apart
    assert set(chosen) == by_val


@needs_fashion
@pytest.mark.parametrize("mutate", [
    lambda d: d["descriptors"][0].update(mask_seed="abc"),
    lambda d: d["descriptors"][0].update(sigma="x"),
    lambda d: d["descriptors"][0].update(sign=True),
    lambda d: d["descriptors"][0].pop("kind"),
    lambda d: d["descriptors"].__setitem__(0, [1, 2]),
    lambda d: d.update(descriptors=7),
])
def test_a_damaged_descriptor_file_exits_2_without_a_traceback(parent_run, tmp_path, capsys, mutate):
    d = json.loads((parent_run / "ensemble.json").read_text())
    mutate(d)
    bad = tmp_path / "ensemble.json"
    bad.write_text(json.dumps(d))
    out = tmp_path / "out"
    code, io = _noisy(["--parent", str(parent_run / "checkpoints" / "parent.safetensors"),
                       "--descriptors", str(bad), *TINY, "--out", str(out)], capsys)
    assert code == 2 and "error:" in io.err and "Traceback" not in io.err
    assert not (out / "results.json").exists()
