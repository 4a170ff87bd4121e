"""Audio-visual fusion: late (averaged or weighted), stacking, and the DCASE 2021 "proposed" fusion.

Every fusion estimator takes the modalities' features side by side in one ``X`` (so it works in
sklearn pipelines and grid searches) and a list of ``(name, estimator, columns)`` like
``ColumnTransformer``: ``columns`` (a slice or a list of indices) picks one modality's block,
``estimator`` is any classifier of this package, so modalities may differ (LightGBM on video,
logistic regression on audio). Nested parameters are addressable as ``<name>__<param>``.

Early fusion needs no class: it is any estimator fitted on the concatenated columns.

- :class:`LateFusion`: each modality's estimator fitted on its block; probabilities averaged, with
  fixed weights or weights fitted on validation data (``fit_weights=True``).
- :class:`StackingFusion`: out-of-fold probabilities from grouped K-fold (no location in both the
  fitting and the predicted fold) feed a meta-classifier.
- :class:`ProposedFusion`: the DCASE 2021 Task 1B baseline: per-modality ``l3_dense`` networks
  trained first, frozen; the first 5 modules of each (Linear 512->512, BN, ReLU, Dropout,
  Linear 512->128) give 128-d each, concatenated -> Linear(256, 128) -> Linear(128, 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from classifiers import dcase_networks, splits
from classifiers.fitting import validation_rows
from classifiers.input_checks import (
    align_proba,
    check_features,
    column_block,
    encode_labels,
    index_labels,
    random_seed,
)
from classifiers.linear import LogisticClassifier, softmax
from classifiers.protocols import log_softmax

#: Floor before logs of probabilities (stacking meta-features, weight fitting).
PROBA_FLOOR = 1e-7

#: A member's ``columns``: a slice or a sequence of column indices (None: every column).
_Columns = slice | Sequence[int] | None


class _NamedEstimators:
    """get_params/set_params for an ``estimators`` list of (name, estimator, columns)."""

    estimators: Sequence[tuple[str, Any, _Columns]]
    classes_: NDArray[Any]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        # super(): BaseEstimator, which follows this mixin in the estimators' MRO
        params = super().get_params(deep=deep)  # type: ignore[misc]
        if deep:
            for name, estimator, _ in self.estimators:
                params[name] = estimator
                params.update(
                    {
                        f"{name}__{key}": value
                        for key, value in estimator.get_params(deep=True).items()
                    }
                )
        return params

    def set_params(self, **params: Any) -> Self:
        estimators = list(params.pop("estimators", self.estimators))
        names = [name for name, _, _ in estimators]
        for key in [k for k in params if k.partition("__")[0] in names]:
            name, _, inner = key.partition("__")
            index = names.index(name)
            value = params.pop(key)
            if inner:
                estimators[index][1].set_params(**{inner: value})
            else:
                estimators[index] = (name, value, estimators[index][2])
        return super().set_params(estimators=estimators, **params)  # type: ignore[misc]

    def _start_fit(
        self, X: ArrayLike, y: ArrayLike, *, dtype: DTypeLike | None = None
    ) -> tuple[NDArray[Any], NDArray[np.int64]]:
        """Check the members and ``X``; set ``classes_``; return (X, y as class indices)."""
        self._check_estimators()
        X = check_features(X, dtype=dtype)
        self.classes_, y_index = encode_labels(y, n_rows=len(X))
        return X, y_index

    def _check_estimators(self) -> None:
        names = [name for name, _, _ in self.estimators]
        if not names:
            raise ValueError("estimators is empty: give at least one (name, estimator, columns)")
        if len(set(names)) != len(names) or any("__" in name for name in names):
            raise ValueError(f"estimator names must be unique and free of '__': {names}")


def _fit_member(
    estimator: Any,
    X: NDArray[Any],
    y: ArrayLike,
    *,
    columns: _Columns,
    groups: ArrayLike | None,
    eval_set: tuple[ArrayLike, ArrayLike] | None,
) -> Any:
    """Clone and fit ``estimator`` on one column block, with the matching block of ``eval_set``."""
    block_eval = None
    if eval_set is not None:
        block_eval = (column_block(eval_set[0], columns), eval_set[1])
    return clone(estimator).fit(column_block(X, columns), y, groups=groups, eval_set=block_eval)


def _member_proba(
    fitted: Any, X: NDArray[Any], columns: _Columns, classes: NDArray[Any]
) -> NDArray[np.float64]:
    """Probabilities of a fitted member on its block, aligned to ``classes``."""
    return align_proba(fitted.predict_proba(column_block(X, columns)), fitted.classes_, classes)


def fit_fusion_weights(
    probas: Sequence[NDArray[np.float64]], y_index: NDArray[np.integer[Any]]
) -> NDArray[np.float64]:
    """Return simplex weights minimising the mean NLL of ``sum_m w_m probas[m]``.

    Parameters
    ----------
    probas : list of ndarray, each shape (n_rows, n_classes)
    y_index : ndarray of int, shape (n_rows,)

    Returns
    -------
    ndarray, shape (len(probas),), non-negative, summing to 1
    """
    truth = np.stack([p[np.arange(len(y_index)), y_index] for p in probas], axis=1)

    def objective(theta: NDArray[np.float64]) -> float:
        weights = softmax(theta[None, :])[0]
        return -float(np.mean(np.log(np.clip(truth @ weights, PROBA_FLOOR, None))))

    result = minimize(
        objective,
        np.zeros(len(probas)),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000},
    )
    return softmax(result.x[None, :])[0]


class LateFusion(_NamedEstimators, ClassifierMixin, BaseEstimator):
    """Late fusion: per-modality estimators, probabilities averaged (optionally weighted).

    Parameters
    ----------
    estimators : list of (name, estimator, columns)
    weights : sequence of float or None
        Fixed weights (normalised to sum 1); None averages equally. Ignored with ``fit_weights``.
    fit_weights : bool
        Fit the weights on validation data (``eval_set``, or ``validation_fraction`` of the rows
        held out as whole locations when ``groups`` is given) by minimising its log loss.
    validation_fraction : float
    random_state : int or None

    Attributes
    ----------
    estimators_ : list of fitted estimators, in the order of ``estimators``
    weights_ : ndarray, shape (n_estimators,)
    classes_ : ndarray
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any, _Columns]],
        *,
        weights: Sequence[float] | None = None,
        fit_weights: bool = False,
        validation_fraction: float = 0.1,
        random_state: int | None = None,
    ) -> None:
        self.estimators = estimators
        self.weights = weights
        self.fit_weights = fit_weights
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fit every member on its columns of ``X`` (n_rows, n_columns); then the weights."""
        X, y_index = self._start_fit(X, y)
        labels = self.classes_[y_index]
        if self.fit_weights and eval_set is None:
            rows = validation_rows(
                y_index,
                groups=groups,
                validation_fraction=self.validation_fraction,
                random_state=random_seed(self.random_state),
            )
            if rows is not None:
                fit_rows, val_rows = rows
                eval_set = (X[val_rows], labels[val_rows])
                X, labels = X[fit_rows], labels[fit_rows]
                groups = None if groups is None else np.asarray(groups)[fit_rows]
        self.estimators_ = [
            _fit_member(est, X, labels, columns=cols, groups=groups, eval_set=eval_set)
            for _, est, cols in self.estimators
        ]
        if self.fit_weights and eval_set is not None:
            y_val = index_labels(eval_set[1], self.classes_, name="eval_set y")
            probas = [
                _member_proba(fitted, check_features(eval_set[0]), cols, self.classes_)
                for fitted, (_, _, cols) in zip(self.estimators_, self.estimators)
            ]
            self.weights_ = fit_fusion_weights(probas, y_val)
        else:
            weights = np.ones(len(self.estimators)) if self.weights is None else self.weights
            weights = np.asarray(weights, dtype=np.float64)
            if (
                weights.shape != (len(self.estimators),)
                or (weights < 0).any()
                or weights.sum() <= 0
            ):
                raise ValueError(
                    f"weights must be {len(self.estimators)} non-negative numbers, "
                    f"got {self.weights}"
                )
            self.weights_ = weights / weights.sum()
        self.n_features_in_ = X.shape[1]
        return self

    def member_probas(self, X: ArrayLike) -> list[NDArray[np.float64]]:
        """Return each member's aligned probabilities: list of ndarray (n_rows, n_classes)."""
        X = check_features(X)
        return [
            _member_proba(fitted, X, cols, self.classes_)
            for fitted, (_, _, cols) in zip(self.estimators_, self.estimators)
        ]

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the weighted mean of the members' probabilities, shape (n_rows, n_classes)."""
        return sum(w * p for w, p in zip(self.weights_, self.member_probas(X)))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _kfold_rows(
    y_index: NDArray[np.integer[Any]], groups: NDArray[Any] | None, n_splits: int, seed: int
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Class-aware grouped K-fold when groups are known, else stratified K-fold on rows."""
    if groups is not None:
        return splits.group_kfold(groups, n_splits=n_splits, y=y_index, random_state=seed)
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y_index)), y_index))


def _check_fold_classes(
    folds: Sequence[tuple[NDArray[np.intp], NDArray[np.intp]]],
    y_index: NDArray[np.integer[Any]],
    classes: NDArray[Any],
) -> None:
    """Refuse folds whose training part lacks a class: its out-of-fold probability would be ~0
    exactly on its own rows, and the meta-classifier would learn that inverted rule."""
    for k, (fit_rows, _) in enumerate(folds):
        absent = np.setdiff1d(np.arange(len(classes)), y_index[fit_rows])
        if len(absent):
            raise ValueError(
                f"stacking: the training part of fold {k + 1} of {len(folds)} has no "
                f"{str(classes[absent[0]])!r} rows (too few locations of that class for out-of-fold "
                f"predictions); use more data, fewer folds, or late/weighted fusion"
            )


class StackingFusion(_NamedEstimators, ClassifierMixin, BaseEstimator):
    """Stacking: a meta-classifier on out-of-fold log-probabilities of per-modality estimators.

    Each member is fitted ``n_splits`` times by grouped K-fold (``groups``: locations; without
    them, stratified K-fold on rows); the rows of each held-out fold get that fold model's
    probabilities, so the meta-classifier learns from predictions on unseen locations.

    Parameters
    ----------
    estimators : list of (name, estimator, columns)
    final_estimator : classifier or None
        Fitted on the concatenated out-of-fold log-probabilities; default
        ``LogisticClassifier(C=1.0)``.
    n_splits : int
    refit : bool
        Refit each member on all rows for prediction. False (default) predicts with the mean of
        the K fold models' probabilities instead: cheaper, and the meta-classifier then sees
        inputs like those it was trained on (refitted members are more confident than fold
        models; on the --small benchmark data refit=True raised the test log loss from 0.53 to 0.64).
    random_state : int or None
        Shuffles the assignment of locations to folds.

    Attributes
    ----------
    fold_estimators_ : list (per member) of lists (per fold) of fitted estimators
    estimators_ : list of refitted members (with ``refit=True``) else None
    final_estimator_ : fitted meta-classifier
    oof_proba_ : ndarray, shape (n_rows, n_members * n_classes), the out-of-fold probabilities
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any, _Columns]],
        *,
        final_estimator: Any = None,
        n_splits: int = 5,
        refit: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.n_splits = n_splits
        self.refit = refit
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fit the members by K-fold on ``X`` (n_rows, n_columns), then the meta-classifier."""
        X, y_index = self._start_fit(X, y)
        labels = self.classes_[y_index]
        groups = None if groups is None else np.asarray(groups)
        folds = _kfold_rows(y_index, groups, self.n_splits, random_seed(self.random_state))
        n_classes = len(self.classes_)
        _check_fold_classes(folds, y_index, self.classes_)
        self.oof_proba_ = np.zeros((len(X), len(self.estimators) * n_classes))
        self.fold_estimators_: list[list[Any]] = []
        for m, (_, estimator, cols) in enumerate(self.estimators):
            fitted_folds: list[Any] = []
            for fit_rows, held_rows in folds:
                fitted = _fit_member(
                    estimator,
                    X[fit_rows],
                    labels[fit_rows],
                    columns=cols,
                    groups=None if groups is None else groups[fit_rows],
                    eval_set=eval_set,
                )
                self.oof_proba_[held_rows, m * n_classes : (m + 1) * n_classes] = _member_proba(
                    fitted, X[held_rows], cols, self.classes_
                )
                fitted_folds.append(fitted)
            self.fold_estimators_.append(fitted_folds)
        final = self.final_estimator if self.final_estimator is not None else LogisticClassifier()
        self.final_estimator_ = clone(final).fit(self._meta_features(self.oof_proba_), labels)
        self.estimators_: list[Any] | None = None
        if self.refit:
            self.estimators_ = [
                _fit_member(est, X, labels, columns=cols, groups=groups, eval_set=eval_set)
                for _, est, cols in self.estimators
            ]
        self.n_features_in_ = X.shape[1]
        return self

    @staticmethod
    def _meta_features(proba: NDArray[np.float64]) -> NDArray[np.float32]:
        return np.log(np.clip(proba, PROBA_FLOOR, None)).astype(np.float32)

    def member_probas(self, X: ArrayLike) -> list[NDArray[np.float64]]:
        """Return each member's aligned probabilities on ``X``: list of (n_rows, n_classes)."""
        X = check_features(X)
        out: list[NDArray[np.float64]] = []
        for m, (_, _, cols) in enumerate(self.estimators):
            fitted = (
                [self.estimators_[m]] if self.estimators_ is not None else self.fold_estimators_[m]
            )
            out.append(np.mean([_member_proba(f, X, cols, self.classes_) for f in fitted], axis=0))
        return out

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the meta-classifier's probabilities, shape (n_rows, n_classes)."""
        meta = self._meta_features(np.concatenate(self.member_probas(X), axis=1))
        return align_proba(
            self.final_estimator_.predict_proba(meta),
            self.final_estimator_.classes_,
            self.classes_,
        )

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class ProposedFusion(_NamedEstimators, ClassifierMixin, BaseEstimator):
    """The DCASE 2021 Task 1B baseline's fusion of frozen per-modality networks.

    Each member (a :class:`classifiers.mlp.TorchMLPClassifier` with at least two hidden layers
    and BatchNorm, e.g. :func:`classifiers.mlp.baseline_network`) is trained on its columns first.
    Its first 5 modules (Linear, BatchNorm, ReLU, Dropout, Linear: 512->512->128 for
    ``l3_dense``) are then frozen; their eval-mode outputs are concatenated and a head
    Linear(sum of widths, 128) -> Linear(128, n_classes), with no nonlinearity between, is trained
    with the same optimiser settings, keeping the lowest validation loss. The baseline runs the
    frozen branches in eval mode under ``no_grad`` (``train_combine/train.py``), so computing their
    outputs once is exactly equivalent and much cheaper.

    Parameters
    ----------
    estimators : list of (name, TorchMLPClassifier, columns)
    head_hidden : int
    learning_rate, weight_decay, batch_size, max_epochs, patience, drop_last, bf16, device :
        Training of the head (baseline: 1e-4, 1e-4, 64, 99 epochs).
    validation_fraction : float
        Held out (whole locations with ``groups``) when ``fit`` gets no ``eval_set``; used by the
        members and the head for keeping their best epochs.
    n_jobs : int or None
        torch threads while training the head.
    random_state : int or None
    val_loss, ties :
        How the head's validation loss is measured and ties are broken (see
        :class:`classifiers.mlp.TorchMLPClassifier`; the members have their own).

    Attributes
    ----------
    branches_ : list of fitted TorchMLPClassifier
    trunk_modules_ : int, modules kept from each branch (5)
    trunks_ : list of frozen torch Sequential (in the fitting process only)
    head_ : torch Sequential (in the fitting process only)
    head_kinds_, head_state_ : the head for numpy inference
    history_ : per-epoch losses of the head
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any, _Columns]],
        *,
        head_hidden: int = 128,
        learning_rate: float = 1e-4,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 99,
        patience: int | None = None,
        validation_fraction: float = 0.1,
        drop_last: bool = True,
        bf16: bool = False,
        device: str = "auto",
        n_jobs: int | None = None,
        random_state: int | None = None,
        val_loss: str = "rows",
        ties: str = "first",
    ) -> None:
        self.estimators = estimators
        self.head_hidden = head_hidden
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.drop_last = drop_last
        self.bf16 = bf16
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.val_loss = val_loss
        self.ties = ties

    #: Modules of each branch kept by the baseline (Linear, BN, ReLU, Dropout, Linear).
    TRUNK_MODULES = 5

    def _hidden(self, X: NDArray[Any], columns_list: Sequence[_Columns]) -> NDArray[Any]:
        return np.concatenate(
            [
                branch.transform_hidden(column_block(X, cols), n_modules=self.trunk_modules_)
                for branch, cols in zip(self.branches_, columns_list)
            ],
            axis=1,
        )

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Train the branches on their columns of ``X`` (n_rows, n_columns), then the head."""
        torch = dcase_networks.import_torch("ProposedFusion")
        X, y_index = self._start_fit(X, y, dtype=np.float32)
        seed = random_seed(self.random_state)
        if eval_set is None:
            rows = validation_rows(
                y_index,
                groups=groups,
                validation_fraction=self.validation_fraction,
                random_state=seed,
            )
            if rows is not None:
                fit_rows, val_rows = rows
                eval_set = (X[val_rows], self.classes_[y_index[val_rows]])
                X, y_index = X[fit_rows], y_index[fit_rows]
        labels = self.classes_[y_index]
        if len(np.unique(y_index)) != len(self.classes_):
            raise ValueError("every class needs training rows after the validation split")
        for name, estimator, _ in self.estimators:
            if len(getattr(estimator, "hidden", ())) < 2 or not getattr(
                estimator, "batch_norm", False
            ):
                raise ValueError(
                    f"branch {name!r} must be a TorchMLPClassifier with batch_norm and "
                    "at least two hidden layers (e.g. baseline_network())"
                )
        columns_list = [cols for _, _, cols in self.estimators]
        self.branches_ = [
            _fit_member(est, X, labels, columns=cols, groups=None, eval_set=eval_set)
            for _, est, cols in self.estimators
        ]
        self.trunk_modules_ = self.TRUNK_MODULES
        self.trunks_: list[Any] = []
        for branch in self.branches_:
            trunk = branch.module_[: self.trunk_modules_].eval()
            for parameter in trunk.parameters():
                parameter.requires_grad_(False)
            self.trunks_.append(trunk)
        H_fit = self._hidden(X, columns_list)
        H_val: NDArray[Any] | None
        y_val: NDArray[np.int64] | None
        H_val = y_val = None
        if eval_set is not None:
            H_val = self._hidden(check_features(eval_set[0], dtype=np.float32), columns_list)
            y_val = index_labels(eval_set[1], self.classes_, name="eval_set y")
        with dcase_networks.torch_threads(self.n_jobs), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = dcase_networks.proposed_head(
                H_fit.shape[1], len(self.classes_), hidden=self.head_hidden
            )
            self.history_ = dcase_networks.train_network(
                head,
                H_fit,
                y_index,
                X_val=H_val,
                y_val=y_val,
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
                batch_size=self.batch_size,
                max_epochs=self.max_epochs,
                patience=self.patience,
                drop_last=self.drop_last,
                bf16=self.bf16,
                device=self.device,
                seed=seed,
                val_loss=self.val_loss,
                ties=self.ties,
            )
        self.head_ = head.cpu().eval()
        self.head_kinds_ = dcase_networks.module_kinds(head)
        self.head_state_ = dcase_networks.state_to_numpy(head)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X: ArrayLike) -> NDArray[Any]:
        """Return the head's logits, shape (n_rows, n_classes)."""
        X = check_features(X, dtype=np.float32)
        hidden = self._hidden(X, [cols for _, _, cols in self.estimators])
        return dcase_networks.numpy_forward(self.head_kinds_, self.head_state_, hidden)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return class probabilities, shape (n_rows, n_classes)."""
        return softmax(self.decision_function(X).astype(np.float64))

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the log-softmax of the head's logits, shape (n_rows, n_classes), float64."""
        return log_softmax(self.decision_function(X))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("trunks_", None)
        state.pop("head_", None)
        return state
