"""PNG plots: written with the Agg canvas, classes without rows tolerated."""

import numpy as np

from classifiers import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_and_classwise_bars(tmp_path):
    classes = ["airport", "bus", "tram"]
    matrix = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])  # bus has no rows
    plots.plot_confusion_matrix(matrix, classes, tmp_path / "cm.png")
    plots.plot_classwise({"1 s segments": {"airport": 0.8, "bus": None, "tram": 0.7},
                          "clips": {"airport": 1.0, "bus": None, "tram": 0.9}},
                         tmp_path / "bars.png")
    for name in ("cm.png", "bars.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000
