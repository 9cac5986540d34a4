import json

import pytest

from evo_ensembles.cli import main
from evo_ensembles.results import RLResults


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "cartpole"
    assert main(["rl", "train", "--env", "gym:CartPole-v1", "--preset", "smoke", "--timesteps", "128",
                 "--quiet", "--out", str(out)]) == 0
    return out


def test_train_then_noisy_evaluate(agent, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["rl", "evaluate", "--agent", str(agent), "--episodes", "4", "--members", "2", "--population", "4",
                 "--selection-episodes", "2", "--sigma", "auto", "--density", "0.2", "--probe-steps", "64",
                 "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert RLResults.__required_keys__ <= set(res)  # the documented schema (evo_ensembles.results)
    for part in ("parent", "ensemble"):
        assert {"mean_return", "std_return", "episodes"} <= set(res[part]) and res[part]["episodes"] == 4
    assert res["sigma"] > 0 and res["density"] == 0.2 and len(res["members"]) == 2
    assert len(res["population"]) == 4 and res["trust_region"]["grid"]
    assert "config" in res and "Table 4.2-style row" in (out / "report.md").read_text()
    # Parent and ensemble met the same episodes (same seeds): with σ = 0 they score the same.
    same = tmp_path / "zero"
    assert main(["rl", "evaluate", "--agent", str(agent), "--episodes", "3", "--members", "2", "--sigma", "0",
                 "--quiet", "--out", str(same)]) == 0
    z = json.loads((same / "results.json").read_text())
    assert z["ensemble"]["returns"] == z["parent"]["returns"]


@pytest.mark.parametrize("argv,msg", [
    (["rl", "train", "--env", "procgen:pong", "--out", "X"], "unknown ProcGen game"),
    (["rl", "train", "--env", "atari:pong", "--out", "X"], "unknown environment"),
    (["rl", "train", "--env", "minatar:breakout", "--preset", "paper", "--out", "X"], "preset 'paper'"),
    (["rl", "train", "--env", "gym:CartPole-v1", "--timesteps", "0", "--out", "X"], "--timesteps"),
    (["rl", "evaluate", "--agent", "MISSING", "--out", "X"], "no trained agent"),
    (["rl", "train", "--env", "minigrid:DoorKey-6x6", "--train-levels", "0", "--out", "X"], "--train-levels"),
    (["rl", "train", "--env", "minigrid:DoorKey-6x6", "--train-levels", "-2", "--out", "X"], "--train-levels"),
    (["rl", "train", "--env", "minigrid:NoSuchTask", "--out", "X"], "MiniGrid-DoorKey-6x6-v0"),
    (["rl", "train", "--env", "minatar:breakout", "--train-levels", "25", "--out", "X"], "have no levels"),
    (["rl", "train", "--env", "gym:CartPole-v1", "--start-level", "3", "--out", "X"], "have no levels"),
])
def test_bad_input_exits_2_and_writes_nothing(argv, msg, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "X" else (str(tmp_path / "none") if a == "MISSING" else a) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "evo-ensembles: error:" in err and msg in err
    assert not (tmp_path / "out").exists()


def test_evaluate_checks_env_and_episodes(agent, tmp_path, capsys):
    assert main(["rl", "evaluate", "--agent", str(agent), "--env", "minatar:breakout", "--out",
                 str(tmp_path / "o")]) == 2
    assert "CartPole" in capsys.readouterr().err
    assert main(["rl", "evaluate", "--agent", str(agent), "--episodes", "0", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("action", ["sample", "argmax"])
def test_parent_and_ensemble_share_rule_and_episodes(agent, tmp_path, action):
    # With σ = 0 every member is the parent: under the same action rule and the same episodes
    # the ensemble must replay the parent's returns exactly, whatever the scope or K.
    out = tmp_path / action
    assert main(["rl", "evaluate", "--agent", str(agent), "--episodes", "3", "--members", "3", "--sigma", "0",
                 "--action", action, "--perturb", "head", "--quiet", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["parent"]["action"] == r["ensemble"]["action"] == action
    assert (r["parent"]["levels"], r["parent"]["seed"]) == (r["ensemble"]["levels"], r["ensemble"]["seed"])
    assert r["ensemble"]["returns"] == r["parent"]["returns"]


@pytest.mark.parametrize("damage", ["corrupt zip", "legacy truncated json", "record not an object"])
def test_a_damaged_agent_exits_2_with_one_line(agent, tmp_path, capsys, damage):
    import shutil
    import zipfile

    bad = tmp_path / "agent"
    shutil.copytree(agent, bad)
    if damage == "corrupt zip":
        (bad / "agent.zip").write_bytes(b"PK not really a zip")
    else:  # rewrite the archive without (or with a broken) record
        src = zipfile.ZipFile(agent / "agent.zip")
        with zipfile.ZipFile(bad / "agent.zip", "w") as z:
            for name in src.namelist():
                if name != "evo_ensembles.json":
                    z.writestr(name, src.read(name))
            if damage == "record not an object":
                z.writestr("evo_ensembles.json", "[1, 2, 3]")
        (bad / "agent.json").write_text('{"format": "evo_ens')  # truncated
    out = tmp_path / "eval"
    assert main(["rl", "evaluate", "--agent", str(bad), "--episodes", "2", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "agent" in err
    assert not (out / "results.json").exists()


def test_same_settings_same_evaluation(agent, tmp_path):
    # benchmarks/rl_regime.py reuses an evaluation across screening stages on this promise:
    # the same agent, settings and seed give the same children, σ and returns.
    argv = ["rl", "evaluate", "--agent", str(agent), "--episodes", "3", "--members", "2", "--probe-steps", "64",
            "--sigma", "auto", "--selection-episodes", "2", "--quiet", "--out"]
    runs = []
    for name in ("a", "b"):
        assert main([*argv, str(tmp_path / name)]) == 0
        runs.append(json.loads((tmp_path / name / "results.json").read_text()))
    a, b = runs
    assert a["sigma"] == b["sigma"] and a["members"] == b["members"]
    assert a["parent"]["returns"] == b["parent"]["returns"]
    assert a["ensemble"]["returns"] == b["ensemble"]["returns"]


def test_minigrid_level_split_scores_train_and_held_out_levels_under_both_rules(tmp_path, capsys):
    agent, out = tmp_path / "agent", tmp_path / "eval"
    assert main(["rl", "train", "--env", "minigrid:Empty-Random-5x5", "--preset", "smoke", "--timesteps", "64",
                 "--train-levels", "3", "--quiet", "--out", str(agent)]) == 0
    meta = json.loads((agent / "agent.json").read_text())
    assert (meta["num_levels"], meta["start_level"]) == (3, 0)
    code = main(["rl", "evaluate", "--agent", str(agent), "--episodes", "2", "--members", "2", "--population", "2",
                 "--n-envs", "2", "--train-returns", "--both-rules", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    keys = [(r["policy"], r["levels"], r["action"]) for r in res["scores"]]
    assert len(keys) == len(set(keys)) == 8
    assert {(lv, a) for _, lv, a in keys} == {(lv, a) for lv in ("held-out", "train") for a in ("argmax", "sample")}
    assert keys[:2] == [("parent", "held-out", "argmax"), ("ensemble", "held-out", "argmax")]
    assert res["scores"][0]["returns"] == res["parent"]["returns"]
    assert "Every score" in (out / "report.md").read_text()
    # Resuming with another level set would mix two trainings: refused.
    assert main(["rl", "train", "--env", "minigrid:Empty-Random-5x5", "--preset", "smoke", "--timesteps", "128",
                 "--train-levels", "5", "--quiet", "--out", str(agent)]) == 2
    assert "train_levels" in capsys.readouterr().err
