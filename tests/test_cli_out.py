"""An ``--out`` that cannot be created is one line and exit code 2, for every command, before
any work: nothing is loaded or trained (the other inputs here would fail later, or train)."""

import subprocess
import sys
from pathlib import Path

import pytest

from evo_ensembles.cli import COMMANDS, main
from evo_ensembles.errors import UserError

TINY = ["--quiet", "--threads", "1"]
# Each command with settings that would train (or load) something tiny, never reached.
ARGV = {
    "sparse": ["sparse", "--model", "lenet-5", "--subset", "300", "--parent-epochs", "1", "--children", "2"],
    "stochastic": ["stochastic", "--model", "lenet-5", "--subset", "300", "--parent-epochs", "1",
                   "--children", "2"],
    "noisy": ["noisy", "--model", "lenet-5", "--subset", "300", "--parent-epochs", "1"],
    "imagenet": ["imagenet", "--data", "/nonexistent/imagenet", "--model", "resnet18"],
    "baseline": ["baseline", "--method", "mc-dropout", "--model", "lenet-5", "--subset", "300", "--epochs", "1"],
    "analyze": ["analyze", "/nonexistent/run"],
    "rl train": ["rl", "train", "--env", "gym:CartPole-v1", "--preset", "smoke", "--timesteps", "128"],
    "rl evaluate": ["rl", "evaluate", "--agent", "/nonexistent/agent", "--episodes", "1"],
}
UNDER_PROC = "/proc/evo_test_out/run"  # /proc is a directory root may "write", yet mkdir fails


def test_every_command_is_covered():
    assert set(ARGV) == {c.name for c in COMMANDS}


def _one_line_exit_2(argv, out, capsys):
    code = main([*argv, *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"evo-ensembles: error: --out {out}: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("name", list(ARGV))
def test_an_out_under_proc_is_one_line_and_exit_2(name, capsys):
    line = _one_line_exit_2(ARGV[name], UNDER_PROC, capsys)
    assert "cannot create a directory in /proc" in line
    assert not Path(UNDER_PROC).parent.exists()


@pytest.mark.parametrize("name", list(ARGV))
def test_an_out_under_a_file_is_one_line_and_exit_2(name, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line_exit_2(ARGV[name], blocker / "run", capsys)
    assert "exists and is not a directory" in line


@pytest.mark.parametrize("name", ["sparse", "rl train", "rl evaluate"])
def test_an_existing_out_that_cannot_hold_a_file_is_refused(name, capsys):
    line = _one_line_exit_2(ARGV[name], "/proc", capsys)  # a directory, but no file can be made in it
    assert "cannot create a file in /proc" in line


def test_the_console_script_prints_no_traceback():
    exe = Path(sys.executable).parent / "evo-ensembles"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "evo_ensembles.cli"]
    p = subprocess.run([*cmd, *ARGV["sparse"], *TINY, "--out", UNDER_PROC], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]


def _library_calls():
    """The recipes themselves (a library user's entry, no CLI in front): each checks --out first."""
    from evo_ensembles.config.analyze import AnalyzeConfig
    from evo_ensembles.config.baseline import BaselineRunConfig
    from evo_ensembles.config.noisy import NoisyRunConfig
    from evo_ensembles.config.rl import RLEvalConfig, RLTrainConfig
    from evo_ensembles.config.sparse import SparseRunConfig, StochasticRunConfig
    from evo_ensembles.recipes.analyze import run_analyze
    from evo_ensembles.recipes.baseline import run_baseline
    from evo_ensembles.recipes.noisy import run_noisy
    from evo_ensembles.recipes.rl import run_rl_evaluate, run_rl_train
    from evo_ensembles.recipes.sparse import run_sparse
    from evo_ensembles.recipes.stochastic import run_stochastic

    return {
        "sparse": lambda out: run_sparse(SparseRunConfig(model="lenet-5", subset=300), out, progress=False),
        "stochastic": lambda out: run_stochastic(StochasticRunConfig(model="lenet-5", subset=300), out,
                                                 progress=False),
        "noisy": lambda out: run_noisy(NoisyRunConfig(model="lenet-5", subset=300), out, progress=False),
        "baseline": lambda out: run_baseline(BaselineRunConfig(method="mc-dropout", model="lenet-5", subset=300),
                                             out, progress=False),
        "analyze": lambda out: run_analyze(AnalyzeConfig(run_dir="/nonexistent/run"), out, progress=False),
        "rl train": lambda out: run_rl_train(RLTrainConfig(env="gym:CartPole-v1", preset="smoke"), out,
                                             progress=False),
        "rl evaluate": lambda out: run_rl_evaluate(RLEvalConfig(agent="/nonexistent/agent"), out, progress=False),
    }


@pytest.mark.parametrize("name", ["sparse", "stochastic", "noisy", "baseline", "analyze", "rl train", "rl evaluate"])
def test_the_recipes_check_out_before_any_work(name):
    with pytest.raises(UserError, match=r"^--out /proc/evo_test_out/run: cannot create a directory in /proc"):
        _library_calls()[name](UNDER_PROC)
