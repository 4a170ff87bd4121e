"""Estimators trained through Dask on data bigger than one machine; the fitted models are in memory.

- :class:`DaskLogisticClassifier`: :class:`~classifiers.linear.LogisticClassifier`'s model (z-score
  with training statistics, multinomial logistic regression with L2 penalty ``C``, the objective
  of ``sklearn.linear_model.LogisticRegression(C=C)``: mean cross-entropy + ||W||^2 / (2 C n),
  intercepts unpenalised) fitted by L-BFGS on the driver (scipy, sklearn's options), the loss and
  gradient summed blockwise over the dask array: one pass over the data per evaluation.
- :class:`DaskLightGBMClassifier`: :class:`~classifiers.boosting.LightGBMClassifier`'s pipeline
  (z-score, PCA on at most 20,000 rows, multiclass trees) with the statistics computed lazily and
  the trees grown by ``lightgbm.dask`` on the workers (needs a ``distributed`` client). The Dask
  interface has no early stopping: every round is grown, then the validation multi-logloss of
  every prefix is computed blockwise and ``best_iteration_`` follows LightGBM's own rule.

Both follow the package's ``fit(X, y, *, groups=None, eval_set=None)`` with ``X`` a dask array
(numpy is wrapped) and labels as numpy or dask arrays. After ``fit``, :meth:`to_local` returns the
fitted in-memory estimator of :mod:`classifiers.linear` / :mod:`classifiers.boosting` (what a run
directory stores; it ``predict_proba``'s numpy arrays with no dask installed). ``predict_proba``
here takes numpy (-> numpy) or dask (-> dask, blockwise). dask and lightgbm are imported inside
the functions that use them; torch never.
"""

import warnings

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers.boosting import LightGBMClassifier, pca_projection
from classifiers.fitting import validation_rows
from classifiers.input_checks import encode_labels, index_labels, random_seed
from classifiers.linear import LogisticClassifier, softmax
from classifiers.scaling import ZScore, maybe_standardize

#: Rows per dask chunk when numpy input is wrapped.
CHUNK_ROWS = 65536
#: Rows the in-memory LightGBMClassifier estimates its PCA from (pca_projection's max_rows).
PCA_ROWS = 20000
#: LightGBM's floor for probabilities in multi_logloss.
LOGLOSS_FLOOR = 1e-15
#: LightGBM's socket time-out: after a worker fails, the others give up after this long
#: instead of LightGBM's default 120 minutes (their Dask threads stay blocked meanwhile).
NETWORK_TIMEOUT_MINUTES = 10


def as_dask(X, *, name="X"):
    """``X`` as a 2-D dask array with one chunk along the columns (numpy is wrapped)."""
    import dask.array as da

    if not isinstance(X, da.Array):
        X = np.asarray(X)
        X = da.from_array(
            X, chunks=(min(CHUNK_ROWS, max(len(X), 1)), X.shape[-1] if X.ndim else 1)
        )
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, dim), got shape {X.shape}")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; call compute_chunk_sizes() first")
    return X.rechunk({1: -1}) if X.numblocks[1] > 1 else X


def as_labels(y):
    """Labels as a numpy array (a dask array is computed: labels are small next to X)."""
    return np.asarray(y.compute() if hasattr(y, "compute") else y)


def row_chunks(values, X):
    """A dask array of per-row ``values`` chunked like the rows of ``X``."""
    import dask.array as da

    return da.from_array(np.asarray(values), chunks=(X.chunks[0],))


def lazy_zscore(X, *, min_scale=1e-6):
    """A fitted :class:`ZScore` whose statistics are computed from the dask array ``X``.

    Two passes, as ``ZScore.fit``: the mean in float64, then the mean squared deviation.
    """
    n_rows = max(X.shape[0], 1)
    mean = (X.sum(axis=0, dtype=np.float64) / n_rows).compute()
    squares = ((X.astype(np.float64) - mean) ** 2).sum(axis=0).compute()
    scaler = ZScore(min_scale=min_scale)
    scale = np.sqrt(squares / n_rows)
    scaler.mean_, scaler.scale_ = mean, np.where(scale < min_scale, 1.0, scale)
    scaler.n_features_in_ = X.shape[1]
    return scaler


