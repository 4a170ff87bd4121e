"""PNG plots: what is drawn equals the numbers given (checked on the figure and the decoded PNG)."""

import numpy as np
from matplotlib.image import imread

from classifiers import plots


def test_confusion_matrix_draws_row_shares_and_counts(tmp_path):
    rng = np.random.default_rng()
    classes = ["airport", "bus", "park", "tram"]
    matrix = rng.integers(0, 20, size=(4, 4))
    matrix[1] = 0  # bus has no rows: shares 0, no text
    figure = plots.plot_confusion_matrix(matrix, classes, tmp_path / "cm.png", title="T")
    axes = figure.axes[0]
    totals = matrix.sum(axis=1, keepdims=True)
    expected = np.divide(matrix, totals, out=np.zeros((4, 4)), where=totals > 0)
    np.testing.assert_allclose(axes.images[0].get_array(), expected)
    drawn = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axes.texts
    }
    assert drawn == {(r, c): str(matrix[r, c]) for r in range(4) for c in range(4) if matrix[r, c]}
    assert [t.get_text() for t in axes.get_xticklabels()] == classes
    assert axes.get_title() == "T"
    pixels = imread(tmp_path / "cm.png")
    assert pixels.shape[:2] == (700, 800) and pixels.std() > 0.05  # 8 x 7 in at 100 dpi


def test_classwise_bars_have_the_accuracies(tmp_path):
    per_class = {
        "1 s segments": {"airport": 0.8, "bus": None, "tram": 0.7},
        "clips": {"airport": 1.0, "bus": None, "tram": 0.9},
    }
    figure = plots.plot_classwise(per_class, tmp_path / "bars.png")
    axes = figure.axes[0]
    assert len(axes.containers) == 2
    for container, values in zip(axes.containers, per_class.values()):
        heights = [bar.get_height() for bar in container]
        expected = [np.nan if v is None else v for v in values.values()]
        np.testing.assert_allclose(heights, expected)
    assert [t.get_text() for t in axes.get_legend().get_texts()] == list(per_class)
    assert imread(tmp_path / "bars.png").shape[:2] == (450, 1000)
