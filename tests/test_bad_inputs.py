"""Property-based bad-input tests (issue 13), with hypothesis.

Over every subcommand's flags, and over mutated checkpoint records, descriptor files and
agent archives, the toolkit either accepts the input (and then holds only finite, unaltered
values) or refuses it with one line (exit 2). Nothing may end in a traceback, exit 0 with a
non-finite setting, or leave a results.json behind. Examples are bounded so each test stays
within a few seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import tempfile
import typing
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from evo_ensembles.cli import COMMANDS, build_parser, main
from evo_ensembles.config import config_from_args
from evo_ensembles.config.cli import _base_type
from evo_ensembles.config.fields import flag_of
from evo_ensembles.errors import UserError

BOUNDED = settings(max_examples=200, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Texts a user (or a script with a bug) may pass as a flag's value.
HOSTILE_TEXT = (
    st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "+Infinity", "1e999", "-1e999", "-1", "0",
                     "-0", "0.0", "1e-320", "", " ", "abc", "1,2", ",", "none", "first,last",
                     "99999999999999999999999", "0x10", "1_000", "0.5", "1", "2", "1e3", "\x00"])
    | st.integers(-(10**6), 10**6).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.text(max_size=6)
)
# Any JSON value, for mutated records.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)

# The arguments each command needs to get as far as building its config.
BASE_ARGV = {"sparse": [], "stochastic": [], "noisy": [], "imagenet": ["--data", "nowhere", "--model", "resnet18"],
             "rl train": ["--env", "gym:CartPole-v1"],
             "rl evaluate": ["--agent", "no-such-agent"], "baseline": ["--method", "snapshot", "--subset", "64"],
             "analyze": ["no-such-run"]}


def _value_fields(cmd) -> list[dataclasses.Field]:
    """The command's flags that take a value (not on/off switches)."""
    hints = typing.get_type_hints(cmd.config)
    return [f for f in dataclasses.fields(cmd.config)
            if f.metadata.get("cli") and _base_type(hints[f.name]) is not bool]


def _one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


def _number(text: str, base: type) -> float | None:
    """What Python makes of ``text`` as the field's number type (None when it is not one)."""
    try:
        return base(text)
    except (ValueError, TypeError):
        return None


@BOUNDED
@given(data=st.data())
def test_every_flag_value_is_refused_in_one_line_or_kept_finite_and_unaltered(data, tmp_path_factory):
    cmd = data.draw(st.sampled_from(COMMANDS), label="command")
    fields = data.draw(st.lists(st.sampled_from(_value_fields(cmd)), min_size=1, max_size=3,
                                unique_by=lambda f: f.name), label="flags")
    given_text = {f.name: data.draw(HOSTILE_TEXT, label=flag_of(f)) for f in fields}
    argv = [*cmd.name.split(), *BASE_ARGV[cmd.name]]
    for f in fields:
        argv += [f"{flag_of(f)}={given_text[f.name]}"]  # "=" so a value may start with "-"
    out = tmp_path_factory.mktemp("out") / "run"

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # argparse: usage and one error line, exit 2
            assert e.code == 2
            assert err.getvalue().strip().splitlines()[-1].startswith("evo-ensembles")
            return
    try:
        cfg = config_from_args(cmd.config, args)
    except UserError as e:
        assert _one_line(str(e)), str(e)
        # The same input through the command line: exit 2, one line, nothing written.
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main([*argv, "--out", str(out)]) == 2
        assert _one_line(err.getvalue()) and err.getvalue().startswith("evo-ensembles: error:")
        assert not (out / "results.json").exists()
        return
    # Accepted: every number in the config is finite, and a number the user gave is the
    # number the run uses (no "0 means default" swapped in behind their back).
    hints = typing.get_type_hints(cmd.config)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), (f.name, value)
    for f in fields:
        base = _base_type(hints[f.name])
        if base in (int, float) and not f.metadata.get("parse"):
            expected = _number(given_text[f.name], base)
            assert expected is not None and getattr(cfg, f.name) == expected, (f.name, given_text[f.name])


