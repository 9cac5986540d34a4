"""Config of the derived test-set generators (``python -m evo_ensembles.data.corruptions`` and
``python -m evo_ensembles.data.ood``): its fields generate their flags like every command's.

Examples:
    >>> cfg = GenerateConfig(name="fashion-mnist", n=100)
    >>> cfg.data_root, cfg.seed, cfg.quiet
    (None, 0, False)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..checks import check_nonneg_int, check_positive_int
from ..errors import UserError, first_line
from .cli import add_config_arguments, config_from_args
from .fields import RunConfig, option


@dataclass(kw_only=True)
class GenerateConfig(RunConfig):
    """Which clean set a test set is derived from, where, how many images, and its seed."""

    name: str = option(help="the clean data set it is derived from (fashion-mnist or mnist)", flag="name")
    data_root: str | None = option(
        None, "data root holding the clean set", aliases=("--root",),
        default_help="$EVO_ENSEMBLES_DATA_ROOT, else /usr/share/datasets")
    seed: int = option(0, "seed of every random draw", check=check_nonneg_int)
    n: int | None = option(None, "fewer images: the first N test images (corrupted sets), at most N per set "
                           "(OOD sets)", check=check_positive_int, default_help="all")
    threads: int | None = option(None, "torch CPU threads", check=check_positive_int, default_help="all cores")
    quiet: bool = option(False, "no progress bar", aliases=("--no-progress",))



def generator_main(argv: list[str] | None, *, prog: str, description: str, generate: Callable[..., Path]) -> int:
    """The command of a derived test set's generator (``generate(name, root, seed=, n=,
    progress=)``, e.g. :func:`generate_corrupted`), its flags generated from
    :class:`GenerateConfig`: one line and exit 2 on a user error."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(p, GenerateConfig)
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        cfg = config_from_args(GenerateConfig, args)
        if cfg.threads is not None:
            import torch

            torch.set_num_threads(cfg.threads)
        out = generate(cfg.name, cfg.data_root, seed=cfg.seed, n=cfg.n, progress=not cfg.quiet)
    except UserError as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    print(f"{out} ({time.perf_counter() - start:.1f} s)")
    return 0


__all__ = ["GenerateConfig", "generator_main"]
