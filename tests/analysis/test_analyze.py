"""`evo-ensembles analyze RUN_DIR`: every run kind gets its outputs, parts resume, bad input
gets exit 2 and one line."""

from __future__ import annotations

import json

import pytest

from evo_ensembles.cli import main

QUICK = ["--steps", "8", "--examples", "60", "--images", "2", "--grid", "3", "--landscape-examples", "64",
         "--threads", "1", "--quiet"]


@pytest.mark.parametrize("name", ["sparse", "stochastic", "noisy", "batchensemble", "mc-dropout", "deep-ensemble"])
def test_analyze_writes_every_part_that_applies(run_dir, name, tmp_path):
    out = tmp_path / "analysis"
    assert main(["analyze", str(run_dir(name)), *QUICK, "--out", str(out)]) == 0
    record = json.loads((out / "analysis.json").read_text())
    parts = record["parts"]
    assert set(parts) == {"tsne", "features", "saliency", "hashes", "landscape"}
    for part in ("tsne", "features", "saliency", "hashes"):
        assert "result" in parts[part], part
    assert ("result" in parts["landscape"]) == (name in ("sparse", "stochastic"))
    for fig in ("tsne", "features", "saliency", "hashes_features", "hashes_saliency"):
        assert (out / "figures" / f"{fig}.png").is_file()
    hashes = parts["hashes"]["result"]["features"]
    assert set(hashes) == {"average", "perceptual", "difference", "wavelet", "colour", "rmse"}
    assert (out / "analysis.md").read_text().startswith("# Analysis of")
    if name == "sparse":  # the landscape at (0, 0) is each model's loss on the same examples
        lo = parts["landscape"]["result"]["loss_at_origin"]
        assert set(lo) == {"parent", "pruned child", "tuned child"} and lo["pruned child"] > 0


def test_analyze_resumes_finished_parts_and_members(run_dir, tmp_path):
    out = tmp_path / "analysis"
    assert main(["analyze", str(run_dir("sparse")), "--parts", "features", *QUICK, "--out", str(out)]) == 0
    first = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")}
    assert len(first) == 3  # parent and two children
    (out / "features" / "child 2.npy").unlink(missing_ok=True)
    for p in (out / "features").glob("*.npy"):
        if "2" in p.name:
            p.unlink()
    record = json.loads((out / "analysis.json").read_text())
    record["parts"].pop("features")  # as if interrupted before the part was recorded
    (out / "analysis.json").write_text(json.dumps(record))
    assert main(["analyze", str(run_dir("sparse")), "--parts", "features", *QUICK, "--out", str(out)]) == 0
    again = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")}
    kept = [n for n in first if "2" not in n]
    assert all(again[n] == first[n] for n in kept) and len(again) == 3  # only the missing member redone


@pytest.mark.parametrize("argv, message", [
    (["analyze", "/nonexistent/run"], "not"),
    (["analyze", "RUN", "--parts", "tsne,colour"], "unknown part"),
    (["analyze", "RUN", "--parts", "features", "--layer", "conv9"], "conv9"),
    (["analyze", "RUN", "--parts", "landscape"], "sparse or stochastic"),
])
def test_bad_input_gets_exit_2_and_one_line(run_dir, argv, message, capsys, tmp_path):
    run = run_dir("noisy") if "landscape" in argv else run_dir("sparse")
    argv = [str(run) if a == "RUN" else a for a in argv]
    assert main([*argv, *QUICK, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_analyze_an_rl_evaluation_draws_what_applies(run_dir, tmp_path):
    out = tmp_path / "analysis"
    assert main(["analyze", str(run_dir("rl")), *QUICK, "--out", str(out)]) == 0
    parts = json.loads((out / "analysis.json").read_text())["parts"]
    assert "result" in parts["tsne"]  # members' action distributions on observations of the parent policy
    assert "skipped" in parts["landscape"]
