"""Human-readable outputs of a run: Markdown tables and figures (matplotlib, headless)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from .run_folder import atomic_write  # noqa: E402


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
    try:  # the temporary name keeps the suffix, which tells matplotlib the format
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


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


def plot_reliability(path: Path, curves: dict[str, dict[str, list[float]]], title: str = "") -> None:
    """Reliability diagrams side by side, one panel per prediction (e.g. parent, parent + T,
    ensemble, ensemble + T): accuracy against mean confidence per bin
    (:func:`evo_ensembles.metrics.reliability_bins`), bar widths by bin, the diagonal for reference."""
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.4, 2.9), sharey=True, squeeze=False)
    for ax, (label, b) in zip(axes[0], curves.items()):
        total = max(1, sum(b["count"]))
        gap = sum(c * abs(a - f) for c, a, f in zip(b["count"], b["accuracy"], b["confidence"])) / total
        ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
        ax.bar(b["confidence"], b["accuracy"], width=0.05, color="#8da0cb", edgecolor="#445", lw=0.5)
        ax.scatter(b["confidence"], b["accuracy"], s=[8 + 80 * c / total for c in b["count"]], color="#d95f02",
                   zorder=3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{label}\nECE {gap:.4f}", fontsize=9)
        ax.set_xlabel("confidence")
    axes[0][0].set_ylabel("accuracy")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


OOD_REPORT_SCORES = ("max_prob", "entropy", "mutual_information", "energy")


SUMMARY_HEADERS = ["model", "accuracy", "NLL", "ECE", "Brier"]


def summary_rows(results: dict, ensemble_label: str) -> list[list[object]]:
    """Parent (when there is one) and ensemble rows, each followed by its temperature-scaled
    row: the table every classifier run prints (:data:`SUMMARY_HEADERS`)."""
    rows = []
    for who, label in (("parent", "parent"), ("ensemble", ensemble_label)):
        m = results.get(who)
        if m:
            rows += [[label, m["accuracy"], m["nll"], m["ece"], m["brier"]], *calibrated_rows(results, who)]
    return rows


def calibrated_rows(results: dict, who: str) -> list[list[object]]:
    """The summary row (accuracy, NLL, ECE, Brier) of the temperature-scaled ``who``
    (``"parent"`` or ``"ensemble"``), as a list of zero or one rows."""
    c = (results.get("calibrated") or {}).get(who)
    if not c:
        return []
    t = c["test"]
    return [[f"{who} + T (T {c['temperature']:.3f})", t["accuracy"], t["nll"], t["ece"], t["brier"]]]


def uncertainty_sections(results: dict) -> list[str]:
    """Markdown sections of a run's ``calibrated``, ``ood`` and ``selective`` entries
    (empty when the run has none), and the reliability figure."""
    cal = results.get("calibrated")
    if not cal:
        return []
    parts = ["## Calibration (temperature fit on validation NLL)",
             f"{cal['method']}. Validation examples: {cal['validation_examples']}. Test-split scores; "
             "adaptive ECE uses equal-mass bins."]
    rows = []
    for who in ("parent", "ensemble"):
        c, raw = cal.get(who), results.get(who)
        if not c or not raw:
            continue
        t = c["test"]
        fb = c["fit"].get("fallback")
        rows.append([who, raw["nll"], t["nll"], raw["ece"], t["ece"], raw.get("adaptive_ece", "-"),
                     t["adaptive_ece"], raw["accuracy"], t["accuracy"],
                     f"{c['temperature']:.3f}" + (f" ({fb})" if fb else "")])
    parts.append(markdown_table(["", "NLL", "NLL + T", "ECE", "ECE + T", "aECE", "aECE + T", "acc", "acc + T",
                                 "T"], rows))
    parts.append("![reliability](figures/reliability.png)")
    sel = results.get("selective") or {}
    srows = [[who, s["aurc"], s["augrc"], s["risk_at_90"]] for who, s in (("parent", sel.get("parent")),
                                                                           ("ensemble", sel.get("ensemble"))) if s]
    if srows:
        parts += ["## Selective classification", f"Ranked by {sel['ranked_by']}; lower is better.",
                  markdown_table(["", "AURC", "AUGRC", "risk at 90 % coverage"], srows)]
    ood = results.get("ood") or {}
    sets = ood.get("sets") or {}
    parts.append("## Out-of-distribution detection")
    if not sets:
        parts.append("No OOD set was scored (make them with `python -m evo_ensembles.data.ood "
                     f"{results.get('config', {}).get('dataset', 'fashion-mnist')}`).")
        return parts
    parts.append(f"In-distribution: {ood['in_distribution']}. {ood['convention']}.")
    orows = []
    for name, d in sets.items():
        for who in ("parent", "ensemble"):
            for score in OOD_REPORT_SCORES:
                m = (d.get(who) or {}).get(score)
                if m:
                    orows.append([name, d["examples"], who, score, m["auroc"], m["aupr_in"], m["aupr_out"], m["fpr95"]])
    parts.append(markdown_table(["set", "N", "", "score", "AUROC", "AUPR-In", "AUPR-Out", "FPR95"], orows))
    return parts


def write_uncertainty_figures(figs: Path, results: dict) -> None:
    """``figures/reliability.png`` (parent and ensemble, before and after the temperature)."""
    cal = results.get("calibrated")
    if cal and cal.get("reliability"):
        cfg = results.get("config", {})
        plot_reliability(figs / "reliability.png", cal["reliability"],
                         title=f"{results.get('method', '')}: {cfg.get('model', '')} on {cfg.get('dataset', '')} "
                               "(test split)")
