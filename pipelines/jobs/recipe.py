"""The test protocol a run records, and the DCASE 2021 baseline recipe's parts in the pipelines.

Every run records ``protocol`` in ``run.json``; ``evaluate``, ``predict`` and ``train``'s own
validation score a run the way it says (runs without one are segment runs):

- ``{"rows": "segments", "segment": "pooled", "clip": "sum-proba"}``: avscene's default. Rows
  are 1-s segments (frames pooled per second), a clip's segment probabilities are summed.
- ``{"rows": "frames", "segment": "frame-pick", "clip": "sum-log-softmax"}``: the baseline's
  (``--preset dcase2021`` and ``--from-checkpoint``). Rows are frames
  (:func:`featurestore.store.read_frame_table`); segment k of a clip is ONE picked frame and the
  clip decision uses all its frames (:mod:`classifiers.protocols`).

``normalisation`` says how the recipe's inputs were normalised: per feature, given
``global_mean_std.npz`` statistics (``--mean-std``, ``TrainSpec.mean_std``) or the mean and
population standard deviation of the training frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from featurestore.errors import UsageError
from featurestore.provenance import sha256_file
from pipelines.jobs import runs
from pipelines.jobs.specs import PathLike, RunRecord

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

SEGMENT_PROTOCOL = {"rows": "segments", "segment": "pooled", "clip": "sum-proba"}
FRAME_PROTOCOL = {"rows": "frames", "segment": "frame-pick", "clip": "sum-log-softmax"}
#: Keys of a baseline ``global_mean_std.npz``.
MEAN_KEY, STD_KEY = "global_mean", "global_std"
#: Frames predicted at a time.
BATCH_ROWS = 1 << 16


def protocol_of(record: dict) -> dict:
    """The test protocol of a run record (segment runs written before protocols had none)."""
    return {**SEGMENT_PROTOCOL, **record.get("protocol", {})}


def uses_frames(protocol: dict) -> bool:
    """Whether the protocol's rows are frames."""
    return protocol["rows"] == "frames"


@dataclass
class Scored:
    """A fold's predictions under a protocol, one row per 1-s segment (as metrics take them).

    ``clip_proba`` / ``clip_pred`` (clips in ``np.unique(clip_id)`` order) are None when the clip
    level is the default (segment probabilities summed).
    """

    clip_id: np.ndarray
    second: np.ndarray
    y: np.ndarray
    city: np.ndarray
    proba: np.ndarray
    classes: list
    clip_proba: np.ndarray | None = None
    clip_pred: np.ndarray | None = None


def read_rows(
    store: FeatureStore,
    features: Sequence[str],
    *,
    fold: str | None,
    protocol: dict,
    pooling: str = "mean",
    need_labels: bool = True,
) -> Any:
    """The rows of ``fold`` a protocol works on: segments or a frame table (labels checked)."""
    if not uses_frames(protocol):
        return runs.read_segments(
            store, features, fold=fold, pooling=pooling, need_labels=need_labels
        )
    from featurestore.errors import StoreFormatError
    from featurestore.store import read_frame_table

    table = read_frame_table(
        store, features, selection=None if fold is None else store.select(fold=fold)
    )
    where = f"fold {fold!r} of {store.label}" if fold else store.label
    if len(table) == 0:
        raise StoreFormatError(
            f"{where} has no frames with all of {', '.join(features)} "
            "(no clips in that fold, or features not extracted yet)"
        )
    unlabelled = np.flatnonzero(np.asarray(table.scene) == "")
    if need_labels and unlabelled.size:
        raise StoreFormatError(
            f"{where}: clip {str(table.clip_id[unlabelled[0]])!r} has no "
            "scene label; training and evaluation need labels"
        )
    return table


