"""Does a refactor change what the commands compute? Run a tiny instance of every command with
two checkouts of the code and diff their results.json, apart from timing and provenance.

    python benchmarks/same_results.py --before /path/to/old/checkout [--after .] [--only sparse noisy]

``--before``/``--after``: checkouts (their ``src/`` goes on PYTHONPATH; the same Python and
packages run both). Each command runs in its own fresh folder under ``runs/same_results/``
with one thread, so the two sides see the same data, seeds and arithmetic. Writes
results/same_results.md: one row per command, "identical" or the keys that differ.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import footer, header, save

from evo_ensembles.reporting import markdown_table
from evo_ensembles.run_folder import LAYOUT

RUNS = Path(__file__).resolve().parent / "runs" / "same_results"
TINY = ["--subset", "300", "--threads", "1", "--quiet", "--corrupted-examples", "100"]
# Keys that say when, where and with which code a result was made, not what it is.
VOLATILE = {"timing", "finished_at", "hardware", "commit", "code_dirty", "code_diff_sha256", "library_version",
            "train_seconds_this_run", "steps_per_second_this_run", "seconds", "tune_seconds", "split_file",
            "source", "run_dir", "agent"}
SPARSE = ["--model", "lenet-5", "--parent-epochs", "1", "--children", "2", "--child-epochs", "1", *TINY]


def commands() -> dict[str, list[list[str]]]:
    """Each case: the commands it runs, in order (``{out}`` is its folder, ``{agent}`` an agent's)."""
    base = ["baseline", "--model", "lenet-5", "--epochs", "2", *TINY]
    cases: dict[str, list[list[str]]] = {
        "sparse": [["sparse", *SPARSE, "--out", "{out}"]],
        "stochastic": [["stochastic", *SPARSE, "--out", "{out}"]],
        "noisy": [["noisy", "--model", "lenet-5", "--parent-epochs", "1", "--population", "4", "--top-k", "2",
                   *TINY, "--out", "{out}"]],
        "analyze": [["sparse", *SPARSE, "--out", "{out}"],
                    ["analyze", "{out}", "--parts", "tsne", "--examples", "60", "--quiet"]],
        "rl": [["rl", "train", "--env", "gym:CartPole-v1", "--preset", "smoke", "--timesteps", "256",
                "--threads", "1", "--quiet", "--out", "{out}/agent"],
               ["rl", "evaluate", "--agent", "{out}/agent", "--env", "gym:CartPole-v1", "--episodes", "3",
                "--members", "2", "--threads", "1", "--quiet", "--out", "{out}"]],
    }
    for peer, extra in (("deep-ensemble", ["--members", "2"]), ("snapshot", ["--members", "2"]),
                        ("mc-dropout", ["--members", "2"]), ("treenet", ["--members", "2"]),
                        ("batchensemble", ["--members", "2"]), ("mimo", ["--members", "2"]),
                        ("edst", ["--members", "2", "--epochs", "3"]), ("fge", ["--members", "1", "--epochs", "4"]),
                        ("bagging", ["--members", "2"]), ("dropout", []), ("independent", []),
                        ("dst", ["--members", "2"]), ("mothernets", ["--members", "2", "--model", "mlp-32"])):
        cases[f"baseline {peer}"] = [[*base, "--method", peer, *extra, "--out", "{out}"]]
    return cases


def run_case(checkout: Path, name: str, cmds: list[list[str]], out: Path) -> tuple[int, str]:
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "OMP_NUM_THREADS": "1"}
    for cmd in cmds:
        args = [a.replace("{out}", str(out)) for a in cmd]
        p = subprocess.run([sys.executable, "-m", "evo_ensembles.cli", *args], env=env, capture_output=True,
                           text=True, cwd=checkout)
        if p.returncode:
            return p.returncode, (p.stderr.strip().splitlines() or ["(no output)"])[-1]
    return 0, ""


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}".lstrip(".") + (" (only before)" if k in a else " (only after)")
               for k in sorted(set(a) ^ set(b))]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return [] if same else [path.lstrip(".") or "(whole file)"]


def result_file(name: str, out: Path) -> Path:
    return out / LAYOUT.analysis / LAYOUT.analysis_record if name == "analyze" else out / LAYOUT.results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the old checkout")
    ap.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1], help="the new checkout")
    ap.add_argument("--only", nargs="+", default=None, help="cases to run (default: all)")
    ap.add_argument("--reuse", action="store_true",
                    help="compare the folders an earlier run left under runs/same_results/ without running "
                         "anything; the page names the commits their results.json record")
    args = ap.parse_args()
    cases = commands()
    rows = []
    for name, cmds in cases.items():
        if args.only and name not in args.only and name.split()[-1] not in args.only:
            continue
        files = {}
        status = []
        for side, checkout in (("before", args.before), ("after", args.after)):
            out = RUNS / side / name.replace(" ", "_")
            rc, err = (0, "") if args.reuse else run_case(checkout.resolve(), name, cmds, out)
            status.append(f"{side} exit {rc}: {err}" if rc else "")
            files[side] = result_file(name, out)
        if any(status):
            verdict = "; ".join(s for s in status if s)
        else:
            a, b = (strip(json.loads(f.read_text())) for f in (files["before"], files["after"]))
            diff = differences(a, b)
            verdict = "identical" if not diff else f"{len(diff)} differ: " + ", ".join(diff[:8])
        print(f"{name:28s} {verdict}", flush=True)
        rows.append([name, verdict])
    info = header()
    before = subprocess.run(["git", "-C", str(args.before), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    after = "the commit below"
    if args.reuse:  # the commits the compared results were made at, as they record them
        made = {side: sorted({json.loads(f.read_text()).get("commit") or "unknown"
                              for f in (RUNS / side).glob("*/results.json")}) for side in ("before", "after")}
        before, after = ", ".join(made["before"]), "`" + ", ".join(made["after"]) + "`"
    text = "\n\n".join([
        "# Same results before and after a refactor",
        f"Before: `{before}`; after: {after}. Every command at a tiny size, one thread; "
        f"results.json compared apart from {', '.join(sorted(VOLATILE))}.",
        markdown_table(["command", "results.json"], rows),
        *footer(info),
    ]) + "\n"
    save("same_results", {**info, "before": before, "rows": [{"command": c, "verdict": v} for c, v in rows]}, text)

if __name__ == "__main__":
    main()
