"""A run folder: what every command writes into ``--out``, and the one atomic writer.

Every run (``sparse``, ``noisy``, ``stochastic``, ``baseline``, ``imagenet``, ``rl train``,
``rl evaluate``, ``analyze``) goes through :class:`RunFolder`: ``--out`` is checked before any
work (nothing is left behind on bad input), threads and device are set, one process at a time
holds the folder (released in ``finally``), and ``config.json``, ``report.md`` and
``results.json`` are written atomically, results last (a folder with ``results.json`` is a
finished run). :data:`LAYOUT` spells every file name of a run folder once.

Examples:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> run = RunFolder(out, threads=None, device="cpu")    # checks only: nothing made yet
    >>> out.exists()
    False
    >>> with run:                                           # made and locked
    ...     run.write_config({"seed": 0})
    ...     run.finish({"seed": 0, "accuracy": 0.5}, "# a run\\n")
    >>> sorted(p.name for p in out.iterdir()), run.read_json(LAYOUT.results)["accuracy"]
    (['config.json', 'report.md', 'results.json'], 0.5)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Layout:
    """The names inside a run folder, relative to it: the one place each is spelled."""

    config: str = "config.json"
    results: str = "results.json"
    report: str = "report.md"
    figures: str = "figures"
    checkpoints: str = "checkpoints"
    parent: str = "checkpoints/parent.safetensors"
    parent_resume: str = "checkpoints/parent_resume"
    children: str = "checkpoints/children"
    peer_ensemble: str = "checkpoints/ensemble.safetensors"
    evolved: str = "checkpoints/evolved_children.safetensors"
    noisy_records: str = "checkpoints/noisy_records.json"
    ensemble: str = "ensemble.json"
    split: str = "split.json"
    cache: str = "cache"
    agent: str = "agent.zip"
    agent_record: str = "agent.json"
    agent_latest: str = "checkpoints/latest"
    logs: str = "logs"
    analysis: str = "analysis"
    analysis_record: str = "analysis.json"
    analysis_report: str = "analysis.md"
    lock: str = ".evo_ensembles.lock"

    def child(self, index: int) -> str:
        """A tuned child's checkpoint (sparse, stochastic)."""
        return f"{self.children}/child_{index}.safetensors"


LAYOUT = Layout()
LOCK_NAME = LAYOUT.lock


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A crash leaves the old file or the new one, never a torn one; the temporary file never
    outlives a failure. The one atomic writer of the library (checkpoints, JSON, reports,
    figures, agent archives, caches).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_directory(target) as tmp:`` fill the staging folder ``tmp`` (beside
    ``target``, with the umask's permissions); when the block ends it is renamed to ``target``
    (an older ``target`` is moved aside first, then removed), and when the block fails it is
    removed. A reader sees the old folder or the new one, never a half-written one."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide a shared folder's contents
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(o: Any) -> Any:
    import torch

    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, (Path, torch.device, torch.dtype)):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON the library writes (tensors as lists, paths as strings)."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    text = json_text(obj)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_output_dir(out: str | os.PathLike) -> Path:
    """Validate ``--out`` before any work, leaving nothing behind (it is created once the
    inputs are valid): it must be a directory a file can be created in, or a path whose
    nearest existing parent is a directory a directory can be created in.

    Both are tried for real (a probe made and removed at once): ``os.access`` is no answer,
    e.g. ``/proc`` is a directory root may write to, yet nothing can be made in it.
    """
    out = Path(out)
    for p in [out, *out.parents]:
        try:
            exists, is_dir = p.exists(), p.is_dir()
        except OSError as e:  # e.g. a parent that may not be searched
            raise UserError(f"--out {out}: cannot look at {p}: {e.strerror or e}") from None
        if not exists:
            continue
        if not is_dir:
            raise UserError(f"--out {out}: {p} exists and is not a directory")
        try:
            if p == out:
                fd, probe = tempfile.mkstemp(dir=p, prefix=".evo_ensembles.probe.")
                os.close(fd)
                os.unlink(probe)
            else:
                os.rmdir(tempfile.mkdtemp(dir=p, prefix=".evo_ensembles.probe."))
        except OSError as e:
            what = "a file" if p == out else "a directory"
            raise UserError(f"--out {out}: cannot create {what} in {p} ({e.strerror or e})") from None
        break
    return out


