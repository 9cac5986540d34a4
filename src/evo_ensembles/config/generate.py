"""Config of the derived test-set generators (``python -m evo_ensembles.data.corruptions`` and
``python -m evo_ensembles.data.ood``): its fields generate their flags like every command's.

Example:
    >>> cfg = GenerateConfig(name="fashion-mnist", n=100)
    >>> cfg.data_root, cfg.seed, cfg.quiet
    (None, 0, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_nonneg_int, check_positive_int
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


__all__ = ["GenerateConfig"]
