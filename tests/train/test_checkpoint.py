import pytest
import torch
from torch import nn

from evo_ensembles.errors import CheckpointError
from evo_ensembles.train import load_state_into, load_tensors, read_meta, save_model


def test_model_roundtrip(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    save_model(tmp_path / "m.safetensors", net, {"model": "custom", "note": 1})
    assert read_meta(tmp_path / "m.safetensors") == {"model": "custom", "note": 1}
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    load_state_into(other, load_tensors(tmp_path / "m.safetensors"), "m")
    x = torch.randn(5, 3)
    assert torch.equal(net(x), other(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_mismatch_is_a_clear_error(tmp_path):
    save_model(tmp_path / "m.safetensors", nn.Linear(3, 4), {})
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_state_into(nn.Linear(3, 5), load_tensors(tmp_path / "m.safetensors"), "m")
    with pytest.raises(CheckpointError, match="missing"):
        load_state_into(nn.Sequential(nn.Linear(3, 4)), load_tensors(tmp_path / "m.safetensors"), "m")


def test_unreadable_or_missing_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        load_tensors(bad)
    with pytest.raises(CheckpointError):
        load_tensors(tmp_path / "nope.safetensors")


def test_run_lock_refuses_a_live_owner_and_takes_over_a_dead_ones(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from evo_ensembles.errors import UserError
    from evo_ensembles.train.checkpoint import LOCK_NAME, RunLock

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
    from evo_ensembles.train.checkpoint import RunLock, check_output_dir, make_output_dir

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
