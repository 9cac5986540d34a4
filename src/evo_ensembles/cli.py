"""Command line: ``evo-ensembles <method> [flags]``. Thin: parse, build a config, run.

Errors a user can cause print one line (``error: ...``) and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__
from .errors import UserError
from .subnet import ANNEAL_SCHEDULES, ANNEALS


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _layer_list(text: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"expected layer names such as first,last (or none); got {text!r}")
    return () if items == ("none",) else items


def _add_dense_layers(g, what: str, default: str) -> None:
    g.add_argument("--dense-layers", type=_layer_list, default=None, metavar="LAYERS",
                   help=f"pruning scope: comma-separated layers every child {what}: first, last, "
                   f"name prefixes, or none (default: {default})")


def _add_common(p: argparse.ArgumentParser, default_out: str = "runs/sparse") -> None:
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist (default), mnist, cifar10, cifar100")
    g.add_argument("--data-root", default=None,
                   help="folder holding the data sets (default: $EVO_ENSEMBLES_DATA_ROOT or /usr/share/datasets)")
    g.add_argument("--subset", type=_positive_int, default=None,
                   help="use only N training examples (quick runs)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of train carved out for validation (default 0.1)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop/flip while training the parent (default: off — the regime "
                   "study's choice, benchmarks/results/regime.md)")
    g.add_argument("--model", default=None,
                   help="lenet-5, lenet-s (default), lenet-m/l, mlp, resnet-8/20/18, wrn-D-W, "
                   "torchvision:<name>; read from the checkpoint with --parent")
    g.add_argument("--parent", default=None, metavar="CHECKPOINT",
                   help="start from a trained parent (.safetensors written by this toolkit)")
    g.add_argument("--parent-epochs", type=_positive_int, default=None, help="(default 8)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    r.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: all cores; see benchmarks/perf_training.py)")
    r.add_argument("--out", default=default_out, help=f"output directory (default {default_out})")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_sparse(sub) -> None:
    p = sub.add_parser(
        "sparse",
        help="Sparse Subnetwork Ensemble (prune and tune)",
        description="Train (or load) a parent, prune children to random or partitioned "
        "subnetworks, tune them briefly, and report parent vs ensemble.",
    )
    _add_common(p)
    _add_children_flags(p)
    p.set_defaults(func=_run_sparse)


def _add_stochastic(sub) -> None:
    p = sub.add_parser(
        "stochastic",
        help="Stochastic Subnetwork Ensemble (annealed random masks while tuning)",
        description="The sparse pipeline, but each child tunes with a fresh Bernoulli(P) mask "
        "on every forward pass, P annealed to its target subnetwork over --anneal-epochs; "
        "afterwards it is an ordinary pruned child.",
    )
    _add_common(p, default_out="runs/stochastic")
    _add_children_flags(p)
    a = p.add_argument_group("annealing")
    a.add_argument("--anneal", choices=ANNEALS,
                   default="temperature",
                   help="temperature: pruned weights start at probability T0 (default); random: "
                   "P ~ U[0,1] (P and 1-P across a partition); mog: mixture-of-Gaussians P")
    a.add_argument("--t0", type=_nonneg_float, default=0.5,
                   help="start probability of pruned weights, in [0, 1] (default 0.5)")
    a.add_argument("--anneal-epochs", type=int, default=1,
                   help="epochs E_a over which P anneals, <= --child-epochs (default 1)")
    a.add_argument("--schedule", choices=ANNEAL_SCHEDULES, default="cosine",
                   help="annealing schedule, stepped per batch (default cosine)")
    p.set_defaults(func=_run_sparse)


def _add_children_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("children")
    g.add_argument("--children", type=_positive_int, default=4, help="ensemble size (default 4)")
    g.add_argument("--child-epochs", type=_positive_int, default=None, help="(default 3)")
    g.add_argument("--child-augment", action=argparse.BooleanOptionalAction, default=None,
                   help="crop/flip augmentation while tuning children (default: as the parent's)")
    g.add_argument("--density", type=float, default=None,
                   help="fraction of weights each child keeps (default 0.75; 1/k with --partition)")
    g.add_argument("--partition", action=argparse.BooleanOptionalAction, default=None,
                   help="neural partitioning into k disjoint subnetworks (k=2: mask/anti-mask) "
                   "instead of independent random masks (default: independent)")
    g.add_argument("--k", type=int, default=2, help="partition size (default 2: mask/anti-mask)")
    g.add_argument("--structured", action="store_true", help="prune whole neurons/filters")
    g.add_argument("--scope", choices=["local", "global"], default="local")
    _add_dense_layers(g, "never prunes (they are still tuned, like biases)", "first,last")
    g.add_argument("--selection", choices=["random", "magnitude"], default="random",
                   help="which weights a child keeps: random, or the largest |W| (L1 pruning; "
                   "needs --no-partition)")
    g.add_argument("--prune-epochs", type=int, default=0,
                   help="0: one-shot pruning (default); E_p > 0: iterative pruning, an equal share at "
                   "the start of each of the first E_p epochs (sparse only, needs --no-partition)")
    g.add_argument("--tune", choices=["one-cycle", "constant"], default="one-cycle")
    g.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    g.add_argument("--lr", type=float, default=1e-3, help="parent learning rate (default 1e-3)")
    g.add_argument("--child-lr", type=float, default=None,
                   help="children's (peak) one-cycle learning rate (default: 3 x --lr)")
    g.add_argument("--batch-size", type=_positive_int, default=128)
    g.add_argument("--include-parent", action="store_true", help="the parent votes too")
    g.add_argument("--combine", choices=["mean", "vote"], default="mean")
    g.add_argument("--ece-bins", type=_positive_int, default=15)


def _run_sparse(args: argparse.Namespace) -> int:
    """``sparse`` and ``stochastic``: one pipeline, the config class picks the children."""
    from .recipes.sparse import SparseRunConfig, print_summary, run_sparse
    from .recipes.stochastic import StochasticRunConfig

    density = args.density
    if density is None and args.partition and args.k >= 2:
        density = 1.0 / args.k
    model = args.model
    if model is None and args.parent and Path(args.parent).is_file():
        from .train import read_meta

        model = read_meta(args.parent).get("model")
    extra = {}
    if args.command == "stochastic":
        extra = {"anneal": args.anneal, "t0": args.t0, "anneal_epochs": args.anneal_epochs,
                 "anneal_schedule": args.schedule}
    cls = StochasticRunConfig if args.command == "stochastic" else SparseRunConfig
    given = dict(  # flags left unset take the config's defaults (one place for them)
        parent_epochs=args.parent_epochs, child_epochs=args.child_epochs, density=density,
        partition=args.partition, augment=args.augment, dense_layers=args.dense_layers,
    )
    cfg = cls(
        dataset=args.dataset, model=model or "lenet-s",
        children=args.children, k=args.k, structured=args.structured, scope=args.scope,
        selection=args.selection, prune_epochs=args.prune_epochs, tune=args.tune,
        optimizer=args.optimizer, lr=args.lr, child_lr=args.child_lr,
        batch_size=args.batch_size, seed=args.seed, subset=args.subset,
        val_fraction=args.val_fraction, data_root=args.data_root,
        child_augment=args.child_augment,
        include_parent=args.include_parent, combine=args.combine, ece_bins=args.ece_bins,
        device=args.device, threads=args.threads, parent=args.parent,
        **{k: v for k, v in given.items() if v is not None}, **extra,
    )
    results = run_sparse(cfg, args.out, progress=not args.quiet)
    print(print_summary(results))
    print(f"results: {args.out}/results.json, report: {args.out}/report.md")
    return 0


def _add_noisy(sub) -> None:
    p = sub.add_parser(
        "noisy",
        help="Noisy Subnetwork Ensemble (no training of children)",
        description="Load (or train) a parent, choose the noise scale σ by a KL trust region, "
        "score a population of mirrored + partitioned noisy subnetwork children on the "
        "validation split, keep the top K, and report parent vs ensemble on test.",
    )
    _add_common(p, default_out="runs/noisy")
    g = p.add_argument_group("parent training (when no --parent is given)")
    g.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--batch-size", type=_positive_int, default=128)
    t = p.add_argument_group("trust region")
    t.add_argument("--target-kl", type=_nonneg_float, default=0.02,
                   help="mean KL(parent || child) to aim for (default 0.02)")
    t.add_argument("--sigma", type=_nonneg_float, default=None,
                   help="noise standard deviation; skips the trust-region search")
    t.add_argument("--search", choices=["grid", "bisect"], default="grid",
                   help="σ × density grid with interpolation (default), or bisection")
    t.add_argument("--probe-size", type=_positive_int, default=1000,
                   help="validation examples used as the KL probe set (default 1000)")
    t.add_argument("--probe-children", type=_positive_int, default=4,
                   help="children averaged per grid cell (default 4)")
    c = p.add_argument_group("children")
    c.add_argument("--density", type=_nonneg_float, default=0.5,
                   help="fraction of weights perturbed (default 0.5; 1/k when partitioned)")
    c.add_argument("--no-mirror", dest="mirrored", action="store_false", help="no −N children")
    c.add_argument("--no-partition", dest="partitioned", action="store_false",
                   help="no anti-mask children (any density allowed)")
    c.add_argument("--structured", action="store_true", help="perturb whole neurons/filters")
    c.add_argument("--scope", choices=["local", "global"], default="local",
                   help="layerwise (default) or one global budget (needs --no-partition)")
    c.add_argument("--mu", type=float, default=0.0, help="noise mean μ (default 0)")
    _add_dense_layers(c, "leaves exactly as the parent's (also in the σ search and evolution)", "none")
    c.add_argument("--population", type=_positive_int, default=16, help="N candidates (default 16)")
    c.add_argument("--top-k", type=_positive_int, default=8, help="K kept (default 8)")
    c.add_argument("--fitness", choices=["accuracy", "nll"], default="accuracy",
                   help="validation fitness for selection (default accuracy)")
    c.add_argument("--include-parent", action="store_true", help="the parent votes too")
    c.add_argument("--combine", choices=["mean", "vote"], default="mean")
    c.add_argument("--ece-bins", type=_positive_int, default=15)
    c.add_argument("--descriptors", default=None, metavar="ENSEMBLE_JSON",
                   help="evaluate a saved ensemble.json (with the --parent it came from)")
    e = p.add_argument_group("evolution (EvoTorch)")
    e.add_argument("--generations", type=_positive_int, default=1,
                   help="1: one population around the parent (default); >1: evolve with --algorithm")
    e.add_argument("--algorithm", choices=["pgpe", "snes"], default="pgpe")
    e.add_argument("--num-actors", type=int, default=0,
                   help="Ray actors evaluating the population (default 0: this process)")
    p.set_defaults(func=_run_noisy)


def _run_noisy(args: argparse.Namespace) -> int:
    from .recipes.noisy import NoisyRunConfig, print_summary, run_noisy

    fields = ["dataset", "model", "parent", "parent_epochs", "lr", "optimizer", "batch_size",
              "target_kl", "sigma", "search", "probe_size", "probe_children", "density", "mirrored",
              "partitioned", "structured", "scope", "mu", "dense_layers", "population", "top_k", "fitness", "generations",
              "algorithm", "num_actors", "descriptors", "include_parent", "combine", "ece_bins",
              "seed", "subset", "val_fraction", "data_root", "augment", "device", "threads"]
    # Flags left unset (None) take the config's defaults.
    cfg = NoisyRunConfig(**{f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    results = run_noisy(cfg, args.out, progress=not args.quiet)
    print(print_summary(results))
    print(f"results: {args.out}/results.json, report: {args.out}/report.md")
    return 0


def _add_rl(sub) -> None:
    rl = sub.add_parser("rl", help="PPO agents (ProcGen, MinAtar, gymnasium) and their noisy ensembles",
                        description="Train PPO agents and evaluate them against their Noisy Subnetwork "
                        "Ensemble policies.")
    rsub = rl.add_subparsers(dest="rl_command", metavar="ACTION", required=True)
    t = rsub.add_parser("train", help="train a PPO agent (resumable)")
    t.add_argument("--env", required=True,
                   help="procgen:<game> (e.g. procgen:starpilot), minatar:<game>, gym:<id> (e.g. gym:CartPole-v1)")
    t.add_argument("--preset", default=None,
                   help="paper | procgen-baseline | minatar | classic | smoke (default: by env family)")
    t.add_argument("--timesteps", type=int, default=None, help="total steps (default: the preset's)")
    t.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: the preset's)")
    t.add_argument("--num-levels", type=int, default=0, help="ProcGen training levels (0 = unlimited)")
    t.add_argument("--start-level", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=100_000)
    t.add_argument("--max-seconds", type=float, default=None,
                   help="stop after this much training time (checkpointed; rerun to resume)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=_positive_int, default=None)
    t.add_argument("--out", required=True, help="agent directory (rerun to resume)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_run_rl_train)
    e = rsub.add_parser("evaluate", help="evaluate an agent, alone or as a noisy ensemble")
    e.add_argument("--agent", required=True, help="directory written by rl train")
    e.add_argument("--env", default=None, help="check the agent was trained on this env")
    e.add_argument("--ensemble", choices=["none", "noisy"], default="noisy")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--levels", choices=["held-out", "train", "all"], default="held-out")
    e.add_argument("--members", type=int, default=8, help="ensemble size K (default 8)")
    e.add_argument("--population", type=int, default=None,
                   help="N > K: keep the top K of N children by validation episodes")
    e.add_argument("--selection-episodes", type=int, default=10)
    e.add_argument("--sigma", type=float, default=None, help="noise σ (default: KL trust region)")
    e.add_argument("--target-kl", type=float, default=0.02)
    e.add_argument("--density", type=float, default=0.2, help="fraction of actor weights perturbed")
    e.add_argument("--no-mirror", dest="mirrored", action="store_false")
    e.add_argument("--perturb", choices=["actor", "head"], default="actor",
                   help="which actor weights the children perturb: all, or the action head only")
    e.add_argument("--probe-steps", type=int, default=1024)
    e.add_argument("--action", choices=["sample", "argmax"], default="sample")
    e.add_argument("--n-envs", type=int, default=4)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    e.add_argument("--threads", type=_positive_int, default=None)
    e.add_argument("--out", required=True)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_run_rl_evaluate)


def _run_rl_train(args: argparse.Namespace) -> int:
    from .agents import RLTrainConfig, train_agent
    from .devices import set_threads
    from .envs import parse_env_id

    preset = args.preset or {"procgen": "paper", "minatar": "minatar", "gym": "classic"}[parse_env_id(args.env).family]
    set_threads(args.threads)
    cfg = RLTrainConfig(env=args.env, preset=preset, timesteps=args.timesteps, seed=args.seed, n_envs=args.n_envs,
                        num_levels=args.num_levels, start_level=args.start_level,
                        checkpoint_every=args.checkpoint_every, max_seconds=args.max_seconds,
                        device=args.device)
    info = train_agent(cfg, args.out, progress=not args.quiet)
    status = "" if info["complete"] else f" of {info['timesteps_target']} (stopped by --max-seconds; rerun to resume)"
    print(f"trained {info['env']} ({info['preset']['name']}) for {info['timesteps_done']} steps{status} -> {args.out}")
    return 0


def _run_rl_evaluate(args: argparse.Namespace) -> int:
    from .recipes.rl import RLEvalConfig, print_summary, run_rl_evaluate

    fields = ["agent", "ensemble", "episodes", "seed", "levels", "env", "members", "population",
              "selection_episodes", "sigma", "target_kl", "density", "mirrored", "perturb", "probe_steps", "action",
              "n_envs", "device", "threads"]
    results = run_rl_evaluate(RLEvalConfig(**{f: getattr(args, f) for f in fields}), args.out,
                              progress=not args.quiet)
    print(print_summary(results))
    print(f"results: {args.out}/results.json, report: {args.out}/report.md")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evo-ensembles",
        description="Turn one trained network into a strong, cheap ensemble.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_sparse(sub)
    _add_stochastic(sub)
    _add_noisy(sub)
    _add_rl(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on bad flags
    try:
        return args.func(args)
    except UserError as e:
        print(f"evo-ensembles: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evo-ensembles: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
