"""The run folder: checks before work, the lock released however a run ends, the one
atomic writer, and the run-folder names spelled in one place."""

import ast
import json
from pathlib import Path

import pytest

from evo_ensembles.errors import UserError
from evo_ensembles.run_folder import (
    LAYOUT,
    RunFolder,
    atomic_directory,
    atomic_write,
    write_json,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "evo_ensembles"


def test_run_lock_refuses_a_live_owner_and_takes_over_a_dead_ones(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from evo_ensembles.errors import UserError
    from evo_ensembles.run_folder import LOCK_NAME, RunLock

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        with pytest.raises(UserError, match=f"in use by another run \\(pid {other.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        other.kill()
        other.wait()
    with RunLock(tmp_path) as lock:  # its owner is gone: a stale lock is taken over
        assert lock.held and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] != other.pid
        assert RunLock(tmp_path).acquire().held  # the same process may run again (sequentially)
    assert not (tmp_path / LOCK_NAME).exists()


def test_an_uncreatable_out_is_a_user_error_in_the_check_and_in_the_lock(tmp_path):
    from evo_ensembles.errors import UserError
    from evo_ensembles.run_folder import RunLock, check_output_dir, make_output_dir

    for bad in ("/proc/evo_test_out/run", tmp_path / "file" / "run"):
        (tmp_path / "file").write_text("x")
        with pytest.raises(UserError, match="^--out "):
            check_output_dir(bad)
        with pytest.raises(UserError, match="^--out "):
            make_output_dir(bad)
        with pytest.raises(UserError, match="^--out "):
            RunLock(bad).acquire()  # the one place most commands create --out
    with pytest.raises(UserError, match="^--out /proc: cannot create"):
        RunLock("/proc").acquire()  # a directory no file can be made in
    ok = tmp_path / "a" / "b"
    assert check_output_dir(ok) == ok and sorted(tmp_path.iterdir()) == [tmp_path / "file"]  # nothing left behind
    assert make_output_dir(ok).is_dir() and check_output_dir(ok) == ok and not list(ok.iterdir())


def test_a_run_folder_checks_first_then_locks_for_the_work_and_releases_on_failure(tmp_path):
    out = tmp_path / "run"
    run = RunFolder(out, threads=None, device="cpu")
    assert not out.exists() and run.device.type == "cpu"  # checking makes nothing
    with pytest.raises(RuntimeError, match="boom"):
        with run:
            assert (out / LAYOUT.lock).is_file()
            run.write_config({"seed": 1})
            raise RuntimeError("boom")
    assert not (out / LAYOUT.lock).exists()  # released in finally: the folder can be reused at once
    with RunFolder(out, device="cpu") as again:
        again.finish({"done": True}, "# report\n")
    assert again.read_json(LAYOUT.config) == {"seed": 1} and again.read_json(LAYOUT.results) == {"done": True}
    assert (out / LAYOUT.report).read_text() == "# report\n" and again.read_json("missing.json") is None
    assert sorted(p.name for p in out.iterdir()) == [LAYOUT.config, LAYOUT.report, LAYOUT.results]


def test_a_bad_out_or_device_fails_before_anything_is_made(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="^--out .*not a directory"):
        RunFolder(tmp_path / "file" / "run")
    with pytest.raises(UserError, match="unknown device"):
        RunFolder(tmp_path / "run", device="tpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_atomic_write_leaves_the_old_file_and_no_temporary_one_on_failure(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json(path, {"a": 1})

    def torn(tmp: str) -> None:
        Path(tmp).write_text('{"a": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, torn)
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in path.parent.iterdir()] == ["x.json"]
    seen = []
    atomic_write(tmp_path / "y.npy", lambda tmp: seen.append(tmp))
    assert seen[0].endswith(".npy")  # writers that pick the format from the suffix (numpy, matplotlib, SB3)


def test_atomic_directory_replaces_a_folder_whole_or_not_at_all(tmp_path):
    target = tmp_path / "set"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError
    assert [p.name for p in target.iterdir()] == ["a.txt"] and [p.name for p in tmp_path.iterdir()] == ["set"]
    with atomic_directory(target) as tmp:
        (tmp / "c.txt").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c.txt"] and [p.name for p in tmp_path.iterdir()] == ["set"]


def test_one_atomic_writer_in_the_library():
    """Only run_folder.py renames temporary files or folders into place (doctests aside)."""
    moves = ("os.replace(", "os.rename(", "mkstemp(", "mkdtemp(", "tmp.replace(", "tmp.rename(")
    offenders = [f"{p.relative_to(SRC)}: {line.strip()}" for p in SRC.rglob("*.py") if p.name != "run_folder.py"
                 for line in p.read_text().splitlines()
                 if any(m in line for m in moves) and not line.strip().startswith(">>>")]
    assert offenders == []


def test_run_folder_names_are_spelled_only_in_the_layout():
    names = {v for k, v in vars(LAYOUT).items() if "." in v}  # the file names (folders are words)
    found = []
    for p in SRC.rglob("*.py"):
        if p.name == "run_folder.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"{p.relative_to(SRC)}: {node.value}")
    assert found == []
