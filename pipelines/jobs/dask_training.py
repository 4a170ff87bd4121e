"""``avscene train STORE ... --dask ADDRESS`` (or ``--dask-local N``): training through Dask.

The training fold's segments are read lazily from the store
(:func:`featurestore.store.dask_views.dask_segments`: one dask chunk per store block, values read and
pooled on the workers), held in the cluster's memory, split by location exactly as the in-memory
path splits them, and fitted through Dask (:mod:`classifiers.dask_models`): ``--model lr``
(L-BFGS on this process, loss and gradient summed over the workers' blocks) or ``--model lgbm``
(``lightgbm.dask``), with ``--fusion none`` or ``early``. The temperature is fitted on the
validation segments' probabilities, computed blockwise.

The run directory is the in-memory path's (:mod:`pipelines.jobs.training`, :mod:`pipelines.jobs.runs`): the
fitted in-memory estimator (``LogisticClassifier`` / ``LightGBMClassifier``, wrapped in
``TemperatureScaledClassifier`` as usual) in ``model.json``/``model.npz``, and the same
``run.json`` plus a ``dask`` entry; ``avscene evaluate`` and ``predict`` use it unchanged, without Dask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipelines.jobs import runs, training
from pipelines.jobs.specs import RunRecord, TrainSpec

log = logging.getLogger(__name__)

#: What the Dask path can train (other models and fusions: the in-memory path).
DASK_MODELS = ("lr", "lgbm")
DASK_FUSIONS = ("none", "early")


class _Blockwise:
    """A fitted estimator seen through Dask: ``predict_proba`` of a dask array, blockwise, computed.

    Lets :func:`pipelines.jobs.training.validate` run unchanged on dask arrays.
    """

    def __init__(self, estimator: Any) -> None:
        self._estimator = estimator

    def predict_proba(self, X: Any) -> NDArray[Any]:
        from classifiers.dask_models import blockwise_proba

        return blockwise_proba(self._estimator, X).compute()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._estimator, name)
        return _Blockwise(value) if name == "estimator_" else value


def check_options(spec: TrainSpec, features: Sequence[str]) -> tuple[Any, dict[str, str]]:
    """Refuse what the Dask path does not train; return ``(estimator, models)`` of the spec."""
    runs.check_out(spec.out, overwrite=spec.overwrite)
    estimator, models = training.build(spec, features, dict.fromkeys(features, 1))
    unsupported = sorted(set(models.values()) - set(DASK_MODELS))
    if unsupported or spec.fusion not in DASK_FUSIONS:
        raise runs.RunFormatError(
            f"--dask trains --model {' or '.join(DASK_MODELS)} with --fusion "
            f"{' or '.join(DASK_FUSIONS)}; got model {', '.join(unsupported) or spec.model} "
            f"fusion {spec.fusion} (train it without --dask)"
        )
    return estimator, models


def read_segments(spec: TrainSpec, features: Sequence[str]) -> Any:
    """Lazy segments of the training fold (labels checked), as :func:`runs.read_segments`."""
    from featurestore.errors import StoreFormatError
    from featurestore.store.dask_views import dask_segments

    segments = dask_segments(spec.store, features, fold=spec.train_fold, pooling=spec.pooling)
    where = f"fold {spec.train_fold!r} of {spec.store}"
    if len(segments) == 0:
        raise StoreFormatError(
            f"{where} has no segments with all of {', '.join(features)} "
            "(no clips in that fold, or features not extracted yet)"
        )
    unlabelled = np.flatnonzero(np.asarray(segments.scene) == "")
    if unlabelled.size:
        raise StoreFormatError(
            f"{where}: clip {str(segments.clip_id[unlabelled[0]])!r} has "
            "no scene label; training and evaluation need labels"
        )
    return segments


def split_rows(segments: Any, spec: TrainSpec) -> training.Split:
    """``(train_rows, val_rows)``: whole locations held out, as :func:`pipelines.jobs.training.split_rows`."""
    from classifiers import splits

    y, groups = np.asarray(segments.y).astype(str), np.asarray(segments.groups).astype(str)
    if spec.val_fraction > 0:
        return splits.location_split(
            y, groups, val_fraction=spec.val_fraction, random_state=spec.seed
        )
    return np.arange(len(y)), np.zeros(0, dtype=np.int64)


class _HeldOut:
    """The segments matrix as :func:`pipelines.jobs.training.validate` indexes it: its validation rows
    (the only rows it asks for), already in the cluster's memory."""

    def __init__(self, rows: NDArray[Any], X_val: Any) -> None:
        self.rows, self.X_val = rows, X_val

    def __getitem__(self, rows: NDArray[Any]) -> Any:
        if not np.array_equal(rows, self.rows):
            raise IndexError("only the validation rows are held")
        return self.X_val


