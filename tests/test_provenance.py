"""Provenance: the commit a result was made at, and whether the *code* differed from it.

A real temporary git repository pins what counts as code (src/, benchmarks/*.py,
requirements/, pyproject.toml) and what does not (result files a run writes)."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evo_ensembles.provenance import code_provenance, git_commit, provenance
from evo_ensembles.results import Provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
ROOT = Path(__file__).resolve().parents[1]


def _git(root, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           "-c", "commit.gpgsign=false", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "checkout"
    for name, text in {"src/pkg/mod.py": "x = 1\n", "benchmarks/bench.py": "print(1)\n",
                       "requirements/base.txt": "torch\n", "pyproject.toml": "[project]\n",
                       "README.md": "hello\n", "benchmarks/results/old.json": "{}\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "init")
    return root


def test_a_clean_checkout_records_its_full_commit_and_no_hash(repo):
    code = code_provenance(repo)
    assert code == {"commit": _git(repo, "rev-parse", "HEAD"), "code_dirty": False, "code_diff_sha256": None}
    assert re.fullmatch(r"[0-9a-f]{40}", code["commit"]) and git_commit(repo) == code["commit"]


def test_result_files_and_docs_never_make_the_code_dirty(repo):
    (repo / "benchmarks" / "results" / "new.runs.jsonl").write_text('{"accuracy": 0.9}\n')
    (repo / "benchmarks" / "results" / "old.json").write_text('{"changed": true}\n')  # a tracked result
    (repo / "benchmarks" / "results" / "plot.py").write_text("# not a top-level script\n")
    (repo / "runs" / "sparse").mkdir(parents=True)
    (repo / "runs" / "sparse" / "results.json").write_text("{}\n")
    (repo / "README.md").write_text("edited\n")
    (repo / "src" / "pkg" / "notes.txt").write_text("untracked, not code\n")
    assert code_provenance(repo) == {"commit": _git(repo, "rev-parse", "HEAD"), "code_dirty": False,
                                     "code_diff_sha256": None}


def test_a_change_under_src_is_dirty_with_a_hash_of_the_diff(repo):
    mod = repo / "src" / "pkg" / "mod.py"
    mod.write_text("x = 2\n")
    first = code_provenance(repo)
    assert first["code_dirty"] is True and re.fullmatch(r"[0-9a-f]{64}", first["code_diff_sha256"])
    assert first["commit"] == _git(repo, "rev-parse", "HEAD")  # no "-dirty" suffix
    assert code_provenance(repo) == first  # the same code, the same hash
    _git(repo, "add", "-A")
    assert code_provenance(repo) == first  # staged or not: the same diff from HEAD
    mod.write_text("x = 3\n")
    assert code_provenance(repo)["code_diff_sha256"] != first["code_diff_sha256"]
    _git(repo, "checkout", "-q", "HEAD", "--", "src")
    assert code_provenance(repo)["code_dirty"] is False


@pytest.mark.parametrize("path", ["src/pkg/new.py", "benchmarks/new_bench.py", "requirements/extra.txt",
                                  "pyproject.toml", "benchmarks/bench.py", "requirements/base.txt"])
def test_every_code_path_counts_tracked_or_untracked(repo, path):
    (repo / path).write_text("changed = True\n")
    code = code_provenance(repo)
    assert code["code_dirty"] is True and code["code_diff_sha256"]


def test_an_untracked_files_content_is_in_the_hash(repo):
    new = repo / "src" / "pkg" / "new.py"
    new.write_text("a = 1\n")
    one = code_provenance(repo)["code_diff_sha256"]
    new.write_text("a = 2\n")
    assert code_provenance(repo)["code_diff_sha256"] != one


def test_outside_a_git_checkout_nothing_is_claimed(tmp_path):
    assert code_provenance(tmp_path) == {"commit": None, "code_dirty": None, "code_diff_sha256": None}


def test_provenance_has_the_documented_keys(repo):
    prov = provenance(repo)
    assert set(prov) == set(Provenance.__annotations__)
    assert prov["code_dirty"] is False and prov["code_diff_sha256"] is None


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not run from a git checkout")
def test_the_default_is_this_packages_own_checkout():
    code = code_provenance()
    assert code["commit"] == _git(ROOT, "rev-parse", "HEAD")
    assert isinstance(code["code_dirty"], bool) and (code["code_diff_sha256"] is None) == (not code["code_dirty"])


# --- benchmarks/_common.py: rows and page footers ------------------------------------------


@pytest.fixture
def common(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("_bench_common_under_test", ROOT / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(sys, "argv", ["benchmarks/test.py"])
    return module


A, B = "a" * 40, "b" * 40


def test_a_page_names_one_commit_or_says_the_rows_are_mixed(common):
    assert common.made_at([{"commit": A, "code_dirty": False}] * 2) == "commit aaaaaaa"
    mixed = common.made_at([{"commit": A, "code_dirty": False}, {"commit": B, "code_dirty": False}])
    assert mixed == "commits aaaaaaa, bbbbbbb (mixed: rows from more than one commit)"
    grouped = common.made_at([{"m": "x", "commit": A}, {"m": "y", "commit": A}, {"m": "y", "commit": B}], by="m")
    assert grouped == "x: commit aaaaaaa; y: commits aaaaaaa, bbbbbbb (mixed: rows from more than one commit)"


def test_a_page_says_when_the_code_differed_from_the_commit(common):
    h = "c" * 64
    rows = [{"commit": A, "code_dirty": True, "code_diff_sha256": h}, {"commit": A, "code_dirty": False}]
    assert common.made_at(rows) == ("commit aaaaaaa; code differed from the commit in 1 of 2 rows "
                                    "(diff sha256 cccccccccccc)")
    assert common.made_at(rows[:1]) == "commit aaaaaaa; code differed from the commit (diff sha256 cccccccccccc)"
    legacy = [{"commit": A + "-dirty"}]  # written before code_dirty existed
    assert common.code_of(legacy[0]) == {"commit": A, "code_dirty": True, "code_diff_sha256": None}
    assert common.made_at(legacy) == "commit aaaaaaa; code differed from the commit (diff not recorded)"
    assert common.code_of({"commit": A})["code_dirty"] is False  # no suffix: no tracked change then
    info = {"hardware": {"cpu": "cpu"}, "date": "today", "command": "python x.py", **rows[0]}
    assert "commit aaaaaaa; code differed from the commit (diff sha256 cccccccccccc)" in common.footer(info)[0]


def test_evo_commit_names_the_commit_and_leaves_the_code_state_unknown(common, monkeypatch):
    monkeypatch.setenv("EVO_COMMIT", B)
    info = common.header()
    assert (info["commit"], info["code_dirty"], info["code_diff_sha256"]) == (B, None, None)
    assert "whether the code differed from the commit is not recorded" in common.describe_code([info])
    monkeypatch.setenv("EVO_COMMIT", A + "-dirty")
    assert {k: common.header()[k] for k in common.CODE_KEYS} == {"commit": A, "code_dirty": True,
                                                                   "code_diff_sha256": None}


def test_a_run_log_row_gets_this_processs_code(common, monkeypatch):
    monkeypatch.setenv("EVO_COMMIT", B)
    common._code.cache_clear()
    row = common.RunLog("example").append({"seed": 0})
    assert {k: row[k] for k in common.CODE_KEYS} == {"commit": B, "code_dirty": None, "code_diff_sha256": None}
    kept = common.RunLog("example").append({"seed": 1, "commit": A, "code_dirty": False, "code_diff_sha256": None})
    assert kept["commit"] == A and [r["commit"] for r in common.RunLog("example")] == [B, A]
    assert row["command"].startswith("python ")  # the command that made the row
    assert common.trained_by([row, kept]).startswith("`python ")
    assert "1 of 2 rows did not record" in common.trained_by([row, {"seed": 2}])
    assert common.trained_by([{"seed": 2}]) == "not recorded"
