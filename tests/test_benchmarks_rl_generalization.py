"""benchmarks/rl_generalization.py: its statistics, and that settings are chosen on validation
rows only (a held-out number never picks a setting)."""

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study_module(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("_rlg_under_test", ROOT / "benchmarks" / "rl_generalization.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(mean, std=0.0, episodes=10):
    return {"mean_return": mean, "std_return": std, "episodes": episodes}


def test_paired_differences_and_intervals_by_hand(study_module):
    pairs = [(_summary(0.2, 0.1, 4), _summary(0.5, 0.3, 4)), (_summary(0.4, 0.2, 4), _summary(0.6, 0.0, 4))]
    s = study_module.paired_stats(pairs)
    assert s["diff"] == pytest.approx(0.25) and s["per_seed"] == pytest.approx([0.3, 0.2])
    var_ep = (0.01 / 4 + 0.09 / 4) + (0.04 / 4 + 0.0)
    assert s["ci_episodes"] == pytest.approx(1.96 * math.sqrt(var_ep) / 2)
    sd = math.sqrt(((0.3 - 0.25) ** 2 + (0.2 - 0.25) ** 2) / 1)
    assert s["ci_seeds"] == pytest.approx(12.706204736 * sd / math.sqrt(2), rel=1e-6)


def test_spearman_and_its_bootstrap(study_module):
    up = study_module.spearman_with_interval([0.0, 0.1, 0.2, 0.3, 0.5], [1.0, 2.0, 2.5, 4.0, 9.0], draws=200)
    assert up["rho"] == pytest.approx(1.0) and up["ci"][1] == pytest.approx(1.0) and up["n"] == 5
    down = study_module.spearman_with_interval([0.0, 0.1, 0.2, 0.3, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0], draws=200)
    assert down["rho"] == pytest.approx(-1.0)
    assert math.isnan(study_module.spearman_with_interval([0.0, 1.0], [1.0, 0.0])["rho"])


def _row(m, stage, cfg, parent, ensemble, seed=0):
    return {"stage": stage, "task": "T", "train_levels": 25, "train_seed": seed, "key": m.ckey(cfg), "config": cfg,
            "parent": parent, "ensemble": ensemble}


def test_settings_are_chosen_on_validation_rows_only(study_module, tmp_path):
    m = study_module
    study = m.Study.__new__(m.Study)
    study.args = SimpleNamespace(tasks=["T"], levels=[25], seeds=[0], screen_seeds=[0])
    carried = dict(m.DEFAULT)
    cfgs = m.stages(carried)["density"]
    other = next(c for c in cfgs if c != carried)
    study.rows = [_row(m, "density", carried, 0.5, 0.6), _row(m, "density", other, 0.5, 0.55),
                  # a held-out row where `other` is far better must not move the choice
                  _row(m, "confirm", other, 0.5, 0.99)]
    assert m.Study.choose(study, "density", cfgs, carried) == carried
    study.rows[1]["ensemble"] = 0.7  # better on validation: now it is chosen
    assert m.Study.choose(study, "density", cfgs, carried) == other
    # The carried setting of every stage is among its configurations, so a tie keeps it.
    for stage, options in m.stages(carried).items():
        assert carried in options, stage


def _confirm_row(m, cfg, seed, n, train, held, ens):
    scores = []
    for policy, levels, value in (("parent", "held-out", held), ("ensemble", "held-out", ens),
                                  ("parent", "train", train), ("ensemble", "train", train)):
        for action in m.RULES:
            scores.append({"policy": policy, "levels": levels, "action": action, "mean_return": value,
                           "std_return": 0.1, "episodes": 20, "returns": []})
    return {**_row(m, "confirm", cfg, held, ens, seed), "train_levels": n, "sigma": 0.01, "episodes": 20,
            "parent_std": 0.1, "ensemble_std": 0.1, "scores": scores, "seconds": 1.0, "commit": "abc",
            "code_dirty": False, "command": "python rl_generalization.py"}


def test_report_gives_gap_gain_correlation_and_rule_table(study_module, monkeypatch, tmp_path):
    import _common

    m = study_module
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(m, "RESULTS", tmp_path)
    study = m.Study.__new__(m.Study)
    study.args = SimpleNamespace(tasks=["T"], levels=[25, 0], seeds=[0, 1, 2], screen_seeds=[0], test_episodes=20,
                                 test_seed=0, val_episodes=10, val_seed=500, learned=0.5, learned_episodes=20,
                                 preset="minigrid",
                                 timesteps=None, name="rlg_test")
    study.runs = tmp_path / "runs"
    study.agents = [("T", n, s) for n in (25, 0) for s in (0, 1, 2)]
    cfg = dict(m.DEFAULT)
    # Bigger gaps come with bigger gains here, so ρ must be +1.
    study.rows = [_confirm_row(m, cfg, s, n, 0.9, 0.9 - gap, 0.9 - gap + gap / 2)
                  for (n, s), gap in zip([(25, 0), (25, 1), (25, 2), (0, 0), (0, 1), (0, 2)],
                                         [0.5, 0.4, 0.3, 0.05, 0.02, 0.0])]
    # Right after training: one parent of six stayed below the threshold on its training levels.
    study.rows += [{"stage": "learned", "task": "T", "train_levels": n, "train_seed": s, "key": None,
                    "sample": 0.2 if (n, s) == (0, 2) else 0.8, "argmax": 0.1, "seconds": 1.0}
                   for n in (25, 0) for s in (0, 1, 2)]
    chosen = {stage: cfg for stage in m.STAGES}
    m.report(study, chosen, {"hardware": {"cpu": "test cpu"}, "commit": "abc", "code_dirty": False,
                             "date": "today", "command": "python rl_generalization.py --report"})
    page = (tmp_path / "rlg_test.md").read_text()
    assert "| T | 25 | 3 | 0.900 | 0.500 | +0.400" in page  # training-level, held-out, gap
    assert "Spearman ρ between each agent's gap and its ensemble − parent gain on held-out levels: +1.00" in page
    assert "The action rule alone" in page and (tmp_path / "rlg_test_gap.png").is_file()
    assert "5 of 6 checked; not: T N=unlimited s2 (0.20)" in page