def fit(
    estimator: Any, X_train: Any, X_val: Any, segments: Any, split: training.Split, client: Any
) -> Any:
    """Fit through Dask on the training rows (validation rows as ``eval_set``).

    Returns
    -------
    The in-memory estimator, temperature-scaled like the in-memory path's when ``estimator`` is
    a :class:`~classifiers.calibration.TemperatureScaledClassifier`.
    """
    from classifiers.calibration import TemperatureScaledClassifier, fit_temperature
    from classifiers.dask_models import blockwise_proba, dask_estimator_for
    from classifiers.input_checks import index_labels

    y, groups = np.asarray(segments.y).astype(str), np.asarray(segments.groups).astype(str)
    train_rows, val_rows = split
    scaled = isinstance(estimator, TemperatureScaledClassifier)
    model = dask_estimator_for(estimator.estimator if scaled else estimator, client=client)
    eval_set = (X_val, y[val_rows]) if len(val_rows) else None
    try:
        model.fit(X_train, y[train_rows], groups=groups[train_rows], eval_set=eval_set)
    except ValueError as error:
        raise runs.RunFormatError(f"training failed: {error}") from error
    local = model.to_local()
    if not scaled:
        return local
    estimator.estimator_, estimator.classes_ = local, local.classes_
    estimator.n_features_in_, estimator.temperature_ = local.n_features_in_, 1.0
    if eval_set is not None:  # as TemperatureScaledClassifier.fit, blockwise
        proba = blockwise_proba(local, X_val).compute()
        estimator.temperature_ = fit_temperature(proba, index_labels(eval_set[1], local.classes_))
    return estimator


def train(spec: TrainSpec) -> RunRecord:
    """Train the system of ``spec`` through Dask and write its run directory.

    Parameters
    ----------
    spec : TrainSpec
        With ``dask`` (a scheduler address) or ``dask_local`` (local worker processes);
        ``model`` lr or lgbm, ``fusion`` none or early; no recipe, split file or ``mean_std``.

    Returns
    -------
    dict
        The run record, as written to ``run.json`` (with a ``dask`` entry).
    """
    import dask
    from distributed import wait

    from featurestore.dask_cluster import dask_client
    from featurestore.store import FeatureStore

    if not spec.uses_dask:
        raise ValueError(
            "a spec without dask or dask_local trains with pipelines.jobs.training.train"
        )
    spec = training.check_spec(spec)
    features = list(spec.features)
    check_options(spec, features)
    started = time.perf_counter()
    with (
        dask_client(address=spec.dask, n_local=spec.dask_local) as client,
        runs.apply_threads(spec.threads),
    ):
        with FeatureStore.open(spec.store, mode="r") as store:
            provenance = runs.feature_provenance(store, features)
            store_attrs = dict(store.attrs)
        segments = read_segments(spec, features)
        X = segments.X(features)
        split = split_rows(segments, spec)
        X_train, X_val = dask.persist(X[split[0]], X[split[1]])  # read once, held by workers
        wait([X_train, X_val])
        dims = {name: int(segments.features[name].shape[1]) for name in features}
        loaded = time.perf_counter()
        log.info(
            "read %d segments of %d clips (%s) into %d Dask workers in %.1f s",
            len(segments),
            len(np.unique(segments.clip_id)),
            "+".join(features),
            len(client.scheduler_info()["workers"]),
            loaded - started,
        )
        estimator, models = training.build(spec, features, dims)
        fitted = fit(estimator, X_train, X_val, segments, split, client)
        fit_done = time.perf_counter()
        validation = training.validate(
            _Blockwise(fitted), _HeldOut(split[1], X_val), segments, split
        )
        finished = time.perf_counter()
        cluster = {
            "scheduler": spec.dask or "local",
            "workers": len(client.scheduler_info()["workers"]),
            "chunks": len(X.chunks[0]),
        }
    times = {
        "read_s": loaded - started,
        "fit_s": fit_done - loaded,
        "validate_s": finished - fit_done,
        "total_s": finished - started,
    }
    return training.save_trained(
        spec,
        fitted,
        models=models,
        dims=dims,
        segments=segments,
        split=split,
        validation=validation,
        provenance=provenance,
        store_attrs=store_attrs,
        timings=times,
        extra={"dask": cluster},
    )