def blockwise_proba(estimator, X):
    """``estimator.predict_proba`` applied to every row block of the dask array ``X`` (lazy)."""
    import dask

    return X.map_blocks(
        _predict_block,
        dask.delayed(estimator),
        dtype=np.float64,
        chunks=(X.chunks[0], (len(estimator.classes_),)),
        meta=np.empty((0, 0), np.float64),
    )


def _predict_block(x, estimator):
    return estimator.predict_proba(x)


class _DaskEstimator(ClassifierMixin, BaseEstimator):
    """What both estimators share once fitted: ``local_`` does the predicting."""

    def to_local(self):
        """The fitted in-memory estimator (no dask needed to use or unpickle it)."""
        if not hasattr(self, "local_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet")
        return self.local_

    def predict_proba(self, X):
        """Class probabilities, shape (n_rows, n_classes): numpy for numpy, dask for dask."""
        if hasattr(X, "map_blocks"):
            return blockwise_proba(self.to_local(), as_dask(X))
        return self.to_local().predict_proba(X)

    def predict(self, X):
        """The most probable class of each row (numpy input)."""
        return self.classes_[np.asarray(self.predict_proba(X)).argmax(axis=1)]


# -- logistic regression -------------------------------------------------------------------------


def _loss_grad_block(x, y, packed, scaler, n_classes):
    """Summed cross-entropy and its gradient over one row block; shape (1, 1 + k * d + k)."""
    x = maybe_standardize(x, scaler).astype(np.float64)
    y = y[:, 0]
    dim = x.shape[1]
    coef, intercept = packed[: n_classes * dim].reshape(n_classes, dim), packed[n_classes * dim :]
    logits = x @ coef.T + intercept
    top = logits.max(axis=1, keepdims=True)
    exp = np.exp(logits - top)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(np.sum(top[:, 0] + np.log(total[:, 0]) - logits[rows, y]))
    residual = exp / total
    residual[rows, y] -= 1.0
    return np.concatenate([[loss], (residual.T @ x).ravel(), residual.sum(axis=0)])[None, :]


