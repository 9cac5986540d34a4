import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evo_ensembles.cli import main
from evo_ensembles.results import SparseResults
from evo_ensembles.train import read_meta

FASHION_DIR = os.path.join(os.environ.get("EVO_ENSEMBLES_DATA_ROOT", "/usr/share/datasets"), "fashion-mnist")

needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")

TINY = ["--model", "lenet-5", "--subset", "300", "--parent-epochs", "1", "--children", "2",
        "--quiet", "--threads", "1"]


def _run(args, capsys):
    code = main(["sparse", *args])
    return code, capsys.readouterr()


@needs_fashion
def test_end_to_end_sparse_run_and_reuse_of_parent(tmp_path, capsys):
    out = tmp_path / "run"
    code, io = _run([*TINY, "--out", str(out)], capsys)
    assert code == 0, io.err
    assert "parent" in io.out and "ensemble" in io.out
    res = json.loads((out / "results.json").read_text())
    assert SparseResults.__required_keys__ <= set(res)  # the documented schema (evo_ensembles.results)
    for k in ("accuracy", "nll", "ece"):
        assert 0 <= res["parent"][k] and 0 <= res["ensemble"][k]
        assert all(k in m for m in res["members"])
    assert {"accuracy", "nll", "ece", "brier"} <= set(res["ensemble"])
    assert [m["density"] for m in res["members"]] == pytest.approx([0.75, 0.75], abs=0.01)  # the default
    assert {"disagreement", "kl", "correlation"} <= set(res["diversity"])
    assert {"config", "seed", "timing"} <= set(res)
    assert res["ece_bins"] == 15
    assert (out / "report.md").read_text().startswith("# Sparse Subnetwork Ensemble")
    assert (out / "figures" / "member_accuracy.png").stat().st_size > 0
    assert (out / "figures" / "disagreement.png").stat().st_size > 0
    parent_ckpt = out / "checkpoints" / "parent.safetensors"
    assert parent_ckpt.exists() and not (out / "checkpoints" / "parent.json").exists()  # one file
    assert read_meta(parent_ckpt)["model"] == "lenet-5"

    # Same command again: parent and children are reused, results identical.
    code, _ = _run([*TINY, "--out", str(out)], capsys)
    again = json.loads((out / "results.json").read_text())
    assert code == 0 and again["timing"]["parent_train_seconds"] == 0
    assert again["ensemble"] == res["ensemble"]

    # A user's existing parent: --parent gives the same parent metrics; growth to 3 children.
    out2 = tmp_path / "run2"
    code, io = _run([*TINY, "--children", "3", "--parent", str(parent_ckpt), "--out", str(out2)], capsys)
    assert code == 0, io.err
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["parent"] == res["parent"]
    assert len(res2["members"]) == 3


def _bad_cases(tmp_path):
    ckpt = tmp_path / "small.safetensors"
    from evo_ensembles.train import save_model

    save_model(ckpt, torch.nn.Linear(3, 2), {})  # no metadata about the model: does not fit
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    return {
        "density zero": ["--density", "0", "--no-partition"],
        "density above one": ["--density", "1.5", "--no-partition"],
        "k below two": ["--partition", "--k", "1"],
        "density not 1/k": ["--partition", "--density", "0.3"],
        "unknown model": ["--model", "no-such-net"],
        "unknown dataset": ["--dataset", "imagenet-42"],
        "missing data files": ["--data-root", str(tmp_path / "nodata")],
        "checkpoint does not fit": ["--model", "lenet-5", "--parent", str(ckpt)],
        "missing checkpoint": ["--parent", str(tmp_path / "none.safetensors")],
        "out is a file": ["--out", str(a_file)],
        "unknown dense layer": ["--dense-layers", "first,fc9"],
    }


