"""Human-readable outputs of a run: Markdown tables and figures (matplotlib, headless)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402


def fmt(value: object, digits: int = 4) -> str:
    """Numbers to fixed digits; everything else as text."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table for the terminal."""
    cells = [list(headers)] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def plot_member_accuracy(
    path: Path, member_acc: Sequence[float], parent_acc: float | None, ensemble_acc: float,
    title: str = "",
) -> None:
    """Bar per member, with the parent and ensemble accuracies as horizontal lines."""
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(member_acc) + 2), 3.2))
    ax.bar(range(1, len(member_acc) + 1), member_acc, color="#8da0cb", label="members")
    if parent_acc is not None:
        ax.axhline(parent_acc, color="#444", ls="--", label=f"parent {parent_acc:.4f}")
    ax.axhline(ensemble_acc, color="#d95f02", label=f"ensemble {ensemble_acc:.4f}")
    lo = min([*member_acc, ensemble_acc] + ([parent_acc] if parent_acc is not None else []))
    hi = max([*member_acc, ensemble_acc] + ([parent_acc] if parent_acc is not None else []))
    pad = max(0.005, 0.25 * (hi - lo))
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("member")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best", framealpha=0.8)
    _save(fig, path)


def plot_heatmap(path: Path, matrix: Sequence[Sequence[float]], title: str, label: str) -> None:
    """An M×M matrix as a heatmap with values printed in the cells (when small enough)."""
    m = len(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * m, 0.8 + 0.45 * m))
    im = ax.imshow(matrix, cmap="viridis")
    if m <= 12:
        for i in range(m):
            for j in range(m):
                ax.text(j, i, f"{matrix[i][j]:.3f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xticks(range(m), [str(i + 1) for i in range(m)])
    ax.set_yticks(range(m), [str(i + 1) for i in range(m)])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    _save(fig, path)
