"""Config of the ``analyze`` command: which parts to draw for a run directory, and how.

Examples:
    >>> cfg = AnalyzeConfig(run_dir="runs/sparse", parts=("tsne", "hashes"))
    >>> cfg.parts, cfg.steps
    (('tsne', 'hashes'), 1024)
    >>> AnalyzeConfig(run_dir="runs/sparse", parts=("tsne", "colour"))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.UserError: --parts: unknown part 'colour'; choose from tsne, features, saliency, hashes,
        landscape
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ..checks import check_known, check_nonneg_int, check_positive, check_positive_int
from ..errors import UserError
from .fields import option
from .shared import RuntimeFields

PARTS = ("tsne", "features", "saliency", "hashes", "landscape")


def part_list(text: str) -> tuple[str, ...]:
    """``tsne,hashes`` → ("tsne", "hashes")."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"expected parts such as tsne,hashes; got {text!r}")
    return items


def _check_parts(value: Any, flag: str) -> None:
    for p in value:
        try:
            check_known(p, PARTS, "part")
        except UserError as e:
            raise UserError(f"{flag}: {e}") from None


@dataclass(kw_only=True)
class AnalyzeConfig(RuntimeFields):
    """Settings of ``evo-ensembles analyze RUN_DIR``; each field is one CLI flag."""

    run_dir: str = option(help="a finished run directory written by this toolkit", flag="run_dir",
                          metavar="RUN_DIR", group="run directory")
    parts: tuple[str, ...] = option(PARTS, "comma-separated parts: " + ", ".join(PARTS), parse=part_list,
                                    check=_check_parts, metavar="PARTS", group="parts")
    examples: int = option(500, "t-SNE: test examples embedded per member", check=check_positive_int,
                           group="parts")
    layer: str | None = option(None, "feature visualisation: the layer (a module name, e.g. conv2)",
                               group="parts", default_help="the last convolution")
    channel: int = option(0, "feature visualisation: the unit (channel) of --layer", check=check_nonneg_int,
                          group="parts")
    steps: int = option(1024, "feature visualisation: Adam steps (lr 0.05)", check=check_positive_int,
                        group="parts")
    images: int = option(4, "saliency: test images per member", check=check_positive_int, group="parts")
    grid: int = option(21, "loss landscape: points per axis", check=check_positive_int, group="parts")
    span: float = option(1.0, "loss landscape: alpha and beta range over [-span, span]", check=check_positive,
                         group="parts")
    landscape_examples: int = option(1000, "loss landscape: training examples the loss is measured on",
                                     check=check_positive_int, group="parts")
    child: int = option(0, "loss landscape: which child (its pruned and tuned versions)", check=check_nonneg_int,
                        group="parts")

    def resolve(self) -> None:
        super().resolve()
        self.parts = tuple(self.parts)


__all__ = ["PARTS", "AnalyzeConfig", "part_list"]