@needs_fashion
@pytest.mark.parametrize("case", ["density zero", "density above one", "k below two", "density not 1/k",
                                  "unknown model", "unknown dataset", "missing data files",
                                  "checkpoint does not fit", "missing checkpoint", "out is a file",
                                  "unknown dense layer"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    args = _bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    code, io = _run([*TINY, *args], capsys)
    assert code == 2
    lines = io.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evo-ensembles: error:"), io.err
    assert "Traceback" not in io.err
    assert not out.exists()


@needs_fashion
def test_dense_layers_are_never_pruned_in_any_child(tmp_path, capsys):
    from evo_ensembles.train import load_tensors

    out = tmp_path / "run"
    code, io = _run([*TINY, "--partition", "--dense-layers", "first,last", "--out", str(out)], capsys)
    assert code == 0, io.err
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["dense_layers"] == ["first", "last"]
    assert all(m["descriptor"]["dense_layers"] == ["first", "last"] for m in res["members"])
    parent = load_tensors(out / "checkpoints" / "parent.safetensors")
    for i in range(2):
        child = load_tensors(out / "checkpoints" / "children" / f"child_{i}.safetensors")
        for name in ("conv1.weight", "fc3.weight"):  # never pruned (then tuned, like biases)
            assert bool((child[name] != 0).all()) and bool((parent[name] != 0).all()), name
        zero = (child["fc1.weight"] == 0).float().mean()
        assert 0.45 < zero < 0.55  # the other layers are pruned


@pytest.mark.parametrize("bad", [",", " , "])
def test_argparse_rejects_an_empty_layer_list(capsys, bad):
    with pytest.raises(SystemExit) as e:
        main(["sparse", "--dense-layers", bad])
    assert e.value.code == 2 and "first,last" in capsys.readouterr().err


def test_non_positive_counts_exit_2_naming_the_flag(capsys, tmp_path):
    assert main(["sparse", "--children", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--children must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_console_script_exit_code_without_traceback(tmp_path):
    exe = Path(sys.executable).parent / "evo-ensembles"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "evo_ensembles.cli"]
    p = subprocess.run([*cmd, "sparse", "--model", "nope", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "nope" in p.stderr


@needs_fashion
def test_child_augmentation_is_its_own_setting(tmp_path, capsys):
    """--no-child-augment tunes children without crop/flip; the parent keeps its augmentation,
    and switching it on a finished run retrains the children (their key names it)."""
    from evo_ensembles.train import read_meta

    out = tmp_path / "run"
    code, io = _run([*TINY, "--children", "1", "--augment", "--out", str(out)], capsys)
    assert code == 0, io.err
    with_aug = json.loads((out / "results.json").read_text())
    assert "augment" not in read_meta(out / "checkpoints" / "children" / "child_0.safetensors")["run_key"]
    code, io = _run([*TINY, "--children", "1", "--augment", "--no-child-augment", "--out", str(out)],
                    capsys)
    assert code == 0, io.err
    without = json.loads((out / "results.json").read_text())
    assert without["config"]["child_augment"] is False and without["config"]["augment"] is True
    assert without["timing"]["parent_train_seconds"] == 0  # the same parent
    assert without["timing"]["children_train_seconds"] > 0  # children retrained
    assert read_meta(out / "checkpoints" / "children" / "child_0.safetensors")["run_key"]["augment"] is False
    assert without["members"][0] != with_aug["members"][0]


@needs_fashion
def test_parent_given_as_an_older_checkpoints_json_names_its_weights(tmp_path, capsys):
    # Older versions wrote parent.safetensors + parent.json; users hand over the .json by mistake.
    from safetensors.torch import save_file

    from evo_ensembles import build_model

    net = build_model("lenet-5", (1, 28, 28), 10, seed=0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "parent.safetensors"))
    (tmp_path / "parent.json").write_text(json.dumps({"model": "lenet-5", "input_shape": [1, 28, 28],
                                                      "num_classes": 10}))
    code, io = _run(["--subset", "300", "--children", "1", "--child-epochs", "1", "--quiet",
                     "--parent", str(tmp_path / "parent.json"), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, io.err
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["config"]["parent"].endswith("parent.safetensors") and res["config"]["model"] == "lenet-5"


@pytest.mark.parametrize("command", [["sparse"], ["noisy"],
                                     ["rl", "train", "--env", "gym:CartPole-v1", "--preset", "smoke"]])
def test_an_out_path_under_a_file_is_refused_before_any_work(command, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*command, "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert "exists and is not a directory" in err and "Traceback" not in err


@pytest.mark.slow  # starting Ray and two workers takes minutes on 2 cores
@needs_fashion
def test_children_tuned_on_two_ray_workers_equal_sequential_ones(tmp_path, monkeypatch):
    from evo_ensembles.config.sparse import SparseRunConfig
    from evo_ensembles.errors import UserError
    from evo_ensembles.recipes.sparse import run_sparse
    from evo_ensembles.train import load_tensors

    common = dict(model="lenet-5", parent_epochs=1, children=3, child_epochs=1, subset=200, threads=1)
    seq = run_sparse(SparseRunConfig(**common), tmp_path / "seq", progress=False)
    from evo_ensembles.recipes.sparse import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, f"{tmp_path / 'killed'}:1")  # the worker tuning child 1 dies once
    par = run_sparse(SparseRunConfig(**common, workers=2), tmp_path / "par", progress=False)
    assert (tmp_path / "killed").exists()  # it did die, and Ray retried the child
    assert par["ensemble"] == seq["ensemble"]
    for i in range(3):
        a = load_tensors(tmp_path / "seq" / "checkpoints" / "children" / f"child_{i}.safetensors")
        b = load_tensors(tmp_path / "par" / "checkpoints" / "children" / f"child_{i}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), i
    assert all(m["tune_seconds"] > 0 for m in par["members"])  # tuned by the workers, not reloaded
    with pytest.raises(UserError, match="--workers"):  # workers load the data the config names
        run_sparse(SparseRunConfig(**common, workers=2), tmp_path / "own", progress=False,
                   data=object())


def test_top_level_help_imports_no_torch_and_a_command_gets_only_its_own_flags():
    code = ("import sys\nfrom evo_ensembles.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "sparse" in p.stdout and "baseline" in p.stdout and p.stdout.strip().endswith("TORCH False")
    from evo_ensembles.cli import build_parser

    args = build_parser(["rl", "train", "--env", "gym:CartPole-v1", "--out", "x"]).parse_args(
        ["rl", "train", "--env", "gym:CartPole-v1", "--out", "x"])
    assert args.env == "gym:CartPole-v1" and args.out == "x"
