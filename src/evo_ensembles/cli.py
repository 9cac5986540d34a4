"""Command line: ``evo-ensembles <command> [flags]``. It only registers runs.

Each command is one :class:`Command`: a config class (its fields generate the flags, see
:mod:`evo_ensembles.config`) and a recipe that runs it. Adding a command is adding its config,
its recipe and one entry in :data:`COMMANDS`. Configs are imported only for the command being
parsed and recipes only when it runs, so ``evo-ensembles --help`` imports no torch.

Errors a user can cause print one line (``error: ...``) and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._version import __version__
from .errors import UserError


def _print_results(summary: str) -> Callable[[Any, str], None]:
    """Print a recipe's summary table (``module:function``) and where the files are."""

    def show(results: Any, out: str) -> None:
        module, name = summary.split(":")
        print(getattr(importlib.import_module(module), name)(results))
        print(f"results: {out}/results.json, report: {out}/report.md")

    return show


@dataclass(frozen=True)
class Command:
    """One CLI command: ``config_path`` (``module:Class``) builds from the flags, ``run`` is
    ``module:function`` called as ``run(config, out, progress=...)``, ``show`` prints what it returned."""

    name: str
    config_path: str
    run: str
    help: str
    description: str
    show: Callable[[Any, str], None]
    default_out: str | None = None
    out_help: str = "output directory"
    out_required: bool = True

    @property
    def config(self) -> type:
        """The config class (imported now)."""
        module, name = self.config_path.split(":")
        cls: type = getattr(importlib.import_module(module), name)
        return cls


def _show_analysis(record: dict, out: str | None) -> None:
    from .recipes.analyze import print_summary

    print(print_summary(record))
    where = out or f"{record['run_dir']}/analysis"
    print(f"analysis: {where}/analysis.json, report: {where}/analysis.md")


def _show_trained(info: dict, out: str) -> None:
    status = (
        ""
        if info["complete"]
        else f" of {info['timesteps_target']} (stopped by --max-seconds; rerun to resume)"
    )
    print(
        f"trained {info['env']} ({info['preset']['name']}) for {info['timesteps_done']} steps{status} -> {out}"
    )


COMMANDS = [
    Command(
        "sparse",
        "evo_ensembles.config.sparse:SparseRunConfig",
        "evo_ensembles.recipes.sparse:run_sparse",
        "Sparse Subnetwork Ensemble (prune and tune)",
        "Train (or load) a parent, prune children to random or partitioned subnetworks, tune "
        "them briefly, and report parent vs ensemble.",
        _print_results("evo_ensembles.recipes.sparse:print_summary"),
        "runs/sparse",
    ),
    Command(
        "stochastic",
        "evo_ensembles.config.sparse:StochasticRunConfig",
        "evo_ensembles.recipes.stochastic:run_stochastic",
        "Stochastic Subnetwork Ensemble (annealed random masks while tuning)",
        "The sparse pipeline, but each child tunes with a fresh Bernoulli(P) mask on every "
        "forward pass, P annealed to its target subnetwork over --anneal-epochs; afterwards it "
        "is an ordinary pruned child.",
        _print_results("evo_ensembles.recipes.sparse:print_summary"),
        "runs/stochastic",
    ),
    Command(
        "noisy",
        "evo_ensembles.config.noisy:NoisyRunConfig",
        "evo_ensembles.recipes.noisy:run_noisy",
        "Noisy Subnetwork Ensemble (no training of children)",
        "Load (or train) a parent, choose the noise scale σ by a KL trust region, score a "
        "population of mirrored + partitioned noisy subnetwork children on the validation "
        "split, keep the top K, and report parent vs ensemble on test.",
        _print_results("evo_ensembles.recipes.noisy:print_summary"),
        "runs/noisy",
    ),
    Command(
        "imagenet",
        "evo_ensembles.config.imagenet:ImageNetRunConfig",
        "evo_ensembles.recipes.imagenet:run_imagenet",
        "Noisy Subnetwork Ensemble of a torchvision model on ImageNet val (Table 4.1)",
        "Split the ILSVRC-2012 validation images 40k test / 10k validation (or reuse --split), decode "
        "them once, search σ by the KL trust region on 1,000 validation images, keep the top 8 of 16 "
        "noisy children by validation accuracy, and report parent vs ensemble on test.",
        _print_results("evo_ensembles.recipes.noisy:print_summary"),
        "runs/imagenet",
    ),
    Command(
        "baseline",
        "evo_ensembles.config.baseline:BaselineRunConfig",
        "evo_ensembles.recipes.baseline:run_baseline",
        "a peer method (MC Dropout, Snapshot, FGE, TreeNet, BatchEnsemble, MIMO, FreeTickets, ...)",
        "Train one peer ensemble method at a stated budget (--epochs of one model) and report it like "
        "the subnetwork methods, with its training FLOPs relative to one dense model.",
        _print_results("evo_ensembles.recipes.baseline:print_summary"),
        "runs/baseline",
    ),
    Command(
        "analyze",
        "evo_ensembles.config.analyze:AnalyzeConfig",
        "evo_ensembles.recipes.analyze:run_analyze",
        "why the ensemble works: t-SNE, feature visualisation, saliency, hashes, loss landscape",
        "Analyse a finished run directory (sparse, stochastic, noisy, imagenet, baseline or rl evaluate): "
        "t-SNE of the members' outputs, feature visualisations of one unit in every member, SmoothGrad "
        "saliency, perceptual-hash and RMSE distances between members, and the loss landscape of parent, "
        "pruned child and tuned child. Resumable; writes RUN_DIR/analysis/.",
        _show_analysis,
        out_help="output directory (default RUN_DIR/analysis)",
        out_required=False,
    ),
    Command(
        "rl train",
        "evo_ensembles.config.rl:RLTrainConfig",
        "evo_ensembles.recipes.rl:run_rl_train",
        "train a PPO agent (resumable)",
        "Train a PPO agent; rerun the same command to resume.",
        _show_trained,
        out_help="agent directory (rerun to resume)",
    ),
    Command(
        "rl evaluate",
        "evo_ensembles.config.rl:RLEvalConfig",
        "evo_ensembles.recipes.rl:run_rl_evaluate",
        "evaluate an agent, alone or as a noisy ensemble",
        "Evaluate a trained agent and its Noisy Subnetwork Ensemble policy on the same episodes "
        "under the same action rule.",
        _print_results("evo_ensembles.recipes.rl:print_summary"),
    ),
]
GROUPS = {
    "rl": (
        "PPO agents (ProcGen, MinAtar, gymnasium) and their noisy ensembles",
        "Train PPO agents and evaluate them against their Noisy Subnetwork Ensemble policies.",
    )
}


