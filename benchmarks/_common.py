"""Shared helpers of the benchmark scripts: provenance and result files."""

from __future__ import annotations

import datetime as dt
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
