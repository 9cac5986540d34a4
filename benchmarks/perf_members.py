"""Batched member inference (issue #13): M same-architecture members as one vmapped
computation (``stacked_member_probs``), and for LeNets as one wide network with grouped
convolutions (built here, an experiment), vs a Python loop over members (``predict_probs``).

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
    args = ap.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    x = torch.randn(args.inputs, 1, 28, 28)
    rows, table = [], []
    for name in args.models:
        for m in args.members:
            members = [build_model(name, (1, 28, 28), 10, seed=s).to(device).eval() for s in range(m)]
            grouped = grouped_lenet(members) if name.startswith("lenet") else None
            with torch.no_grad():  # the experiment must compute what the members compute
                ref = torch.stack([predict_probs(k, x[:64]) for k in members])
                err = float((grouped(x[:64].to(device), 64).cpu() - ref).abs().max()) if grouped else None
            for bs in args.batches:
                times: dict[str, list[float]] = {"loop": [], "vmap": [], "grouped": []}
                for rep in range(args.reps + 1):  # the first round warms up
                    t = {"loop": timed(lambda ms=members, b=bs: [predict_probs(k, x, batch_size=b) for k in ms]),
                         "vmap": timed(lambda ms=members, b=bs: stacked_member_probs(ms, x, batch_size=b))}
                    if grouped:
                        t["grouped"] = timed(lambda g=grouped, b=bs: g(x.to(device), b))
                    if rep:
                        for k, v in t.items():
                            times[k].append(v)
                best = {k: min(v) for k, v in times.items() if v}
                row = {"model": name, "members": m, "batch": bs, "loop_s": best["loop"],
                       "batched_s": best["vmap"], "ratio": best["loop"] / best["vmap"],
                       "grouped_s": best.get("grouped"), "grouped_max_abs_diff": err,
                       "grouped_ratio": best["loop"] / best["grouped"] if "grouped" in best else None}
                rows.append(row)
                table.append([name, m, bs, f"{best['loop']:.3f}", f"{best['vmap']:.3f}", f"{row['ratio']:.2f}",
                              "-" if not grouped else f"{best['grouped']:.3f}",
                              "-" if not grouped else f"{row['grouped_ratio']:.2f}"])
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
                        "grouped ratio"], table),
        *footer(info),
    ]) + "\n"
    save("perf_members", {**info, "args": vars(args), "rows": rows}, md)


if __name__ == "__main__":
    main()
