"""Human-readable outputs of a run: Markdown tables and figures (matplotlib, headless)."""

from __future__ import annotations

import math
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


def plot_kl_vs_sigma(path: Path, grid: Sequence[dict], target: float | None = None,
                     chosen: float | None = None, title: str = "") -> None:
    """Trust-region curves: mean KL(parent ‖ child) against σ, one line per density (log-log)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for d in sorted({r["density"] for r in grid}):
        rows = sorted((r for r in grid if r["density"] == d and r["sigma"] > 0), key=lambda r: r["sigma"])
        ax.errorbar([r["sigma"] for r in rows], [max(r["kl"], 1e-9) for r in rows],
                    yerr=[r.get("kl_se", 0.0) for r in rows], marker="o", ms=3, capsize=2,
                    label=f"density {d:g}")
    if target is not None:
        ax.axhline(target, color="#444", ls="--", lw=1, label=f"target KL {target:g}")
    if chosen is not None:
        ax.axvline(chosen, color="#d95f02", ls=":", lw=1, label=f"chosen σ {chosen:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("σ")
    ax.set_ylabel("mean KL(parent ‖ child)")
    ax.set_title(title)
    ax.legend(fontsize=7, framealpha=0.8)
    _save(fig, path)


def plot_accuracy_vs_kl(path: Path, series: dict[str, tuple[Sequence[float], Sequence[float]]],
                        parent_acc: float | None = None, title: str = "") -> None:
    """Scatter of child accuracy against KL from the parent, one colour per series."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, (kl, acc) in series.items():
        ax.scatter([max(k, 1e-9) for k in kl], acc, s=12, alpha=0.8, label=label)
    if parent_acc is not None:
        ax.axhline(parent_acc, color="#444", ls="--", lw=1, label=f"parent {parent_acc:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel("mean KL(parent ‖ child)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, framealpha=0.8)
    _save(fig, path)


def _annotate_points(ax, series: dict[str, tuple[Sequence[float], Sequence[float]]], logx: bool) -> None:
    """Each point's name beside it; a label whose point nearly coincides with an earlier one
    goes one line lower, so tied methods stay readable."""
    points = [(name, x, y) for name, (xs, ys) in series.items() for x, y in zip(xs, ys)]
    if not points:
        return
    tx = (lambda v: math.log(v)) if logx else (lambda v: v)
    xs, ys = [tx(x) for _, x, _ in points], [y for _, _, y in points]
    wx, wy = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float]] = []
    for (name, x, y), u, v in zip(points, xs, ys):
        near = sum(abs(u - pu) / wx < 0.05 and abs(v - pv) / wy < 0.03 for pu, pv in placed)
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3 - 9 * near), textcoords="offset points")
        placed.append((u, v))


def plot_lines(path: Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str,
               ylabel: str, title: str = "", logx: bool = False, markers_only: bool = False) -> None:
    """One line (or point set) per name: ``series[name] = (xs, ys)`` (accuracy vs severity per
    method, NLL vs training FLOPs)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, "o" if markers_only else "o-", ms=4, label=name)
    if markers_only:
        _annotate_points(ax, series, logx)
    if logx:
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

        ax.set_xscale("log")
        xs_all = [x for xs, _ in series.values() for x in xs]
        ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if min(xs_all) / 1.5 <= t <= max(xs_all) * 1.5]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if not markers_only:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, path)
