"""Confusion matrix and class-wise bar plot as PNG files (matplotlib's Agg canvas, no pyplot state).

The files are written by :func:`featurestore.outputs.write_figure`: under a fresh temporary name
renamed into place, never through a symbolic link.
"""

import numpy as np

from featurestore import outputs


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_confusion_matrix(matrix, classes, path, *, title="Confusion matrix", within=None):
    """Write a row-normalised confusion matrix (counts annotated) to ``path`` (PNG).

    Parameters
    ----------
    matrix : array-like, shape (n_classes, n_classes), counts; rows = true class
    classes : sequence of str
    path : str or path-like
    within : str or path-like, optional
        The folder (a run directory) ``path`` lies in: no folder between them may be a link.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (its first axes holds the shares as an image).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(matrix / matrix.sum(axis=1, keepdims=True))
    figure = _figure(8, 7)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, labels=classes, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row in range(len(classes)):
        for col in range(len(classes)):
            if matrix[row, col]:
                axes.text(
                    col,
                    row,
                    f"{int(matrix[row, col])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[row, col] > 0.5 else "black",
                )
    figure.tight_layout()
    outputs.write_figure(path, figure, format="png", within=within)
    return figure


def plot_classwise(per_class, path, *, title="Class-wise accuracy", within=None):
    """Write grouped bars of class-wise accuracy (segment and clip level) to ``path`` (PNG).

    Parameters
    ----------
    per_class : dict ``{series name: {class: accuracy or None}}``, e.g.
        ``{"1 s segments": {...}, "10 s clips": {...}}``
    path : str or path-like
    within : str or path-like, optional
        The folder (a run directory) ``path`` lies in: no folder between them may be a link.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (one bar container per series, in order).
    """
    series = list(per_class)
    classes = list(per_class[series[0]])
    figure = _figure(10, 4.5)
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    positions = np.arange(len(classes))
    for i, name in enumerate(series):
        values = [np.nan if per_class[name][c] is None else per_class[name][c] for c in classes]
        axes.bar(positions + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    axes.set_xticks(positions, labels=classes, rotation=45, ha="right")
    axes.set_ylim(0.0, 1.15)
    axes.set_yticks(np.linspace(0.0, 1.0, 6))
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="upper center", ncol=len(series), frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    outputs.write_figure(path, figure, format="png", within=within)
    return figure
