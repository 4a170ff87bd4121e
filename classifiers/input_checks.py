"""Input checks and label handling shared by the estimators: arrays, labels, columns, seeds."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray


def check_features(
    X: ArrayLike, *, dtype: DTypeLike | None = None, name: str = "X"
) -> NDArray[Any]:
    """Return ``X`` as a C-contiguous 2-D float array (float32 unless float64 was given or asked).

    Parameters
    ----------
    X : array-like, shape (n_rows, dim)
    dtype : numpy dtype or None
        Force this dtype; by default float64 input stays float64 and anything else becomes float32.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, dim), got shape {X.shape}")
    if dtype is None:
        dtype = np.float64 if X.dtype == np.float64 else np.float32
    X = np.ascontiguousarray(X, dtype=dtype)
    if X.size and not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"{name} has non-finite values (first in row {bad})")
    return X


def encode_labels(y, *, n_rows=None):
    """Return ``(classes, y_index)``: sorted unique labels and each row's index into them.

    Raises ValueError when fewer than two classes are present or the length differs from ``n_rows``.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise ValueError(f"y has {len(y)} labels for {n_rows} rows")
    classes, y_index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"need at least 2 classes to fit, got {list(classes)}")
    return classes, y_index.astype(np.int64)


def index_labels(y, classes, *, name="y"):
    """Return each label's index into ``classes``; ValueError naming the first unknown label."""
    y = np.asarray(y)
    position = np.searchsorted(classes, y)
    position = np.clip(position, 0, len(classes) - 1)
    unknown = classes[position] != y
    if unknown.any():
        raise ValueError(f"{name} holds label {y[unknown][0]!r} that training never saw")
    return position.astype(np.int64)


def align_proba(proba, source_classes, target_classes):
    """Return ``proba`` re-ordered into the columns of ``target_classes`` (0 for classes absent).

    Parameters
    ----------
    proba : ndarray, shape (n_rows, len(source_classes))
    source_classes, target_classes : sequences of labels; every source class must be a target class.
    """
    column = {label: j for j, label in enumerate(np.asarray(target_classes).tolist())}
    missing = [c for c in np.asarray(source_classes).tolist() if c not in column]
    if missing:
        raise ValueError(f"class {missing[0]!r} is not among the target classes")
    out = np.zeros((proba.shape[0], len(column)), dtype=proba.dtype)
    out[:, [column[c] for c in np.asarray(source_classes).tolist()]] = proba
    return out


def random_seed(random_state):
    """Return an int seed from ``random_state`` (None, int or numpy Generator/RandomState)."""
    if random_state is None:
        return int(np.random.randint(2**31 - 1))
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(random_state.randint(2**31 - 1))


def column_block(X, columns):
    """Return the columns of ``X`` named by ``columns`` (a slice, or a sequence of indices)."""
    if columns is None:
        return X
    return X[:, columns]
