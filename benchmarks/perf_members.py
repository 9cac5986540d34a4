"""Batched member inference (issue #13): M same-architecture members as one vmapped
computation (``stacked_member_probs``) vs a Python loop over members (``predict_probs``).

Alternated side by side in one process, best of ``--reps`` per setting; the ratio is
loop time / batched time (> 1: batching pays). ``Ensemble(batched="auto")`` makes the same
comparison at run time on the first batch.

    .venv/bin/python benchmarks/perf_members.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import header, save

from evo_ensembles.devices import resolve_device, set_threads
from evo_ensembles.ensemble import predict_probs, stacked_member_probs
from evo_ensembles.models import build_model
from evo_ensembles.reporting import markdown_table


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["lenet-5", "lenet-s"])
    ap.add_argument("--members", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 1024])
    ap.add_argument("--inputs", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    x = torch.randn(args.inputs, 1, 28, 28)
    rows, table = [], []
    for name in args.models:
        for m in args.members:
            members = [build_model(name, (1, 28, 28), 10, seed=s).to(device).eval() for s in range(m)]
            for bs in args.batches:
                loop, stacked = [], []
                for rep in range(args.reps + 1):  # the first pair warms up
                    a = timed(lambda ms=members, b=bs: [predict_probs(k, x, batch_size=b) for k in ms])
                    b = timed(lambda ms=members, b=bs: stacked_member_probs(ms, x, batch_size=b))
                    if rep:
                        loop.append(a)
                        stacked.append(b)
                ratio = min(loop) / min(stacked)
                rows.append({"model": name, "members": m, "batch": bs, "loop_s": min(loop),
                             "batched_s": min(stacked), "ratio": ratio})
                table.append([name, m, bs, f"{min(loop):.3f}", f"{min(stacked):.3f}", f"{ratio:.2f}"])
                print(table[-1], flush=True)
    info = header()
    md = "\n\n".join([
        "# Batched member inference: one vmapped forward vs a loop over members",
        f"{args.inputs} Fashion-MNIST-shaped inputs; best of {args.reps} alternated repetitions; device "
        f"{device}, {torch.get_num_threads()} threads. Ratio = loop / batched (> 1: batching pays).",
        markdown_table(["model", "members", "batch", "loop s", "batched s", "ratio"], table),
        f"Hardware: {info['hardware'].get('cpu')}; commit {info['commit']}; date {info['date']}.",
        f"Command: `{info['command']}`",
    ]) + "\n"
    save("perf_members", {**info, "args": vars(args), "rows": rows}, md)


if __name__ == "__main__":
    main()