class DaskLogisticClassifier(_DaskEstimator):
    """Multinomial logistic regression with L2 penalty on z-scored features, fitted on dask arrays.

    Parameters
    ----------
    C, max_iter, tol, standardize, n_jobs, random_state :
        As :class:`~classifiers.linear.LogisticClassifier` (``n_jobs`` applies to the returned
        in-memory model). ``tol`` is L-BFGS's projected-gradient tolerance, as in sklearn.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    coef_ : ndarray, shape (n_classes, dim), standardised space (two classes: two rows, the
        softmax parametrisation; that optimum equals sklearn's binomial fit at ``2 * C``)
    intercept_ : ndarray, shape (n_classes,)
    scaler_ : ZScore or None
    n_iter_ : int
    converged_ : bool
    local_ : LogisticClassifier, fitted (see :meth:`to_local`)
    """

    def __init__(
        self, *, C=1.0, max_iter=100, tol=1e-4, standardize=True, n_jobs=None, random_state=None
    ):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y, *, groups=None, eval_set=None):
        """Fit on ``X`` (dask or numpy, (n_rows, dim)) and ``y`` (n_rows,); the rest unused."""
        import dask

        X = as_dask(X)
        self.classes_, y_index = encode_labels(as_labels(y), n_rows=X.shape[0])
        n_rows, dim, n_classes = X.shape[0], X.shape[1], len(self.classes_)
        X, y_column = dask.persist(X, row_chunks(y_index, X)[:, None])  # one pass per step
        self.scaler_ = lazy_zscore(X) if self.standardize else None
        scaler = dask.delayed(self.scaler_)
        penalty = 1.0 / (self.C * n_rows)

        def loss_and_gradient(packed):
            parts = X.map_blocks(
                _loss_grad_block,
                y_column,
                dask.delayed(packed),
                scaler,
                n_classes,
                dtype=np.float64,
                meta=np.empty((0, 0)),
                chunks=(1, 1 + n_classes * dim + n_classes),
            )
            total = parts.sum(axis=0).compute()
            coef = packed[: n_classes * dim]
            gradient = total[1:] / n_rows
            gradient[: n_classes * dim] += penalty * coef
            return total[0] / n_rows + 0.5 * penalty * float(coef @ coef), gradient

        start = np.zeros(n_classes * dim + n_classes)
        result = optimize.minimize(
            loss_and_gradient,
            start,
            method="L-BFGS-B",
            jac=True,
            options={
                "maxiter": self.max_iter,
                "maxls": 50,
                "gtol": self.tol,
                "ftol": 64 * np.finfo(float).eps,
            },
        )
        self.coef_ = result.x[: n_classes * dim].reshape(n_classes, dim)
        self.intercept_ = result.x[n_classes * dim :]
        self.n_iter_ = int(result.nit)
        self.converged_ = result.status == 0
        self.n_features_in_ = dim
        self.local_ = self._local_model()
        return self

    def _local_model(self):
        """The equivalent fitted :class:`LogisticClassifier`."""
        local = LogisticClassifier(**self.get_params())
        local.classes_, local.scaler_ = self.classes_, self.scaler_
        local.coef_, local.intercept_ = self.coef_, self.intercept_
        local.n_iter_, local.converged_ = self.n_iter_, self.converged_
        local.n_features_in_ = self.n_features_in_
        return local


# -- LightGBM ------------------------------------------------------------------------------------


def _project_block(x, scaler, pca_mean, components):
    """LightGBMClassifier's input transform: z-score, then the PCA projection if any."""
    x = maybe_standardize(x, scaler)
    return x if components is None else (x - pca_mean.astype(x.dtype)) @ components


def _prefix_losses_block(z, y, booster, n_classes, n_iterations, n_jobs):
    """Summed multi-logloss of the first 1, 2, ... ``n_iterations`` rounds on one block."""
    raw = np.zeros((len(z), n_classes))
    rows = np.arange(len(z))
    losses = np.empty(n_iterations)
    for i in range(n_iterations):
        raw += np.asarray(
            booster.predict(
                z, raw_score=True, start_iteration=i, num_iteration=1, num_threads=n_jobs
            )
        ).reshape(len(z), n_classes)
        proba = softmax(raw.copy())
        losses[i] = -np.log(np.maximum(proba[rows, y[:, 0]], LOGLOSS_FLOOR)).sum()
    return losses[None, :]


def mix_classes(Z, y, n_classes, seed):
    """Rows dealt to chunks so that every chunk holds every class, unless they already do.

    Distributed multiclass training in LightGBM 4.7 kills the worker process whose rows lack a
    class (seen here with 2 LocalCluster workers; the others then fail with socket errors), and
    segments come in clip order while datasets list clips by scene. The rows of each class are
    shuffled (seeded) and dealt round-robin to ``min(n_chunks, rows of the rarest class)``
    chunks.

    Returns
    -------
    Z : dask array, shape (n_rows, dim)
    y : ndarray, shape (n_rows,)
    """
    bounds = np.cumsum((0,) + tuple(Z.chunks[0]))
    if all(
        len(np.unique(y[start:stop])) == n_classes for start, stop in zip(bounds[:-1], bounds[1:])
    ):
        return Z, y
    counts = np.bincount(y, minlength=n_classes)
    n_chunks = int(max(1, min(len(Z.chunks[0]), counts.min())))
    order = np.random.default_rng(seed).permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]  # by class, shuffled within
    rank = np.arange(len(y)) - np.repeat(np.cumsum(counts) - counts, counts)
    chunk = rank % n_chunks
    order = order[np.argsort(chunk, kind="stable")]
    sizes = tuple(int(n) for n in np.bincount(chunk, minlength=n_chunks))
    return Z[order].rechunk({0: sizes}), y[order]


