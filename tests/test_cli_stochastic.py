import json
import os

import pytest

from evo_ensembles.cli import main

FASHION_DIR = os.path.join(
    os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist"
)
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)

TINY = [
    "--model",
    "lenet-5",
    "--subset",
    "300",
    "--parent-epochs",
    "1",
    "--children",
    "2",
    "--child-epochs",
    "2",
    "--quiet",
    "--threads",
    "1",
]


@needs_fashion
def test_end_to_end_stochastic_run(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "stochastic",
            *TINY,
            "--partition",
            "--anneal",
            "random",
            "--t0",
            "0.4",
            "--anneal-epochs",
            "1",
            "--schedule",
            "exp",
            "--out",
            str(out),
        ]
    )
    io = capsys.readouterr()
    assert code == 0, io.err
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "stochastic"
    assert res["annealing"] == {
        "anneal": "random",
        "t0": 0.4,
        "anneal_epochs": 1,
        "schedule": "exp",
    }
    assert [m["descriptor"]["kind"] for m in res["members"]] == ["stochastic", "stochastic"]
    assert [m["density"] for m in res["members"]] == pytest.approx([0.5, 0.5], abs=0.03)
    # Same keys as `sparse`, plus the annealing settings.
    sparse_out = tmp_path / "sparse"
    assert (
        main(
            [
                "sparse",
                *TINY,
                "--parent",
                str(out / "checkpoints" / "parent.safetensors"),
                "--out",
                str(sparse_out),
            ]
        )
        == 0
    )
    sparse = json.loads((sparse_out / "results.json").read_text())
    assert set(res) - set(sparse) == {"annealing"} and set(sparse) <= set(res)
    assert (out / "report.md").read_text().startswith("# Stochastic Subnetwork Ensemble")


@needs_fashion
def test_stochastic_run_with_dense_last_layer(tmp_path, capsys):
    from evo_ensembles.train import load_tensors

    out = tmp_path / "run"
    code = main(["stochastic", *TINY, "--partition", "--dense-layers", "last", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert [m["descriptor"]["dense_layers"] for m in res["members"]] == [["last"], ["last"]]
    parent = load_tensors(out / "checkpoints" / "parent.safetensors")
    child = load_tensors(out / "checkpoints" / "children" / "child_0.safetensors")
    assert bool((child["fc3.weight"] != 0).all()) and bool((parent["fc3.weight"] != 0).all())
    zero = (child["conv1.weight"] == 0).float().mean()
    assert 0.45 < zero < 0.55  # the other layers are pruned


@needs_fashion
@pytest.mark.parametrize(
    "bad",
    [
        ["--t0", "1.5"],
        ["--t0", "-0.1"],
        ["--anneal-epochs", "0"],
        ["--anneal-epochs", "-1"],
        ["--anneal-epochs", "3"],  # longer than --child-epochs 2
        ["--density", "1.0", "--no-partition", "--density", "0"],
        ["--density", "1.5", "--no-partition"],
        ["--anneal", "random", "--structured"],
    ],
)
def test_bad_input_exits_2_with_nothing_written(tmp_path, capsys, bad):
    out = tmp_path / "out"
    code = main(["stochastic", *TINY, *bad, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evo-ensembles: error:"), err
    assert not out.exists()


def test_argparse_rejects_unknown_anneal(capsys):
    with pytest.raises(SystemExit) as e:
        main(["stochastic", "--anneal", "sideways"])
    assert e.value.code == 2


@needs_fashion
def test_pruning_baselines_from_the_sparse_command(tmp_path, capsys):
    out = tmp_path / "iterative"
    argv = ["sparse", *TINY, "--no-partition", "--density", "0.3", "--selection", "magnitude"]
    assert main([*argv, "--prune-epochs", "2", "--out", str(out)]) == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    for m in res["members"]:
        assert m["descriptor"]["prune_epochs"] == 2 and m["descriptor"]["selection"] == "magnitude"
        assert m["density"] == pytest.approx(0.3, abs=0.01)  # the target reached by the last epoch
    assert res["config"]["prune_epochs"] == 2


@needs_fashion
@pytest.mark.parametrize("bad", [
    ["--partition", "--prune-epochs", "1"],  # iterative pruning with a partition
    ["--no-partition", "--prune-epochs", "3"],  # longer than --child-epochs 2
    ["--no-partition", "--prune-epochs", "-1"],
    ["--partition", "--selection", "magnitude"],  # magnitude masks cannot partition
])
def test_bad_baseline_flags_exit_2(tmp_path, capsys, bad):
    out = tmp_path / "out"
    assert main(["sparse", *TINY, *bad, "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("evo-ensembles: error:")
    assert not out.exists()
