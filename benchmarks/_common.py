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

from evo_ensembles.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"


CODE_KEYS = ("commit", "code_dirty", "code_diff_sha256")  # see evo_ensembles.results.Provenance


def header() -> dict:
    """Commit (and whether the code differed from it), hardware, versions, date and the exact
    command line.

    ``EVO_COMMIT`` overrides the commit: a copy of the tree run elsewhere (a GPU machine)
    may carry no ``.git``, or a stale one. Unless the checkout is at that very commit, it
    cannot tell whether its code differs from it: ``code_dirty`` is then ``None`` (unknown).
    An older-style ``EVO_COMMIT=<commit>-dirty`` records dirty code without a diff hash.
    """
    prov = provenance()
    override = os.environ.get("EVO_COMMIT")
    if override:
        wanted = code_of({"commit": override, "code_dirty": None})
        if wanted["commit"] != prov["commit"] or (wanted["code_dirty"] and not prov["code_dirty"]):
            prov.update(wanted)
    return {**prov, "command": " ".join(["python", *sys.argv]), "date": dt.date.today().isoformat()}


@functools.cache
def _code() -> tuple:
    info = header()
    return tuple(info[k] for k in CODE_KEYS)


def code_of(record: dict) -> dict:
    """A record's ``commit``, ``code_dirty`` and ``code_diff_sha256``, also for records written
    before these keys: a commit ending in ``-dirty`` is that commit with dirty code (no diff
    hash), one without the suffix and without ``code_dirty`` had no tracked change."""
    commit, dirty, sha = record.get("commit"), record.get("code_dirty"), record.get("code_diff_sha256")
    if isinstance(commit, str) and commit.endswith("-dirty"):
        commit, dirty = commit[: -len("-dirty")], True
    elif "code_dirty" not in record and commit:
        dirty = False
    return {"commit": commit, "code_dirty": dirty, "code_diff_sha256": sha}


def describe_code(records: list[dict]) -> str:
    """Which code made ``records`` (rows, or one page's ``header()``), in words: "commit
    abc1234"; several commits are named and marked mixed; code that differed from its commit
    is said so, with the diff's hash."""
    codes = [code_of(r) for r in records]
    if not codes:
        return "no rows yet"
    commits = sorted({str(c["commit"] or "unrecorded")[:7] for c in codes})
    text = (f"commit {commits[0]}" if len(commits) == 1 else
            f"commits {', '.join(commits)} (mixed: rows from more than one commit)")

    def part(n: int) -> str:
        return "" if n == len(codes) else f" in {n} of {len(codes)} rows"

    dirty = [c for c in codes if c["code_dirty"]]
    if dirty:
        hashes = sorted({c["code_diff_sha256"][:12] for c in dirty if c["code_diff_sha256"]})
        missing = sum(1 for c in dirty if not c["code_diff_sha256"])
        what = [f"diff sha256 {', '.join(hashes)}"] if hashes else []
        what += [f"diff not recorded{f' for {missing} of them' if hashes else ''}"] if missing else []
        text += f"; code differed from the commit{part(len(dirty))} ({'; '.join(what)})"
    unknown = sum(1 for c in codes if c["code_dirty"] is None and c["commit"])
    if unknown:
        text += f"; whether the code differed from the commit is not recorded{part(unknown)}"
    return text


def footer(info: dict) -> list[str]:
    """The provenance lines every results page ends with (hardware, commit, date, command)."""
    return [f"Hardware: {info['hardware'].get('cpu')}; {describe_code([info])}; date {info['date']}.",
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
    """Which code made ``rows`` (:func:`describe_code`): "commit X", "commits X, Y (mixed: ...)",
    or, grouped ``by`` a key, "a: commit X; b: commits Y, Z (mixed: ...)"; code that differed
    from its commit is said so, with the diff's hash."""
    if by is None:
        return describe_code(rows)
    groups = {r.get(by) for r in rows}
    return "; ".join(f"{g}: {describe_code([r for r in rows if r.get(by) == g])}"
                     for g in sorted(groups, key=str))


def trained_by(rows: list[dict]) -> str:
    """The command lines that made ``rows`` (each row's ``command``), for a page's provenance."""
    commands = sorted({r["command"] for r in rows if r.get("command")})
    missing = sum(1 for r in rows if not r.get("command"))
    text = "; ".join(f"`{c}`" for c in commands) or "not recorded"
    return text + (f" ({missing} of {len(rows)} rows did not record theirs)" if commands and missing else "")


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

        A row without a ``commit`` gets this process's code (``commit``, ``code_dirty``,
        ``code_diff_sha256``, see ``header``), so a table whose rows were made over several
        sessions can say which code made each; every row gets the command line that made it
        (``command``), so a page lists the commands that trained its rows (:func:`trained_by`).
        """
        from evo_ensembles.run_folder import write_text

        if "commit" not in row:
            row.update(zip(CODE_KEYS, _code(), strict=True))
        row.setdefault("command", " ".join(["python", *sys.argv]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.reload()
            self.rows.append(row)
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))
        return row