def early_stopping_iteration(losses, rounds):
    """LightGBM's early-stopping choice on a loss curve: 1-based best round seen before stopping.

    A round improves when its loss is strictly below the best so far; the search stops once
    ``rounds`` rounds have passed without improvement (or at the last round).
    """
    best = 0
    for i in range(1, len(losses)):
        if losses[i] < losses[best]:
            best = i
        elif i - best >= rounds:
            break
    return best + 1


class DaskLightGBMClassifier(_DaskEstimator):
    """LightGBM multiclass trees on (optionally PCA-projected) z-scored features, via lightgbm.dask.

    Parameters
    ----------
    n_components, n_estimators, learning_rate, num_leaves, max_bin, min_child_samples,
    feature_fraction, bagging_fraction, bagging_freq, reg_lambda, early_stopping_rounds,
    validation_fraction, standardize, n_jobs, random_state :
        As :class:`~classifiers.boosting.LightGBMClassifier` (``n_jobs``: threads per worker).
    client : distributed.Client, optional
        Default: the current client (``distributed.default_client()``).

    Attributes
    ----------
    classes_ : ndarray
    best_iteration_ : int
    validation_losses_ : ndarray, shape (n_estimators,) or None
        Mean validation multi-logloss after each round.
    local_ : LightGBMClassifier, fitted (see :meth:`to_local`)
    """

    def __init__(
        self,
        *,
        n_components=64,
        n_estimators=100,
        learning_rate=0.2,
        num_leaves=15,
        max_bin=63,
        min_child_samples=20,
        feature_fraction=0.5,
        bagging_fraction=0.3,
        bagging_freq=1,
        reg_lambda=0.0,
        early_stopping_rounds=10,
        validation_fraction=0.1,
        standardize=True,
        n_jobs=1,
        random_state=None,
        client=None,
    ):
        self.n_components = n_components
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_bin = max_bin
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.bagging_freq = bagging_freq
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.client = client

    def fit(self, X, y, *, groups=None, eval_set=None):
        """Fit on ``X`` (dask or numpy, (n_rows, dim)) and ``y``; validation data as the in-memory
        estimator: ``eval_set``, else ``validation_fraction`` of the rows (whole ``groups``)."""
        import dask

        X = as_dask(X)
        self.classes_, y_index = encode_labels(as_labels(y), n_rows=X.shape[0])
        seed = random_seed(self.random_state)
        X_fit, y_fit, X_val, y_val = self._validation(X, y_index, groups, eval_set, seed)
        local = LightGBMClassifier(**{k: v for k, v in self.get_params().items() if k != "client"})
        local.classes_ = self.classes_
        local.scaler_ = lazy_zscore(X_fit) if self.standardize else None
        local.components_ = local.pca_mean_ = None
        if self.n_components is not None and self.n_components < X.shape[1]:
            rows = np.arange(X_fit.shape[0])
            if len(rows) > PCA_ROWS:  # the rows pca_projection would draw in memory
                rows = np.sort(
                    np.random.default_rng(seed).choice(len(rows), PCA_ROWS, replace=False)
                )
            sample = maybe_standardize(X_fit[rows].compute(), local.scaler_)
            local.pca_mean_, local.components_ = pca_projection(
                sample, self.n_components, max_rows=PCA_ROWS, random_state=seed
            )
        transform = [
            dask.delayed(part) for part in (local.scaler_, local.pca_mean_, local.components_)
        ]
        width = X.shape[1] if local.components_ is None else local.components_.shape[1]

        def project(data):
            return data.map_blocks(
                _project_block,
                *transform,
                dtype=np.float32,
                chunks=(data.chunks[0], (width,)),
                meta=np.empty((0, 0), np.float32),
            )

        local.booster_ = self._grow(project(X_fit), y_fit, seed, local)
        self.validation_losses_ = None
        local.best_iteration_ = local.booster_.current_iteration()
        if X_val is not None and self.early_stopping_rounds:
            self.validation_losses_ = self._prefix_losses(project(X_val), y_val, local.booster_)
            local.best_iteration_ = early_stopping_iteration(
                self.validation_losses_, self.early_stopping_rounds
            )
        self.best_iteration_ = local.best_iteration_
        local.n_features_in_ = self.n_features_in_ = X.shape[1]
        self.local_ = local
        return self

    def _validation(self, X, y_index, groups, eval_set, seed):
        """``(X_fit, y_fit, X_val, y_val)`` as :func:`classifiers.fitting.validation_data`."""
        if eval_set is not None:
            X_val = as_dask(eval_set[0], name="eval_set X")
            return (
                X,
                y_index,
                X_val,
                index_labels(as_labels(eval_set[1]), self.classes_, name="eval_set y"),
            )
        rows = validation_rows(
            y_index,
            groups=None if groups is None else as_labels(groups),
            validation_fraction=self.validation_fraction,
            random_state=seed,
        )
        if rows is None:
            return X, y_index, None, None
        fit_rows, val_rows = rows
        return X[fit_rows], y_index[fit_rows], X[val_rows], y_index[val_rows]

    def _grow(self, Z, y_fit, seed, local):
        """Grow the trees on the workers; return the booster."""
        from lightgbm.dask import DaskLGBMClassifier

        if len(np.unique(y_fit)) != len(self.classes_):
            raise ValueError("the training rows (after the validation split) lack some classes")
        params = local._params(len(self.classes_), seed)  # the in-memory parameter mapping
        for key in ("objective", "num_class"):  # set by the classifier itself
            params.pop(key)
        model = DaskLGBMClassifier(
            client=self.client,
            n_estimators=self.n_estimators,
            max_bin=self.max_bin,
            time_out=NETWORK_TIMEOUT_MINUTES,
            **params,
        )
        Z, y_fit = mix_classes(Z, y_fit, len(self.classes_), seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Parameter.*will be ignored.*")
            model.fit(Z, row_chunks(y_fit, Z))
        return model.booster_

    def _prefix_losses(self, Z, y_val, booster):
        """Mean validation multi-logloss after each round, summed blockwise."""
        import dask

        n_rounds = booster.current_iteration()
        parts = Z.map_blocks(
            _prefix_losses_block,
            row_chunks(y_val, Z)[:, None],
            dask.delayed(booster),
            len(self.classes_),
            n_rounds,
            self.n_jobs,
            dtype=np.float64,
            chunks=(1, n_rounds),
            meta=np.empty((0, 0)),
        )
        return parts.sum(axis=0).compute() / max(len(y_val), 1)


def dask_estimator_for(estimator, *, client=None):
    """The Dask counterpart of an unfitted in-memory estimator, with the same hyperparameters.

    Parameters
    ----------
    estimator : LogisticClassifier or LightGBMClassifier
    client : distributed.Client, optional
        For LightGBM (default: the current client).
    """
    if isinstance(estimator, LogisticClassifier):
        return DaskLogisticClassifier(**estimator.get_params())
    if isinstance(estimator, LightGBMClassifier):
        return DaskLightGBMClassifier(**estimator.get_params(), client=client)
    raise ValueError(
        f"no Dask counterpart of {type(estimator).__name__}; Dask trains "
        "LogisticClassifier (lr) and LightGBMClassifier (lgbm)"
    )
