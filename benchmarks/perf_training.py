"""P1, P3 and the thread-count measurement of issue #2, side by side in one run.

P1: samples/s of the library's training loop (``evo_ensembles.train.fit``, progress bar on)
    vs a bare PyTorch loop on the same model, data, batch size and optimizer (target ≥ 0.95).
P3: a pruned child's tuning epoch (mask re-applied every step) vs a dense epoch through the
    same loop (target ≤ 1.10).
Threads: the bare loop at 1 vs 2 torch threads.

Runs are interleaved (A B A B ...) and the median of each is reported, so load drift on the
machine hits both sides alike.

    .venv/bin/python benchmarks/perf_training.py --model lenet-s --subset 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from contextlib import redirect_stderr, redirect_stdout

import torch
import torch.nn.functional as F
from _common import describe_code, header, save

from evo_ensembles import TrainConfig, build_model, fit, load_dataset
from evo_ensembles.methods.sparse import KeepPruned, prune_child
from evo_ensembles.subnet import eligible_parameters, make_child_specs


def bare_epoch(model, x, y, bs, seed) -> float:
    """The reference: index a shuffled in-memory tensor, step Adam. Returns samples/s."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    model.train()
    t0 = time.perf_counter()
    for i in range(0, len(x), bs):
        idx = perm[i : i + bs]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(x) / (time.perf_counter() - t0)


def library_epoch(model, data, bs, seed, callbacks=()) -> float:
    cfg = TrainConfig(epochs=1, lr=1e-3, optimizer="adam", batch_size=bs, seed=seed)
    sink = io.StringIO()
    with redirect_stderr(sink), redirect_stdout(sink):  # progress bar on, but off the terminal
        res = fit(model, data, cfg, device="cpu", callbacks=callbacks, progress=True)
    return res.samples_per_second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-s")
    ap.add_argument("--subset", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = load_dataset("fashion-mnist", subset=args.subset, seed=args.seed, augment=False)
    x, y = data.train.x, data.train.y
    torch.manual_seed(args.seed)
    base = build_model(args.model, data.input_shape, data.num_classes)
    spec = make_child_specs(1, 0.5, seed=args.seed)[0]

    def fresh():
        return build_model(args.model, data.input_shape, data.num_classes).requires_grad_(True)

    runs = {"bare_2t": [], "library_2t": [], "dense_child_2t": [], "pruned_child_2t": [], "bare_1t": []}
    torch.set_num_threads(2)
    bare_epoch(fresh(), x, y, args.batch_size, 0)  # warm-up (allocator, kernels)
    for r in range(args.repeats):
        torch.set_num_threads(2)
        m = fresh(); m.load_state_dict(base.state_dict())
        runs["bare_2t"].append(bare_epoch(m, x, y, args.batch_size, r))
        m = fresh(); m.load_state_dict(base.state_dict())
        runs["library_2t"].append(library_epoch(m, data.train, args.batch_size, r))
        dense, _ = prune_child(base, spec)
        dense.load_state_dict(base.state_dict())
        runs["dense_child_2t"].append(library_epoch(dense, data.train, args.batch_size, r))
        child, mask = prune_child(base, spec)
        runs["pruned_child_2t"].append(library_epoch(
            child, data.train, args.batch_size, r, [KeepPruned(eligible_parameters(child), mask)]))
        torch.set_num_threads(1)
        m = fresh(); m.load_state_dict(base.state_dict())
        runs["bare_1t"].append(bare_epoch(m, x, y, args.batch_size, r))
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items()))

    med = {k: statistics.median(v) for k, v in runs.items()}
    ratios = {
        "P1_library_vs_bare_samples_per_s": med["library_2t"] / med["bare_2t"],
        "P3_pruned_vs_dense_epoch_time": med["dense_child_2t"] / med["pruned_child_2t"],
        "threads_2_vs_1_speedup": med["bare_2t"] / med["bare_1t"],
    }
    payload = {**header(), "args": vars(args), "samples_per_second": runs, "median": med, "ratios": ratios,
               "targets": {"P1": ">= 0.95", "P3": "<= 1.10"}}
    md = "\n".join([
        "# Training-loop performance (issue #2: P1, P3, threads)",
        f"Model {args.model}, Fashion-MNIST train subset {args.subset}, batch {args.batch_size}, Adam, "
        f"{args.repeats} interleaved repeats, medians. Code: {describe_code([payload])}, "
        f"{payload['hardware'].get('cpu')}, {payload['hardware']['cpu_count']} cores, {payload['date']}.",
        "",
        "| measurement | samples/s (median) |", "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in med.items()],
        "",
        "| ratio | value | target |", "|---|---|---|",
        f"| P1 library / bare loop (samples/s) | {ratios['P1_library_vs_bare_samples_per_s']:.3f} | ≥ 0.95 |",
        f"| P3 pruned / dense epoch time | {ratios['P3_pruned_vs_dense_epoch_time']:.3f} | ≤ 1.10 |",
        f"| 2 threads / 1 thread speed | {ratios['threads_2_vs_1_speedup']:.2f} | (choose default) |",
        "",
        f"Command: `{payload['command']}`",
    ]) + "\n"
    print(md)
    save(f"perf_training_{args.model}", payload, md)


if __name__ == "__main__":
    main()