def _add_command(sub, cmd: Command, *, flags: bool = True) -> None:
    p = sub.add_parser(cmd.name.split()[-1], help=cmd.help, description=cmd.description)
    if not flags:  # listed only: its flags are added when it is the command being parsed
        return
    from .config import add_config_arguments

    add_config_arguments(p, cmd.config)
    r = p.add_argument_group("output")
    if cmd.default_out:
        r.add_argument(
            "--out", default=cmd.default_out, help=f"{cmd.out_help} (default {cmd.default_out})"
        )
    else:
        r.add_argument("--out", required=cmd.out_required, default=None, help=cmd.out_help)
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=lambda args: _run(cmd, args))


def _run(cmd: Command, args: argparse.Namespace) -> int:
    from .config import config_from_args

    cfg = config_from_args(cmd.config, args)  # validated here; errors name the flag
    if args.out is not None:  # every command: an --out that cannot be made fails before any work
        from .run_folder import check_output_dir

        check_output_dir(args.out)
    module, name = cmd.run.split(":")
    results = getattr(importlib.import_module(module), name)(cfg, args.out, progress=not args.quiet)
    cmd.show(results, args.out)
    return 0


def _selected(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (``"sparse"``, ``"rl train"``), or ``None`` when it names none."""
    words = [a for a in argv if not a.startswith("-")][:2]
    for cmd in COMMANDS:
        if cmd.name.split() == words[: len(cmd.name.split())]:
            return cmd.name
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. With ``argv``, only the command it names gets its flags (so the others'
    configs, and torch, are not imported); without, every command does."""
    only = None if argv is None else _selected(argv)
    parser = argparse.ArgumentParser(
        prog="evo-ensembles",
        description="Turn one trained network into a strong, cheap ensemble.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, Any] = {}
    for cmd in COMMANDS:
        *group, _ = cmd.name.split()
        target = sub
        if group:
            if group[0] not in groups:
                help_, description = GROUPS[group[0]]
                g = sub.add_parser(group[0], help=help_, description=description)
                groups[group[0]] = g.add_subparsers(
                    dest=f"{group[0]}_command", metavar="ACTION", required=True
                )
            target = groups[group[0]]
        _add_command(target, cmd, flags=argv is None or cmd.name == only)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
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
