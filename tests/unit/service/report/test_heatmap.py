"""Heatmaps at the calmest and the most correlated snapshot, from either source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import AxesImage

from service.report.heatmap import extreme_matrices, heatmap_figure
from service.report.load import load_replay
from tests.unit.service.report.outputs import (
    SYMBOLS,
    T0,
    correlations_frame,
    snapshot_frame,
    write_output,
)

MINUTE = dt.timedelta(minutes=1)
AVERAGES = [None, 0.4, 0.2, 0.7, 0.9, 0.6, 0.2]


def test_matrices_come_from_the_snapshot_columns_at_the_extremes(tmp_path: Path) -> None:
    """Lowest average first (the earlier of two ties), highest second, unit diagonal."""
    out = load_replay(write_output(tmp_path / "out", snapshot_frame(AVERAGES)))
    found = extreme_matrices(out)
    assert not isinstance(found, str)
    calm, hot = found
    assert (calm.ts, calm.avg_correlation) == (T0 + 2 * MINUTE, 0.2)
    assert (hot.ts, hot.avg_correlation) == (T0 + 4 * MINUTE, 0.9)
    assert calm.symbols == SYMBOLS
    expected = np.full((3, 3), 0.9) + 0.1 * np.eye(3)
    np.testing.assert_allclose(hot.values, expected)


def test_within_a_range_the_extremes_are_those_of_the_range(tmp_path: Path) -> None:
    out = write_output(tmp_path / "out", snapshot_frame(AVERAGES))
    found = extreme_matrices(load_replay(out, T0 + 5 * MINUTE))
    assert not isinstance(found, str)
    assert [m.avg_correlation for m in found] == [0.2, 0.6]


def test_without_every_pair_the_recorded_matrix_stands_in(tmp_path: Path) -> None:
    """A universe above 30 symbols keeps only watch pairs in snapshots.parquet: the matrices
    come from correlations.parquet when the range holds the run's extremes, and otherwise the
    report says why there is no heatmap."""
    frame = snapshot_frame(AVERAGES).drop("corr:AAA:CCC")
    out = write_output(tmp_path / "out", frame)
    calm_matrix = np.array([[1.0, 0.1, 0.3], [0.1, 1.0, 0.2], [0.3, 0.2, 1.0]])
    hot_matrix = np.array([[1.0, 0.95, 0.85], [0.95, 1.0, 0.9], [0.85, 0.9, 1.0]])
    recorded = correlations_frame(T0 + 2 * MINUTE, "calmest", calm_matrix, SYMBOLS).vstack(
        correlations_frame(T0 + 4 * MINUTE, "most_correlated", hot_matrix, SYMBOLS)
    )
    recorded.write_parquet(out / "correlations.parquet")
    found = extreme_matrices(load_replay(out))
    assert not isinstance(found, str)
    np.testing.assert_array_equal(found[0].values, calm_matrix)
    np.testing.assert_array_equal(found[1].values, hot_matrix)
    reason = extreme_matrices(load_replay(out, T0 + 5 * MINUTE))
    assert isinstance(reason, str)
    assert "30 symbols" in reason
    assert "--from/--to" in reason


def test_a_range_before_warm_up_has_no_heatmap(tmp_path: Path) -> None:
    out = write_output(tmp_path / "out", snapshot_frame([None, None, 0.5]))
    reason = extreme_matrices(load_replay(out, T0, T0 + 2 * MINUTE))
    assert isinstance(reason, str)
    assert "not warm" in reason


def test_a_pair_not_ready_is_blank_not_a_number(tmp_path: Path) -> None:
    frame = snapshot_frame([0.2, 0.9])
    frame = frame.with_columns(frame["corr:AAA:BBB"].scatter(0, None))
    found = extreme_matrices(load_replay(write_output(tmp_path / "out", frame)))
    assert not isinstance(found, str)
    assert np.isnan(found[0].values[0, 1])
    assert np.isnan(found[0].values[1, 0])


def test_both_heatmaps_share_one_colour_scale_and_one_colour_bar(tmp_path: Path) -> None:
    found = extreme_matrices(load_replay(write_output(tmp_path / "out", snapshot_frame(AVERAGES))))
    assert not isinstance(found, str)
    figure = heatmap_figure(*found)
    images = [a for ax in figure.axes for a in ax.get_children() if isinstance(a, AxesImage)]
    assert len(images) == 2
    assert {(i.norm.vmin, i.norm.vmax) for i in images} == {(-1.0, 1.0)}
    assert images[0].norm is images[1].norm
    assert len(figure.axes) == 3  # two heatmaps and the colour bar
    assert [ax.get_title().splitlines()[0][:8] for ax in figure.axes[:2]] == [
        "calmest:",
        "most cor",
    ]


@pytest.mark.parametrize("n", [4, 40])
def test_annotations_only_where_they_fit(tmp_path: Path, n: int) -> None:
    symbols = tuple(f"S{i:02d}" for i in range(n))
    out = write_output(tmp_path / "out", snapshot_frame([0.2, 0.9], symbols=symbols))
    found = extreme_matrices(load_replay(out))
    assert not isinstance(found, str)
    texts = [t for ax in heatmap_figure(*found).axes[:2] for t in ax.texts]
    assert len(texts) == (2 * n * n if n <= 12 else 0)