def read_for_run(
    run_dir: str | os.PathLike, store_path: str, *, fold: str | None, need_labels: bool = True
) -> tuple[dict[str, Any], RunRecord, Any, Any]:
    """Load a run and read ``fold`` of a store as the run's protocol says (provenance checked).

    Returns
    -------
    bundle, record : the run's model bundle and record
    rows : segments or a frame table of the fold
    clips : the store's clip table
    """
    from featurestore.store import FeatureStore

    bundle, record = runs.load_run(run_dir)
    with FeatureStore.open(store_path, mode="r") as store:
        runs.check_provenance(record, store, run_dir)
        rows = read_rows(
            store,
            bundle["features"],
            fold=fold,
            protocol=protocol_of(record),
            pooling=bundle["pooling"],
            need_labels=need_labels,
        )
        return bundle, record, rows, store.clips


def score(bundle: dict, record: dict, rows: Any) -> Scored:
    """The run's predictions on data rows under its protocol, one row per 1-s segment."""
    X = rows.X(bundle["features"])
    if X.ndim != 2 or X.shape[1] != sum(bundle["dims"].values()):
        raise runs.RunFormatError(
            f"the store gives rows of shape {X.shape}; the model expects "
            f"{sum(bundle['dims'].values())} columns"
        )
    if uses_frames(protocol_of(record)):
        return score_frames(bundle["estimator"], rows, X)
    proba, classes = runs.scene_probabilities(bundle, X)
    return Scored(
        clip_id=np.asarray(rows.clip_id),
        second=np.asarray(rows.second),
        y=np.asarray(rows.y),
        city=np.asarray(rows.city),
        proba=proba,
        classes=classes,
    )


def score_frames(estimator: Any, table: Any, X: np.ndarray) -> Scored:
    """The baseline's test protocol on every frame of ``table`` (rows of whole clips).

    Segment k of a clip is the softmax of its k-th picked frame
    (:func:`classifiers.protocols.frame_pick`); its clip gets the softmax averaged over all its
    frames and the arg-max of the summed log-softmax (:func:`classifiers.protocols.clip_decision`).
    """
    from classifiers.input_checks import align_proba
    from classifiers.protocols import clip_decision, frame_pick

    model_classes = [str(c) for c in estimator.classes_]
    classes = runs.output_classes(model_classes)
    log_proba = frame_log_proba(estimator, X)
    firsts = np.flatnonzero(np.asarray(table.frame) == 0)
    segments = np.asarray(table.n_segments)[firsts]
    clip_of, frame = frame_pick(np.asarray(table.n_frames)[firsts], segments)
    picked = firsts[clip_of] + frame
    second = np.arange(len(picked)) - (np.cumsum(segments) - segments)[clip_of]
    names, clip_index = np.unique(np.asarray(table.clip_id).astype(str), return_inverse=True)
    clip_proba, clip_pred = clip_decision(log_proba, clip_index, len(names))
    column = np.asarray([classes.index(c) for c in model_classes])
    return Scored(
        clip_id=np.asarray(table.clip_id)[picked],
        second=second,
        y=np.asarray(table.y)[picked],
        city=np.asarray(table.city)[picked],
        proba=align_proba(np.exp(log_proba[picked]), model_classes, classes),
        classes=classes,
        clip_proba=align_proba(clip_proba, model_classes, classes),
        clip_pred=column[clip_pred],
    )


