"""Shared helpers of the benchmark scripts: provenance and result files."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import os
import statistics
import sys
from pathlib import Path

from evo_ensembles.recipes.common import provenance

RESULTS = Path(__file__).resolve().parent / "results"


def header() -> dict:
    """Commit, hardware, versions, date and the exact command line.

    ``EVO_COMMIT`` overrides the commit: a copy of the tree run elsewhere (a GPU machine)
    may carry no ``.git``, or a stale one.
    """
    prov = provenance()
    prov["commit"] = os.environ.get("EVO_COMMIT") or prov["commit"]
    return {**prov, "command": " ".join(["python", *sys.argv]), "date": dt.date.today().isoformat()}


@functools.cache
def _commit() -> str:
    return header()["commit"]


def footer(info: dict) -> list[str]:
    """The provenance lines every results page ends with (hardware, commit, date, command)."""
    return [f"Hardware: {info['hardware'].get('cpu')}; commit {info['commit']}; date {info['date']}.",
            f"Command: `{info['command']}`"]


@contextlib.contextmanager
def claim(path: Path, *, wait: bool):
    """Hold an exclusive lock on ``path`` while the body runs; yields whether it is held.

    Several processes of one benchmark share its work this way: each claims a unit before
    doing it and skips (``wait=False``) or waits for (``wait=True``) units another process
    holds. The OS drops the lock when its holder dies, so a crash leaves no stale claim.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def made_at(rows: list[dict], by: str | None = None) -> str:
    """Which commits made ``rows``: "commit X" or, grouped ``by`` a key, "a: X; b: Y, Z"."""
    def commits(rs: list[dict]) -> str:
        return ", ".join(sorted({str(r.get("commit") or "unrecorded")[:7] for r in rs}))
    if by is None:
        return f"commit {commits(rows)}"
    groups = {r.get(by) for r in rows}
    return "; ".join(f"{g}: {commits([r for r in rows if r.get(by) == g])}" for g in sorted(groups, key=str))


def save(name: str, payload: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(f"wrote {RESULTS / name}.json and .md")


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    m = statistics.fmean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return m, se


class RunLog:
    """The resumable record of one benchmark: ``results/<name>.runs.jsonl``, one JSON row per
    finished unit of work (a seed, a method, a configuration).

    Every script reads what is done from here and appends what it finishes, so an interrupted
    benchmark resumes where it stopped. Appends are atomic (the whole file is rewritten to a
    temporary file and renamed over it), so a crash never leaves a torn row; they hold a lock
    and first read back what other processes appended, so several shards of one benchmark
    may share a log (:meth:`reload` sees their rows).

    Example:
        >>> log = RunLog("example")                                   # doctest: +SKIP
        >>> if not log.find(model="lenet-s", seed=0):                 # doctest: +SKIP
        ...     log.append({"model": "lenet-s", "seed": 0, "accuracy": 0.9})
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = RESULTS / f"{name}.runs.jsonl"
        self.rows: list[dict] = []
        self.reload()

    def reload(self) -> None:
        """Re-read the rows from disk (rows other processes appended since)."""
        self.rows.clear()
        if self.path.is_file():
            for i, line in enumerate(self.path.read_text().splitlines()):
                if not line.strip():
                    continue
                try:
                    self.rows.append(json.loads(line))
                except ValueError:  # written by an older, non-atomic writer
                    print(f"warning: {self.path}:{i + 1} is not JSON; skipped", file=sys.stderr)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def where(self, **key) -> list[dict]:
        """Rows whose values match every ``key=value`` given."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in key.items())]

    def find(self, **key) -> dict | None:
        """The first row matching ``key`` (``None`` when that work is not done yet)."""
        rows = self.where(**key)
        return rows[0] if rows else None

    def append(self, row: dict) -> dict:
        """Record a finished unit of work (atomically) and return it.

        A row without a ``commit`` gets the one this process runs (see ``header``), so a table
        whose rows were made over several sessions can say which code made each.
        """
        from evo_ensembles.train.checkpoint import write_text

        row.setdefault("commit", _commit())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.reload()
            self.rows.append(row)
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))
        return row
