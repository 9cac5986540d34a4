"""Performance of noisy-population evaluation (issue #3, P2 and P6). Run on an idle machine.

P2 (time): evaluating N noisy children in place (regenerate mask + noise, perturb, score,
   revert) vs N plain evaluations of the parent on the same validation data; interleaved
   repeats, medians. Target ≤ 1.10×.
P2 (memory): peak RSS of a fresh process that evaluates N = 64 children vs one that
   evaluates N = 4 (same model and data). Target ≤ 1.10×.
P6: a population evaluated on 2 Ray actors (one torch thread each, only descriptor rows
   travel) vs in one process with 1 and with 2 torch threads, over population and
   validation sizes. Actor start-up is timed separately (it is paid once per run). Target
   ≥ 1.6× where evaluation dominates.

    .venv/bin/python benchmarks/perf_noisy.py
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import header, save
from _parents import fashion_parent

from evo_ensembles.es import (
    ClassifierFitness,
    DescriptorProblem,
    NoiseSampling,
    evaluate_children,
    evaluate_population,
    make_noisy_specs,
)
from evo_ensembles.reporting import markdown_table
from evo_ensembles.subnet import InPlacePerturber

SAMPLING = NoiseSampling(sigma=0.015, density=0.5)


def _timed(fn, *args, **kwargs) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t


def _plain(fitness, parent, n: int) -> None:
    for _ in range(n):
        fitness(parent)


def p2_time(parent, data, n: int, repeats: int, model: str) -> dict:
    fitness = ClassifierFitness(data.val.x, data.val.y, reference=parent)
    perturber = InPlacePerturber(parent)
    specs = make_noisy_specs(n, seed=0, sampling=SAMPLING)
    plain, children = [], []
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both alike
        plain.append(_timed(_plain, fitness, parent, n))
        children.append(_timed(evaluate_children, parent, specs, fitness, perturber=perturber, progress=False))
    p, c = statistics.median(plain), statistics.median(children)
    return {"model": model, "n": n, "val_examples": len(data.val), "plain_seconds": p, "children_seconds": c,
            "ratio": c / p}


def _rss_child(n: int, model: str) -> int:
    """Run in a fresh process: evaluate n children, return peak RSS in KiB."""
    out = subprocess.run([sys.executable, __file__, "--rss-worker", str(n), "--model", model],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return int(out.stdout.strip().splitlines()[-1])


def rss_worker(n: int, model: str) -> None:
    torch.set_num_threads(1)
    parent, data = fashion_parent(model)
    fitness = ClassifierFitness(data.val.x, data.val.y, reference=parent)
    recs = evaluate_children(parent, make_noisy_specs(n, seed=0, sampling=SAMPLING), fitness, progress=False)
    assert len(recs) == n
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def p6(parent, data, sizes, pops, repeats: int) -> list[dict]:
    rows = []
    for val_n in sizes:
        fitness = ClassifierFitness(data.val.x[:val_n], data.val.y[:val_n], reference=parent)
        t = time.perf_counter()
        problem = DescriptorProblem(parent, fitness, sampling=SAMPLING, num_actors=2)
        evaluate_population(problem, make_noisy_specs(2, seed=99, sampling=SAMPLING))  # starts the actors
        startup = time.perf_counter() - t
        try:
            for n in pops:
                specs = make_noisy_specs(n, seed=1, sampling=SAMPLING)
                res = {}
                for _ in range(repeats):
                    for threads in (1, 2):
                        torch.set_num_threads(threads)
                        res.setdefault(f"process_{threads}t", []).append(
                            _timed(evaluate_children, parent, specs, fitness, progress=False))
                    torch.set_num_threads(1)
                    res.setdefault("ray_2_actors", []).append(_timed(evaluate_population, problem, specs))
                med = {k: statistics.median(v) for k, v in res.items()}
                row = {"val_examples": val_n, "population": n, **med, "actor_startup_seconds": startup,
                       "speedup_vs_1_thread": med["process_1t"] / med["ray_2_actors"],
                       "speedup_vs_2_threads": med["process_2t"] / med["ray_2_actors"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            problem.kill_actors()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rss-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_worker is not None:
        rss_worker(args.rss_worker, args.model)
        return
    parent, data = fashion_parent(args.model)
    torch.set_num_threads(1)
    p2 = [p2_time(parent, data, n, args.repeats, args.model) for n in (16, 64)]
    for r in p2:
        print(f"P2 time N={r['n']}: children/plain = {r['ratio']:.3f}", flush=True)
    rss = {n: _rss_child(n, args.model) for n in (4, 64)}
    print(f"P2 memory: peak RSS N=64 / N=4 = {rss[64] / rss[4]:.3f} ({rss[64]} vs {rss[4]} KiB)", flush=True)
    p6_rows = p6(parent, data, sizes=(500, 2000, 6000), pops=(8, 32), repeats=max(3, args.repeats // 2))
    md = "\n\n".join([
        f"# Noisy-population evaluation performance ({args.model}, Fashion-MNIST validation split)",
        "## P2: N children in place vs N plain parent evaluations (1 torch thread, medians of "
        f"{args.repeats} interleaved repeats; target ≤ 1.10)",
        markdown_table(["N", "val examples", "plain s", "children s", "ratio"],
                       [[r["n"], r["val_examples"], r["plain_seconds"], r["children_seconds"], r["ratio"]]
                        for r in p2]),
        f"Peak RSS of a fresh process: N=4 {rss[4] / 1024:.1f} MiB, N=64 {rss[64] / 1024:.1f} MiB, "
        f"ratio {rss[64] / rss[4]:.3f} (target ≤ 1.10).",
        "## P6: 2 Ray actors (1 thread each) vs one process (target ≥ 1.6)",
        markdown_table(["val examples", "population", "1 process, 1 thread s", "1 process, 2 threads s",
                        "2 actors s", "speed-up vs 1 thread", "speed-up vs 2 threads", "actor start-up s"],
                       [[r["val_examples"], r["population"], r["process_1t"], r["process_2t"],
                         r["ray_2_actors"], r["speedup_vs_1_thread"], r["speedup_vs_2_threads"],
                         r["actor_startup_seconds"]] for r in p6_rows]),
    ]) + "\n"
    save(f"perf_noisy_{args.model}", {**header(), "p2_time": p2, "p2_rss_kib": rss, "p6": p6_rows}, md)


if __name__ == "__main__":
    main()