# --- mutated files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion():
    from evo_ensembles.data import load_dataset

    try:
        return load_dataset("fashion-mnist", subset=200, seed=0)
    except UserError as e:  # the data package is installed by scripts/setup.sh
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def parent_file(fashion, tmp_path_factory):
    from evo_ensembles.models import build_model
    from evo_ensembles.train import save_model
    from evo_ensembles.train.parent import model_meta

    path = tmp_path_factory.mktemp("parent") / "parent.safetensors"
    save_model(path, build_model("lenet5", fashion.input_shape, fashion.num_classes, seed=0),
               model_meta("lenet5", fashion))
    return path


def _mutated(record: dict, data) -> str:
    """A damaged version of ``record``'s JSON text: a key changed or dropped, another
    value in its place, or text that is not JSON at all."""
    how = data.draw(st.sampled_from(["change", "change", "change", "drop", "replace", "text"]), label="mutation")
    if how == "text":
        text = json.dumps(record)
        cut = data.draw(st.integers(0, len(text)), label="cut")
        return text[:cut] + data.draw(st.text(max_size=4), label="tail")
    if how == "replace":
        return json.dumps(data.draw(JSON, label="record"))
    key = data.draw(st.sampled_from(sorted(record)), label="key")
    changed = {k: v for k, v in record.items() if k != key}
    if how == "change":  # mostly a value of another JSON type than the one written
        other = JSON.filter(lambda v: type(v) is not type(record[key]))
        changed[key] = data.draw(other | JSON, label="value")
    return json.dumps(changed)


def _refused_in_one_line(call) -> object:
    """``call()``'s result, or None when it raised a one-line UserError."""
    try:
        result = call()
    except UserError as e:
        assert _one_line(str(e)), str(e)
        event("refused")
        return None
    event("accepted")
    return result


@BOUNDED
@given(data=st.data())
def test_a_mutated_checkpoint_record_loads_or_is_refused_in_one_line(data, fashion, parent_file, tmp_path):
    from safetensors.torch import load_file, save_file

    from evo_ensembles.train.checkpoint import META_KEY, read_meta
    from evo_ensembles.train.parent import load_model_checkpoint

    record = read_meta(parent_file)
    path = tmp_path / "parent.safetensors"
    if data.draw(st.booleans(), label="older two-file format"):
        save_file(load_file(str(parent_file)), str(path))
        raw = _mutated(record, data).encode()
        if data.draw(st.booleans(), label="not utf-8"):
            raw = b"\xff\xfe" + raw
        path.with_suffix(".json").write_bytes(raw)
    else:
        save_file(load_file(str(parent_file)), str(path), metadata={META_KEY: _mutated(record, data)})
    loaded = _refused_in_one_line(lambda: load_model_checkpoint(path, fashion))
    if loaded is not None:
        model, meta = loaded
        assert isinstance(meta["model"], str)
        assert model(fashion.test.x[:2]).shape == (2, fashion.num_classes)


@BOUNDED
@given(data=st.data())
def test_damaged_checkpoint_bytes_are_refused_in_one_line(data, fashion, parent_file, tmp_path):
    from evo_ensembles.train.parent import load_model_checkpoint

    raw = bytearray(parent_file.read_bytes())
    cut = data.draw(st.integers(0, len(raw)), label="truncate at")
    flips = data.draw(st.lists(st.integers(0, max(cut - 1, 0)), max_size=4), label="flipped bytes")
    for i in flips:
        if i < cut:
            raw[i] ^= 0xFF
    path = tmp_path / "parent.safetensors"
    path.write_bytes(bytes(raw[:cut]))
    _refused_in_one_line(lambda: load_model_checkpoint(path, fashion))


@pytest.fixture(scope="module")
def descriptor_file(fashion, parent_file, tmp_path_factory):
    from evo_ensembles.es import NoiseSampling
    from evo_ensembles.es.population import make_noisy_specs
    from evo_ensembles.methods.noisy import NoisyEnsemble
    from evo_ensembles.train.parent import load_model_checkpoint

    parent, _ = load_model_checkpoint(parent_file, fashion)
    specs = make_noisy_specs(2, seed=0, sampling=NoiseSampling(sigma=0.01, density=0.5))
    return NoisyEnsemble(parent, specs).save(tmp_path_factory.mktemp("noisy") / "ensemble.json"), parent


