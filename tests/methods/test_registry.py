"""The method registry: each method declared once in its module, read without importing it."""

import inspect
import subprocess
import sys

import pytest

from evo_ensembles.errors import UnknownNameError
from evo_ensembles.methods.registry import _declared, method, peer_names, registry, subnetwork_names


def test_every_method_is_declared_once_and_its_names_resolve():
    names = list(registry())
    assert len(names) == len(set(names))
    assert set(subnetwork_names()) == {"sparse", "stochastic", "noisy"}
    assert set(peer_names()) >= {"independent", "dropout", "mc-dropout", "bagging", "deep-ensemble", "snapshot", "fge",
                                 "treenet", "batchensemble", "mimo", "dst", "edst", "mothernets"}
    assert peer_names() == tuple(sorted(peer_names()))
    for spec in registry().values():
        fn = spec.load()
        assert callable(fn)
        for name in (spec.check, spec.rebuild):
            assert name is None or callable(spec.load(name))
        if spec.family == "peer":  # its options and size are keywords of its function
            params = inspect.signature(fn).parameters
            assert set(spec.options) | ({spec.size} if spec.size else set()) <= set(params)
            assert (spec.size is None) == (spec.members == 1)


def test_the_cli_defaults_and_titles_derive_from_the_declarations():
    from evo_ensembles.config.baseline import DEFAULT_MEMBERS, PEERS, BaselineRunConfig
    from evo_ensembles.recipes.baseline import summary_rows

    assert PEERS == peer_names() and DEFAULT_MEMBERS["mc-dropout"] == method("mc-dropout").members == 8
    cfg = BaselineRunConfig(method="fge", epochs=8)
    assert cfg.method_options() == {"members": 2, "cycle_epochs": 2, "pretrain_fraction": 0.8}
    cfg = BaselineRunConfig(method="mc-dropout", epochs=8, dropout=0.2)
    assert cfg.method_options() == {"passes": 8, "p": 0.2}
    assert BaselineRunConfig(method="dst", epochs=9).density == 0.2  # the method's declared default
    assert BaselineRunConfig(method="dst", epochs=9).member_epochs == 3  # a split budget
    assert BaselineRunConfig(method="edst", epochs=9).member_epochs is None
    results = {"method": "snapshot", "ensemble": {"size": 4, "accuracy": 0.9, "nll": 0.3, "ece": 0.02, "brier": 0.1},
               "training_flops": 1.0, "epochs": 8}
    assert summary_rows(results)[0][0] == "Snapshot Ensemble (4)"


def test_a_declared_check_runs_with_the_config():
    from evo_ensembles.config.baseline import BaselineRunConfig
    from evo_ensembles.errors import UserError

    with pytest.raises(UserError, match="multiple of --members"):
        BaselineRunConfig(method="snapshot", epochs=6, members=4)
    with pytest.raises(UserError, match="widens MLPs"):
        BaselineRunConfig(method="mothernets", model="lenet-5")
    with pytest.raises(UserError, match="is one model"):
        BaselineRunConfig(method="independent", members=3)


def test_an_unknown_method_is_one_line_naming_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown method 'swag'; choose from bagging, "):
        method("swag")


def test_reading_the_registry_imports_no_method_module_and_no_torch():
    code = ("import sys; from evo_ensembles.methods.registry import registry; r = registry(); "
            "print(len(r), 'torch' in sys.modules, any(m.startswith('evo_ensembles.baselines.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(registry())), "False", "False"]


def test_declarations_must_be_plain_literals(tmp_path):
    good = tmp_path / "good.py"
    good.write_text('import torch\nMETHODS = [{"name": "x", "title": "X"}]\n')
    assert _declared(good) == [{"name": "x", "title": "X"}]
    (tmp_path / "none.py").write_text("x = 1\n")
    assert _declared(tmp_path / "none.py") == []
    bad = tmp_path / "bad.py"
    bad.write_text('METHODS = [{"name": "x", "title": str(1)}]\n')
    with pytest.raises(TypeError, match="plain literals"):
        _declared(bad)
