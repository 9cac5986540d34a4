"""Run configs: one declaration per field generates the flag, the default and the check."""

import dataclasses

import pytest

from evo_ensembles.cli import COMMANDS, build_parser, main
from evo_ensembles.config import RunConfig, config_from_args, flag_of
from evo_ensembles.config.noisy import NoisyRunConfig
from evo_ensembles.config.rl import RLEvalConfig
from evo_ensembles.config.sparse import SparseRunConfig, StochasticRunConfig
from evo_ensembles.errors import UserError

REQUIRED = {"rl train": ["--env", "gym:CartPole-v1"], "rl evaluate": ["--agent", "A"],
            "imagenet": ["--data", "D", "--model", "resnet18"], "baseline": ["--method", "snapshot"],
            "analyze": ["RUN"]}


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_unset_flags_give_exactly_the_config_defaults(cmd):
    argv = [*cmd.name.split(), *REQUIRED.get(cmd.name, []), "--out", "O"]
    from_cli = config_from_args(cmd.config, build_parser().parse_args(argv))
    required = {
        f.name: from_cli.__dict__[f.name]
        for f in dataclasses.fields(cmd.config)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert from_cli == cmd.config(**required)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_every_field_is_a_flag_with_help(cmd):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    for part in cmd.name.split():
        p = sub[part]
        sub = p._subparsers._group_actions[0].choices if p._subparsers else None
    flags = {s: a for a in p._actions for s in a.option_strings}
    flags.update({a.dest: a for a in p._actions if not a.option_strings})  # positionals by name
    for f in dataclasses.fields(cmd.config):
        if f.metadata.get("cli"):
            flag = (
                f.metadata["bool_flag"]
                if (f.metadata["bool_flag"] or "").startswith("--no-")
                else flag_of(f)
            )
            assert flag in flags and flags[flag].dest == f.name and flags[flag].help, f.name


@pytest.mark.parametrize(
    "cls,kw,msg",
    [
        (SparseRunConfig, {"density": 0.0}, "--density must be in (0, 1], got 0.0"),
        (SparseRunConfig, {"lr": float("inf")}, "--lr must be a finite number"),
        (SparseRunConfig, {"child_lr": 0.0}, "--child-lr must be > 0"),
        (SparseRunConfig, {"seed": -1}, "--seed must be >= 0"),
        (SparseRunConfig, {"combine": "median"}, "--combine must be one of"),
        (SparseRunConfig, {"dense_layers": ("",)}, "--dense-layers"),
        (StochasticRunConfig, {"anneal_schedule": "step"}, "--schedule must be one of"),
        (
            StochasticRunConfig,
            {"anneal_epochs": 4, "child_epochs": 3},
            "--anneal-epochs (4) must not exceed",
        ),
        (NoisyRunConfig, {"mu": float("nan")}, "--mu must be a finite number"),
        (NoisyRunConfig, {"sigma": float("inf")}, "--sigma must be a finite number"),
        (
            NoisyRunConfig,
            {"top_k": 9, "population": 8},
            "--top-k must be between 1 and --population (8)",
        ),
    ],
)
def test_a_bad_value_is_refused_where_it_enters_naming_its_flag(cls, kw, msg):
    with pytest.raises(UserError) as e:
        cls(**kw)
    assert msg in str(e.value)


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["sparse", "--lr", "inf"], "--lr must be a finite number"),
        (["sparse", "--child-lr", "0"], "--child-lr must be > 0"),
        (["sparse", "--seed", "-1"], "--seed must be >= 0"),
        (["noisy", "--sigma", "0.01", "--mu", "nan"], "--mu must be a finite number"),
        (["noisy", "--sigma", "inf"], "--sigma must be a finite number"),
        (
            ["rl", "evaluate", "--agent", "A", "--members", "4", "--population", "2"],
            "--top-k must be between 1 and --population (2), got 4",
        ),
        (["rl", "evaluate", "--agent", "A", "--sigma", "-0.1"], "--sigma must be >= 0"),
    ],
)
def test_cli_refuses_bad_values_with_exit_2_and_writes_nothing(argv, msg, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_flags_map_onto_fields():
    parse = build_parser().parse_args
    cfg = config_from_args(
        SparseRunConfig,
        parse(
            ["sparse", "--partition", "--dense-layers", "none", "--augment", "--no-child-augment"]
        ),
    )
    assert (cfg.partition, cfg.density, cfg.dense_layers, cfg.augment, cfg.child_augment) == (
        True,
        0.5,
        (),
        True,
        False,
    )
    cfg = config_from_args(
        NoisyRunConfig, parse(["noisy", "--no-mirror", "--no-partition", "--density", "0.3"])
    )
    assert (cfg.mirrored, cfg.partitioned, cfg.density) == (False, False, 0.3)
    cfg = config_from_args(StochasticRunConfig, parse(["stochastic", "--schedule", "linear"]))
    assert cfg.anneal_schedule == "linear"


def test_dependent_defaults_are_resolved_once():
    assert SparseRunConfig().density == 0.75
    assert SparseRunConfig(partition=True, k=4).density == 0.25
    assert SparseRunConfig().model == "lenet-s" and NoisyRunConfig().model == "lenet-s"


def test_run_config_validates_at_construction_only_through_its_fields():
    @dataclasses.dataclass(kw_only=True)
    class Plain(RunConfig):
        x: int = 1  # no option(): not checked, not a flag

    assert Plain(x=-5).x == -5


def test_rl_evaluate_defaults_are_the_regime_studys_choice():
    # Issue 11: `rl evaluate --ensemble noisy` uses the settings benchmarks/rl_regime.py chose
    # on validation episodes; rerunning the study with another outcome must move these too.
    import json
    from pathlib import Path

    study = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "rl_regime.json"
    chosen = json.loads(study.read_text())["summary"]["chosen"]["scope"]
    cfg = RLEvalConfig(agent="A")
    population = chosen["population"] or chosen["members"]
    assert (cfg.action, cfg.sigma, cfg.density, cfg.top_k, cfg.population, cfg.perturb) == (
        chosen["action"], chosen["sigma"], chosen["density"], chosen["members"], population, chosen["perturb"])
    if chosen["sigma"] is None:
        assert cfg.target_kl == chosen["target_kl"]


def test_rl_sigma_auto_is_the_trust_region_and_population_follows_k():
    parse = build_parser().parse_args
    argv = ["rl", "evaluate", "--agent", "A", "--out", "O"]
    cfg = config_from_args(RLEvalConfig, parse([*argv, "--sigma", "auto", "--members", "5"]))
    assert cfg.sigma is None and cfg.population == 10
    assert config_from_args(RLEvalConfig, parse([*argv, "--sigma", "0"])).sigma == 0.0
    assert RLEvalConfig(agent="A", top_k=3, population=3).population == 3  # N = K: no selection
    same = config_from_args(RLEvalConfig, parse([*argv, "--top-k", "5"]))
    assert same == config_from_args(RLEvalConfig, parse([*argv, "--members", "5"]))  # the older spelling
    noisy = config_from_args(NoisyRunConfig, parse(["noisy", "--sigma", "auto", "--top-k", "5", "--out", "O"]))
    assert noisy.sigma is None and noisy.top_k == 5  # the same flags on a classifier's noisy ensemble
    with pytest.raises(SystemExit) as e:  # argparse: usage and one error line, exit 2
        parse([*argv, "--sigma", "big"])
    assert e.value.code == 2
