"""Helpers shared by the estimators: input checks, labels, validation data, aligned probabilities.

Every estimator of this package follows one fit signature::

    fit(X, y, *, groups=None, eval_set=None)

``groups`` (one location per row) makes any internal validation split or cross-validation grouped
(no location on both sides); ``eval_set=(X_val, y_val)`` supplies validation data explicitly (the
pipelines pass the location-grouped 10% split). Estimators that need no validation data accept and
ignore both, so fusion wrappers can pass them through to any estimator.
"""

import numpy as np

from classifiers import splits


def check_features(X, *, dtype=None, name="X"):
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


def validation_data(X, y_index, *, groups=None, eval_set=None, classes=None,
                    validation_fraction=0.0, random_state=None):
    """Return ``(X_fit, y_fit, X_val, y_val)`` (the last two None without validation data).

    ``eval_set`` wins; otherwise ``validation_fraction`` > 0 holds out that fraction of rows,
    grouped by ``groups`` (whole locations) when given, else stratified by class.
    """
    if eval_set is not None:
        X_val, y_val = eval_set
        X_val = check_features(X_val, dtype=X.dtype, name="eval_set X")
        return X, y_index, X_val, index_labels(y_val, classes, name="eval_set y")
    rows = validation_rows(y_index, groups=groups, validation_fraction=validation_fraction,
                           random_state=random_state)
    if rows is None:
        return X, y_index, None, None
    fit_rows, val_rows = rows
    return X[fit_rows], y_index[fit_rows], X[val_rows], y_index[val_rows]


def start_fit(estimator, X, y, *, groups=None, eval_set=None):
    """The common start of an estimator's ``fit`` that holds out validation rows.

    Checks ``X`` (as float32), sets ``estimator.classes_``, splits off the validation rows
    (``estimator.validation_fraction``, see :func:`validation_data`) and fits
    ``estimator.scaler_`` on the remaining rows when ``estimator.standardize``.

    Returns
    -------
    X_fit, y_fit, X_val, y_val : standardized arrays (the last two None without validation data)
    seed : int
    """
    from classifiers.preprocessing import ZScore, maybe_standardize

    X = check_features(X, dtype=np.float32)
    estimator.classes_, y_index = encode_labels(y, n_rows=len(X))
    seed = random_seed(estimator.random_state)
    X_fit, y_fit, X_val, y_val = validation_data(
        X, y_index, groups=groups, eval_set=eval_set, classes=estimator.classes_,
        validation_fraction=estimator.validation_fraction, random_state=seed)
    estimator.scaler_ = ZScore().fit(X_fit) if estimator.standardize else None
    X_fit = maybe_standardize(X_fit, estimator.scaler_)
    X_val = None if X_val is None else maybe_standardize(X_val, estimator.scaler_)
    return X_fit, y_fit, X_val, y_val, seed


def validation_rows(y_index, *, groups=None, validation_fraction=0.0, random_state=None):
    """Return ``(fit_rows, val_rows)`` holding out ``validation_fraction`` of the rows, or None.

    Whole locations (``groups``) when given, else rows stratified by class. None when the
    fraction is 0 or the split leaves no validation rows (e.g. one location per class).
    """
    if not validation_fraction:
        return None
    if groups is not None:
        fit_rows, val_rows = splits.location_split(
            y_index, groups, val_fraction=validation_fraction, random_state=random_state)
    else:
        fit_rows, val_rows = splits.stratified_row_split(
            y_index, val_fraction=validation_fraction, random_state=random_state)
    return None if len(val_rows) == 0 else (fit_rows, val_rows)


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
