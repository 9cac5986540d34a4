"""benchmarks/compare.py's divergence rule: a run is judged on validation only, never on a test
number (a rule that reads test numbers selects on test)."""

import importlib.util
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def compare(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("_compare_under_test", ROOT / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RUNS", tmp_path / "runs")  # no run directories unless a test writes one
    return module


ARGS = SimpleNamespace(name="table", model="lenet-s")
TEST_VALUES = [float("nan"), float("inf"), -1.0, 0.0, 0.25, 2.3026, 1e9]


def _row(**kw):
    return {"method": "batchensemble", "model": "lenet-s", "seed": 0, "lr": 0.05, "base_lr": 0.05,
            "accuracy": 0.9, "nll": 0.25, "ece": 0.01, "c_accuracy": 0.7, "c_nll": 1.0, "parent_accuracy": 0.9,
            **kw}


def _with_test(row, value):
    """The row with every test number (clean and corrupted) replaced by ``value``."""
    return {**row, **{k: value for k in ("accuracy", "nll", "ece", "c_accuracy", "c_nll", "parent_accuracy")}}


@pytest.mark.parametrize("row, verdict", [
    (_row(val_nll=0.27, val_collapsed=False), False),
    (_row(val_nll=float("nan"), val_collapsed=False), True),
    (_row(val_nll=None), True),
    (_row(val_nll=0.43, val_collapsed=True), True),
    (_row(val_accuracy=0.91), False),  # no validation NLL: validation accuracy decides
    (_row(val_accuracy=0.10), True),  # a network that predicts one class
    (_row(), False),  # no validation score at all: kept, whatever its test NLL says
])
def test_the_verdict_never_depends_on_a_test_number(compare, row, verdict):
    for value in TEST_VALUES:
        assert compare.diverged(_with_test(row, value), ARGS, []) is verdict, value


def test_a_row_whose_only_nll_is_on_test_is_not_judged_by_it(compare):
    nan_test = _row(nll=float("nan"), accuracy=0.1)  # logged before val_nll; its run directory is gone
    assert not compare.diverged(nan_test, ARGS, [nan_test])


def test_without_a_validation_score_a_logged_rerun_at_a_lower_rate_means_diverged(compare):
    old = _row(lr=0.05, base_lr=None)
    rerun = _row(lr=0.02, base_lr=0.05, val_nll=0.27, val_collapsed=False)
    other_seed = _row(seed=1, lr=0.02, base_lr=0.05, val_nll=0.27)
    assert compare.diverged(old, ARGS, [old, rerun])
    assert not compare.diverged(old, ARGS, [old, other_seed])
    assert not compare.diverged(rerun, ARGS, [old, rerun])
    for value in TEST_VALUES:
        assert compare.diverged(_with_test(old, value), ARGS, [old, _with_test(rerun, value)])


def test_an_old_row_is_judged_by_its_runs_validation_scores_not_its_test_scores(compare):
    row = _row(nll=float("nan"))
    path = compare.run_dir(ARGS, row["method"], row["seed"], row["lr"], row["base_lr"]) / "results.json"
    path.parent.mkdir(parents=True)
    for val_nll, verdict in ((0.26, False), (float("nan"), True)):
        for test_nll in (0.25, float("nan")):
            path.write_text(json.dumps({"ensemble": {"nll": test_nll, "accuracy": 0.9},
                                        "validation": {"ensemble": {"nll": val_nll, "accuracy": 0.9}}}))
            assert compare.diverged({**row, "nll": test_nll}, ARGS, []) is verdict


def test_the_committed_table_keeps_its_verdicts_when_its_test_numbers_are_shuffled(compare):
    """table5_2's log (some rows from before val_nll, no run directories here): the page lists
    BatchEnsemble seed 0, Deep Ensemble seed 0 and MC Dropout seed 1 at lr 0.05 as diverged."""
    path = ROOT / "benchmarks" / "results" / "table5_2.runs.jsonl"
    rows = [r for r in map(json.loads, path.read_text().splitlines()) if r.get("kind") != "lr-probe"]
    args = SimpleNamespace(name="table5_2", model="lenet-s")

    def verdicts(rs):
        return sorted((r["method"], r["seed"], r["lr"]) for r in rs if compare.diverged(r, args, rs))

    expected = [("batchensemble", 0, 0.05), ("deep-ensemble", 0, 0.05), ("mc-dropout", 1, 0.05)]
    assert verdicts(rows) == expected
    rng = random.Random(0)
    for _ in range(3):
        nlls = [r["nll"] for r in rows]
        rng.shuffle(nlls)
        shuffled = [{**r, "nll": v, "accuracy": rng.random()} for r, v in zip(rows, nlls)]
        assert verdicts(shuffled) == expected
    assert verdicts([{**r, "nll": math.nan} for r in rows]) == expected
