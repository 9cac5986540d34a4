"""Batched member inference (issue #13): M same-architecture members as one vmapped
computation (``stacked_member_probs``), and for LeNets as one wide network with grouped
convolutions (built here, an experiment), vs a Python loop over members (``predict_probs``).
With ``--compile``, the loop and the grouped network are also timed under ``torch.compile``
(inductor), which separates what batching gains from what compiling gains.

Alternated side by side in one process, best of ``--reps`` per setting; a ratio is
loop time / batched time (> 1: batching pays). ``Ensemble(batched="auto")`` batches where
this measured a gain (CUDA) and loops elsewhere.

    .venv/bin/python benchmarks/perf_members.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _common import footer, header, save

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


def ratio(best: dict, key: str, over: str = "loop") -> str:
    """``best[over] / best[key]`` formatted, or "-" when ``key`` was not timed."""
    return f"{best[over] / best[key]:.2f}" if key in best else "-"


def grouped_lenet(members: list) -> callable:
    """The M LeNets as one network: conv1 with M×c1 output channels (the input is shared),
    conv2 with groups=M, the fully connected layers as batched matmuls (M, B, ·)."""
    m = len(members)
    w1 = torch.cat([k.conv1.weight for k in members])
    b1 = torch.cat([k.conv1.bias for k in members])
    w2 = torch.cat([k.conv2.weight for k in members])
    b2 = torch.cat([k.conv2.bias for k in members])
    fcs = [(torch.stack([getattr(k, n).weight for k in members]).transpose(1, 2).contiguous(),
            torch.stack([getattr(k, n).bias for k in members]).unsqueeze(1)) for n in ("fc1", "fc2", "fc3")]

    @torch.no_grad()
    def probs(x: torch.Tensor, batch_size: int) -> torch.Tensor:
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            h = F.max_pool2d(F.relu(F.conv2d(xb, w1, b1)), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, groups=m)), 2)
            h = h.reshape(len(xb), m, -1).transpose(0, 1)
            for j, (w, b) in enumerate(fcs):
                h = torch.baddbmm(b, h, w)
                h = F.relu(h) if j < 2 else h
            outs.append(torch.softmax(h, -1))
        return torch.cat(outs, dim=1)

    return probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["lenet-5", "lenet-s"])
    ap.add_argument("--members", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--batches", nargs="+", type=int, default=[256, 1024])
    ap.add_argument("--inputs", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd loop and grouped network")
    args = ap.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    x = torch.randn(args.inputs, 1, 28, 28)
    rows, table = [], []
    for name in args.models:
        for m in args.members:
            members = [build_model(name, (1, 28, 28), 10, seed=s).to(device).eval() for s in range(m)]
            grouped = grouped_lenet(members) if name.startswith("lenet") else None
            compiled = [torch.compile(k, dynamic=False) for k in members] if args.compile else None
            grouped_c = torch.compile(grouped, dynamic=False) if args.compile and grouped else None
            with torch.no_grad():  # the experiment must compute what the members compute
                ref = torch.stack([predict_probs(k, x[:64]) for k in members])
                err = float((grouped(x[:64].to(device), 64).cpu() - ref).abs().max()) if grouped else None
            for bs in args.batches:
                times: dict[str, list[float]] = {}
                for rep in range(args.reps + 1):  # the first round warms up
                    t = {"loop": timed(lambda ms=members, b=bs: [predict_probs(k, x, batch_size=b) for k in ms]),
                         "vmap": timed(lambda ms=members, b=bs: stacked_member_probs(ms, x, batch_size=b))}
                    if grouped:
                        t["grouped"] = timed(lambda g=grouped, b=bs: g(x.to(device), b))
                    if compiled:  # the warm-up round compiles; compile time is not counted
                        t["loop_c"] = timed(lambda ms=compiled, b=bs: [predict_probs(k, x, batch_size=b) for k in ms])
                    if grouped_c:
                        t["grouped_c"] = timed(lambda g=grouped_c, b=bs: g(x.to(device), b))
                    if rep:
                        for k, v in t.items():
                            times.setdefault(k, []).append(v)
                best = {k: min(v) for k, v in times.items() if v}
                row = {"model": name, "members": m, "batch": bs, "loop_s": best["loop"],
                       "batched_s": best["vmap"], "ratio": best["loop"] / best["vmap"],
                       "grouped_s": best.get("grouped"), "grouped_max_abs_diff": err,
                       "grouped_ratio": best["loop"] / best["grouped"] if "grouped" in best else None,
                       "loop_compiled_s": best.get("loop_c"), "grouped_compiled_s": best.get("grouped_c")}
                rows.append(row)
                table.append([name, m, bs, f"{best['loop']:.3f}", f"{best['vmap']:.3f}", f"{row['ratio']:.2f}",
                              "-" if not grouped else f"{best['grouped']:.3f}",
                              "-" if not grouped else f"{row['grouped_ratio']:.2f}",
                              *([ratio(best, "loop_c"), ratio(best, "grouped_c"),
                                 ratio(best, "grouped_c", over="loop_c")] if args.compile else [])])
                print(table[-1], flush=True)
    info = header()
    md = "\n\n".join([
        "# Batched member inference: one vmapped forward, or grouped convolutions, vs a loop over members",
        f"{args.inputs} Fashion-MNIST-shaped inputs; best of {args.reps} alternated repetitions; device "
        f"{device}, {torch.get_num_threads()} threads. Ratio = loop / batched (> 1: batching pays; the "
        "issue's target is ≥ 1.5). Grouped = the LeNets as one network (conv1 with M×c1 channels, conv2 "
        "with groups=M, fully connected layers as batched matmuls); its outputs match the loop's to "
        f"{max((r['grouped_max_abs_diff'] or 0) for r in rows):.1e}.",
        markdown_table(["model", "members", "batch", "loop s", "vmap s", "vmap ratio", "grouped s",
                        "grouped ratio", *(["compiled loop ratio", "compiled grouped ratio",
                                             "compiled grouped / compiled loop"] if args.compile else [])], table),
        *(["Compiled: torch.compile (inductor, dynamic=False); ratios against the eager loop, except the "
           "last column, which is the compiled loop's time over the compiled grouped network's (what "
           "batching adds once both are compiled). Compile time is not counted."] if args.compile else []),
        *footer(info),
    ]) + "\n"
    save("perf_members", {**info, "args": vars(args), "rows": rows}, md)


if __name__ == "__main__":
    main()