def frame_log_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Per-row log-probabilities (the estimator's own log-softmax when it has one), in batches."""
    parts = []
    for start in range(0, len(X), BATCH_ROWS):
        block = X[start : start + BATCH_ROWS]
        try:
            if hasattr(estimator, "predict_log_proba"):
                parts.append(np.asarray(estimator.predict_log_proba(block), dtype=np.float64))
            else:
                proba = np.asarray(estimator.predict_proba(block), dtype=np.float64)
                parts.append(np.log(np.clip(proba, np.finfo(np.float64).tiny, None)))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
            raise runs.RunFormatError(
                f"the run's model cannot predict on these features "
                f"({type(error).__name__}: {error})"
            ) from None
    return np.concatenate(parts) if parts else np.zeros((0, len(estimator.classes_)))


# -- normalisation ------------------------------------------------------------------------


def load_mean_std(
    pairs: Sequence[tuple[str, str | os.PathLike]] | None,
    features: Sequence[str],
    dims: dict[str, int],
) -> dict[str, tuple]:
    """Given statistics per feature: ``{feature: (mean, std, record)}`` from ``--mean-std``.

    Each file is a ``global_mean_std.npz`` (read with ``allow_pickle=False``) holding
    ``global_mean`` and ``global_std``, each a scalar or one value per dimension.
    """
    paths = {}
    for key, path in pairs or ():
        matches = [f for f in features if f == key] or [f for f in features if key in f]
        if len(matches) != 1:
            raise UsageError(
                f"--mean-std key {key!r} matches {len(matches)} of the features {list(features)}"
            )
        if matches[0] in paths:
            raise UsageError(f"--mean-std gives {matches[0]!r} twice")
        paths[matches[0]] = path
    return {
        feature: _read_mean_std(path, feature, dims[feature]) for feature, path in paths.items()
    }


def _read_mean_std(
    path: PathLike, feature: str, dim: int
) -> tuple[NDArray[Any], NDArray[Any], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in (MEAN_KEY, STD_KEY) if key in data}
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (--mean-std {feature}=...)") from None
    except (OSError, ValueError, EOFError) as error:
        raise UsageError(f"{path}: not a numpy .npz of plain arrays ({error})") from None
    values = []
    for key in (MEAN_KEY, STD_KEY):
        if key not in arrays:
            raise UsageError(
                f"{path}: no array {key!r} (a global_mean_std.npz holds {MEAN_KEY} and {STD_KEY})"
            )
        value = arrays[key]
        if value.shape not in ((), (dim,)) or value.dtype.kind not in "fiu":
            raise UsageError(
                f"{path}: {key} has shape {value.shape} and dtype {value.dtype}; "
                f"{feature} needs a number or {dim} numbers"
            )
        values.append(np.broadcast_to(value.astype(np.float64), (dim,)).copy())
    mean, std = values
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise UsageError(f"{path}: {MEAN_KEY} must be finite and {STD_KEY} finite and > 0")
    record = {
        "source": "given",
        "file": str(path),
        "sha256": sha256_file(path),
        "shape": list(arrays[MEAN_KEY].shape),
    }
    return mean, std, record


def normalisation(
    X: np.ndarray, train_rows: np.ndarray, columns: dict[str, slice], given: dict[str, tuple]
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per-column mean and std of the recipe, and what the run records about them.

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_columns)
    train_rows : ndarray of int, the training frames
    columns : dict feature -> slice of ``X``
    given : dict feature -> (mean, std, record), from :func:`load_mean_std`

    Returns
    -------
    mean, std : ndarray, shape (n_columns,)
    record : dict feature -> how its statistics were obtained
    """
    from classifiers.scaling import ZScore

    mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
    record = {}
    for feature, cols in columns.items():
        if feature in given:
            mean[cols], std[cols], record[feature] = given[feature]
            continue
        if not len(train_rows):
            raise UsageError(
                f"no training frames to compute the statistics of {feature} (give --mean-std)"
            )
        mean[cols], deviation = _column_statistics(X, train_rows, cols)
        std[cols] = np.where(deviation < ZScore().min_scale, 1.0, deviation)
        record[feature] = {
            "source": "training frames",
            "n_frames": int(len(train_rows)),
            "statistic": "per-dimension mean and population std (ddof 0); "
            "dimensions with std below 1e-6 are only centred",
        }
    return mean, std, record


def _column_statistics(
    X: NDArray[Any], rows: NDArray[Any], cols: slice, *, chunk: int = 1 << 15
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Mean and population std of ``X[rows, cols]`` in float64, two passes over row chunks."""
    parts = [rows[start : start + chunk] for start in range(0, len(rows), chunk)]
    total = sum(X[part, cols].sum(axis=0, dtype=np.float64) for part in parts)
    mean = total / len(rows)
    squares = sum(np.square(X[part, cols] - mean).sum(axis=0) for part in parts)
    return mean, np.sqrt(squares / len(rows))
