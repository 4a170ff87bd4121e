"""The common start of the estimators' ``fit``: validation rows, standardisation, seeds.

Every estimator of this package follows one fit signature::

    fit(X, y, *, groups=None, eval_set=None)

``groups`` (one location per row) makes any internal validation split or cross-validation grouped
(no location on both sides); ``eval_set=(X_val, y_val)`` supplies validation data explicitly (the
pipelines pass the location-grouped 10% split). Estimators that need no validation data accept and
ignore both, so fusion wrappers can pass them through to any estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from classifiers import splits
from classifiers.input_checks import check_features, encode_labels, index_labels, random_seed
from classifiers.scaling import ZScore, maybe_standardize


def validation_data(
    X,
    y_index,
    *,
    groups=None,
    eval_set=None,
    classes=None,
    validation_fraction=0.0,
    random_state=None,
):
    """Return ``(X_fit, y_fit, X_val, y_val)`` (the last two None without validation data).

    ``eval_set`` wins; otherwise ``validation_fraction`` > 0 holds out that fraction of rows,
    grouped by ``groups`` (whole locations) when given, else stratified by class.
    """
    if eval_set is not None:
        X_val, y_val = eval_set
        X_val = check_features(X_val, dtype=X.dtype, name="eval_set X")
        return X, y_index, X_val, index_labels(y_val, classes, name="eval_set y")
    rows = validation_rows(
        y_index, groups=groups, validation_fraction=validation_fraction, random_state=random_state
    )
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
    X = check_features(X, dtype=np.float32)
    estimator.classes_, y_index = encode_labels(y, n_rows=len(X))
    seed = random_seed(estimator.random_state)
    X_fit, y_fit, X_val, y_val = validation_data(
        X,
        y_index,
        groups=groups,
        eval_set=eval_set,
        classes=estimator.classes_,
        validation_fraction=estimator.validation_fraction,
        random_state=seed,
    )
    estimator.scaler_ = ZScore().fit(X_fit) if estimator.standardize else None
    X_fit = maybe_standardize(X_fit, estimator.scaler_)
    X_val = None if X_val is None else maybe_standardize(X_val, estimator.scaler_)
    return X_fit, y_fit, X_val, y_val, seed


def validation_rows(
    y_index: NDArray[np.integer[Any]],
    *,
    groups: ArrayLike | None = None,
    validation_fraction: float = 0.0,
    random_state: int | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """Return ``(fit_rows, val_rows)`` holding out ``validation_fraction`` of the rows, or None.

    Whole locations (``groups``) when given, else rows stratified by class. None when the
    fraction is 0 or the split leaves no validation rows (e.g. one location per class).
    """
    if not validation_fraction:
        return None
    if groups is not None:
        fit_rows, val_rows = splits.location_split(
            y_index, groups, val_fraction=validation_fraction, random_state=random_state
        )
    else:
        fit_rows, val_rows = splits.stratified_row_split(
            y_index, val_fraction=validation_fraction, random_state=random_state
        )
    return None if len(val_rows) == 0 else (fit_rows, val_rows)
