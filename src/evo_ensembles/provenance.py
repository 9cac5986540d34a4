"""Where a result comes from: library version, hardware, the code's commit (and whether it
differed from it), and when. Written next to every result (``results.json``'s ``provenance``).

Examples:
    >>> sorted(provenance())
    ['code_diff_sha256', 'code_dirty', 'commit', 'finished_at', 'hardware', 'library_version']
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import subprocess
from pathlib import Path
from typing import Any

from ._version import __version__
from .devices import hardware_info

# What counts as the code a result was made with: the package, the benchmark scripts (not
# their results/), the pinned requirements and the build file. Result files a run writes
# (runs/, benchmarks/results/, ...) never make the code "dirty".
CODE_PATHS = ("src", ":(glob)benchmarks/*.py", "requirements", "pyproject.toml")
# Untracked (and not ignored) files that are code: new modules and scripts, new requirement files.
UNTRACKED_CODE = (":(glob)src/**/*.py", ":(glob)benchmarks/*.py", "requirements")


def _checkout() -> Path | None:
    """The root of the checkout this package runs from (``None`` when it is installed)."""
    package = Path(__file__).resolve().parent
    return package.parent.parent if package.parent.name == "src" else None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=30)


def git_commit(root: str | Path | None = None) -> str | None:
    """The full commit (40 hex digits, no suffix) of the checkout at ``root`` (default: the
    one this package runs from); ``None`` when it is not a git checkout."""
    return code_provenance(root)["commit"]


def code_provenance(root: str | Path | None = None) -> dict[str, Any]:
    """``commit``, ``code_dirty`` and ``code_diff_sha256`` of the checkout at ``root``.

    ``code_dirty``: whether the code (:data:`CODE_PATHS`) differs from ``commit``: a tracked
    change (staged or not) or an untracked, not ignored code file (:data:`UNTRACKED_CODE`).
    Result files a run writes do not count. ``code_diff_sha256``: when dirty, the SHA-256 of
    ``git diff HEAD`` of those paths followed by each untracked code file's path and content
    (so two runs with the same hash ran the same code); ``None`` when clean. All three are
    ``None`` outside a git checkout.
    """
    unknown = {"commit": None, "code_dirty": None, "code_diff_sha256": None}
    root = _checkout() if root is None else Path(root)
    if root is None:
        return unknown
    try:
        head = _git(root, "rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return unknown
        commit = head.stdout.decode().strip()
        # Fixed options, so the hash does not depend on a user's git configuration.
        diff = _git(root, "diff", "HEAD", "--binary", "--full-index", "--no-color", "--no-ext-diff",
                    "--no-textconv", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/", "-U3",
                    "--diff-algorithm=myers", "--", *CODE_PATHS)
        listed = _git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", *UNTRACKED_CODE)
        if diff.returncode != 0 or listed.returncode != 0:
            return {**unknown, "commit": commit}
        untracked = sorted(n for n in listed.stdout.decode().split("\0") if n)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return unknown
    if not diff.stdout and not untracked:
        return {"commit": commit, "code_dirty": False, "code_diff_sha256": None}
    h = hashlib.sha256(diff.stdout)
    for name in untracked:
        try:
            content = (root / name).read_bytes()
        except OSError:
            content = b""  # vanished since it was listed
        h.update(b"\0untracked " + name.encode() + b"\0" + content)
    return {"commit": commit, "code_dirty": True, "code_diff_sha256": h.hexdigest()}


def provenance(root: str | Path | None = None) -> dict[str, Any]:
    """Versions, hardware, code (:func:`code_provenance`) and time written next to every result
    (the keys of :class:`evo_ensembles.results.Provenance`)."""
    return {
        "library_version": __version__,
        **code_provenance(root),
        "hardware": hardware_info(),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


__all__ = ["CODE_PATHS", "UNTRACKED_CODE", "code_provenance", "git_commit", "provenance"]
