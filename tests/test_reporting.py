"""Figures are written atomically as PNGs."""

from evo_ensembles.reporting import plot_lines


def test_plot_lines_writes_a_png_with_and_without_a_log_axis(tmp_path):
    series = {"a": ([0.2, 1.0], [0.3, 0.25]), "b": ([4.4], [0.31])}
    plot_lines(tmp_path / "lin.png", series, xlabel="x", ylabel="y")
    plot_lines(tmp_path / "log.png", series, xlabel="x", ylabel="y", logx=True, markers_only=True)
    for name in ("lin.png", "log.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lin.png", "log.png"]  # no temporary files left