@BOUNDED
@given(data=st.data())
def test_a_mutated_descriptor_file_loads_or_is_refused_in_one_line(data, fashion, descriptor_file, tmp_path):
    from evo_ensembles.methods.noisy import NoisyEnsemble

    path, parent = descriptor_file
    d = json.loads(path.read_text())
    if data.draw(st.booleans(), label="mutate a descriptor"):
        i = data.draw(st.integers(0, len(d["descriptors"]) - 1), label="descriptor")
        key = data.draw(st.sampled_from(sorted(d["descriptors"][i])), label="descriptor key")
        d["descriptors"][i][key] = data.draw(JSON, label="descriptor value")
        text = json.dumps(d)
    else:
        text = _mutated(d, data)
    bad = tmp_path / "ensemble.json"
    bad.write_text(text)
    ens = _refused_in_one_line(lambda: NoisyEnsemble.load(bad, parent))
    if ens is not None:
        probs = ens.predict_proba(fashion.test.x[:4])
        assert probs.shape == (4, fashion.num_classes)


@pytest.fixture(scope="module")
def cartpole_agent(tmp_path_factory):
    pytest.importorskip("stable_baselines3")
    from evo_ensembles.agents import RLTrainConfig, train_agent

    out = tmp_path_factory.mktemp("agent") / "cartpole"
    train_agent(RLTrainConfig("gym:CartPole-v1", "smoke", timesteps=64, checkpoint_every=64), out, progress=False)
    return out


@settings(BOUNDED, max_examples=100)
@given(data=st.data())
def test_a_mutated_agent_archive_evaluates_or_is_refused_in_one_line(data, cartpole_agent, tmp_path):
    from evo_ensembles.agents.train import RECORD
    from evo_ensembles.recipes.rl import RLEvalConfig, run_rl_evaluate

    example = Path(tempfile.mkdtemp(dir=tmp_path))  # tmp_path is shared by the examples
    agent = example / "agent"
    agent.mkdir()
    src = cartpole_agent / "agent.zip"
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    how = data.draw(st.sampled_from(["record", "bytes"]), label="damage")
    if how == "record":
        members[RECORD] = _mutated(json.loads(members[RECORD]), data).encode()
        with zipfile.ZipFile(agent / "agent.zip", "w") as z:
            for name, content in members.items():
                z.writestr(name, content)
    else:
        raw = src.read_bytes()
        agent.joinpath("agent.zip").write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
    out = example / "eval"
    result = _refused_in_one_line(lambda: run_rl_evaluate(
        RLEvalConfig(agent=str(agent), episodes=1, ensemble="none", n_envs=1), out, progress=False))
    if result is None:
        assert not (out / "results.json").exists()
    else:
        assert math.isfinite(result["parent"]["mean_return"])


def test_the_hostile_texts_reach_every_command():
    """The flag strategy covers every command that has value flags (guards the test itself)."""
    assert {c.name for c in COMMANDS} == set(BASE_ARGV)
    assert all(_value_fields(c) for c in COMMANDS)


def test_a_record_cache_drops_records_that_do_not_fit_their_schema(tmp_path):
    from evo_ensembles.schema import CACHED_RECORDS
    from evo_ensembles.train.checkpoint import RecordCache

    path = tmp_path / "records.json"
    path.write_text(json.dumps({"identity": {"p": 1}, "records": {
        "child a": {"fitness": 0.5}, "child b": {"fitness": "high"}, "cell c": {"sigma": 0.1},
        "cell d": {"sigma": 0.1, "density": 0.5, "kl": 0.01}, "child e": [1]}}))
    cache = RecordCache(path, identity={"p": 1}, schemas=CACHED_RECORDS)
    assert sorted(cache) == ["cell d", "child a"]
    path.write_text(json.dumps({"identity": {"p": 1}, "records": [1, 2]}))
    assert len(RecordCache(path, identity={"p": 1}, schemas=CACHED_RECORDS)) == 0