def make_output_dir(out: str | os.PathLike) -> Path:
    """Create ``--out`` (and its parents); a failure is one :class:`UserError` naming it."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create it ({e.strerror or e})") from None
    return out


class RunLock:
    """Only one process writes to a run directory at a time.

    ``with RunLock(out):`` creates ``out`` (an uncreatable one is a :class:`UserError`) and
    ``out/.evo_ensembles.lock`` (exclusively) holding this process's id and host. A second process
    refuses with one line while the first is alive; a lock left by a process that died (same host,
    pid gone) is taken over.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.held = False

    def _owner(self) -> dict[str, Any]:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) else {}
        except (OSError, ValueError):
            return {}  # unreadable: a crash while it was being written

    @staticmethod
    def _alive(owner: dict[str, Any]) -> bool:
        import socket

        if owner.get("host") != socket.gethostname():
            return True  # cannot check another machine's processes: assume it is running
        try:
            os.kill(int(owner.get("pid", -1)), 0)
        except (OSError, ValueError, OverflowError):
            return False
        return True

    def acquire(self) -> RunLock:
        import socket

        make_output_dir(self.path.parent)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                mine = owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()
                if owner and not mine and self._alive(owner):
                    raise UserError(f"{self.path.parent} is in use by another run (pid {owner.get('pid')} on "
                                    f"{owner.get('host')}); wait for it or use another --out") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as e:  # a read-only directory, a full disk, ...
                raise UserError(f"--out {self.path.parent}: cannot create {self.path.name} in it "
                                f"({e.strerror or e})") from None
            with os.fdopen(fd, "w") as f:
                f.write(record)
            self.held = True
            import atexit

            atexit.register(self.release)
            return self
        raise UserError(f"cannot lock {self.path.parent}: another run keeps taking it")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class RunFolder:
    """The ``--out`` of one run.

    Making one checks ``out`` (nothing is created), sets torch's threads and resolves the
    device: do it first, validate the rest of the inputs, then ``with run:`` creates and locks
    the folder for the work (the lock is released however the block ends). Paths inside it
    are ``run / LAYOUT.name``.

    Args:
        out: the folder (created on entry, with its parents).
        threads: torch intra-op threads (``None`` keeps torch's default).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.
    """

    def __init__(self, out: str | os.PathLike, *, threads: int | None = None,
                 device: str | torch.device = "auto") -> None:
        from .devices import resolve_device, set_threads

        self.path = check_output_dir(out)
        self.threads = set_threads(threads)
        self.device = resolve_device(device)
        self._lock = RunLock(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __enter__(self) -> RunFolder:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    @property
    def figures(self) -> Path:
        """The folder of the run's figures (made by the first one written)."""
        return self.path / LAYOUT.figures

    def write_json(self, name: str, obj: Any) -> None:
        """Atomically write ``obj`` as JSON to ``name`` inside the folder."""
        write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> None:
        """Atomically write ``text`` to ``name`` inside the folder."""
        write_text(self.path / name, text)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """``config.json``: the run's settings, as given."""
        self.write_json(LAYOUT.config, config)

    def read_json(self, name: str) -> Any | None:
        """The JSON in ``name`` (``None`` when it is missing or unreadable)."""
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def finish(self, results: Mapping[str, Any], report: str) -> None:
        """``report.md``, then ``results.json`` (last: its presence marks a finished run)."""
        self.write_text(LAYOUT.report, report)
        self.write_json(LAYOUT.results, results)


__all__ = ["LAYOUT", "Layout", "RunFolder", "RunLock", "atomic_directory", "atomic_write", "check_output_dir",
           "json_text", "make_output_dir", "write_json", "write_text"]
