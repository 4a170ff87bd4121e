"""Run directories of ``avscene train``: the model, its JSON record, provenance checks, segments.

A run directory holds:

- ``model.joblib``: ``{"estimator", "features", "dims", "pooling", "classes", "format_version"}``;
- ``run.json``: parameters, package versions, the store and the fingerprints of the features the
  model was trained on, training/validation counts and metrics, timings, and a summary of every
  later ``avscene evaluate`` (``evaluations``);
- ``evaluation-<fold>.json`` and the plots written by ``avscene evaluate``.

Applying a model to a store whose feature definition (extractor parameters, weights, dim, storage
dtype: the store's fingerprint) differs from training raises ProvenanceMismatchError.
"""

import json
import os
import pathlib

import numpy as np

from featurestore.datasets import SCENES
from featurestore.errors import (
    ProvenanceMismatchError,
    RunFormatError,
    RunNotFoundError,
    StoreFormatError,
)
from pipelines.options import jsonable

RUN_FORMAT = "avscene-run"
RUN_FORMAT_VERSION = 1
RECORD_FILE = "run.json"
MODEL_FILE = "model.joblib"


def check_out(run_dir, *, overwrite):
    """Refuse to replace an existing run directory unless ``overwrite``."""
    if (pathlib.Path(run_dir) / RECORD_FILE).exists() and not overwrite:
        raise RunFormatError(f"{run_dir} holds a run already (--overwrite replaces it)")


def store_location(where):
    """Absolute path for local stores, the URL unchanged otherwise."""
    return where if "://" in str(where) else os.path.abspath(where)


def feature_provenance(store, features):
    """Return ``{feature: {"fingerprint", "params"}}`` for the named features of ``store``."""
    missing = [name for name in features if name not in store.features]
    if missing:
        raise StoreFormatError(f"{store.label} has no feature {missing[0]!r} "
                               f"(it has {', '.join(store.features) or 'none'})")
    return {name: {"fingerprint": store.feature_fingerprint(name),
                   "params": store.feature_params(name)} for name in features}


def check_provenance(record, store, run_dir):
    """Raise ProvenanceMismatchError unless ``store`` holds the features the run was trained on."""
    for name, trained in record["store"]["features"].items():
        if name not in store.features:
            raise ProvenanceMismatchError(
                f"{store.label} has no feature {name!r}, which the model in {run_dir} was trained on")
        found = store.feature_fingerprint(name)
        if found != trained["fingerprint"]:
            raise ProvenanceMismatchError(
                f"feature {name!r} of {store.label} (fingerprint {found[:12]}) differs from the "
                f"one the model in {run_dir} was trained on ({trained['fingerprint'][:12]}): "
                "extracted with other parameters or weights; retrain or use a matching store")


def read_segments(store, features, *, fold=None, pooling="mean", need_labels=True):
    """Return the joined segments of ``features`` for the clips of ``fold`` (None: every clip).

    Raises StoreFormatError when nothing is selected or, with ``need_labels``, a segment has no
    scene label.
    """
    selection = None if fold is None else store.select(fold=fold)
    segments = store.segments(features, selection=selection, pooling=pooling)
    where = f"fold {fold!r} of {store.label}" if fold else store.label
    if len(segments) == 0:
        raise StoreFormatError(f"{where} has no segments with all of {', '.join(features)} "
                               "(no clips in that fold, or features not extracted yet)")
    if need_labels:
        unlabelled = np.flatnonzero(np.asarray(segments.scene) == "")
        if unlabelled.size:
            raise StoreFormatError(f"{where}: clip {str(segments.clip_id[unlabelled[0]])!r} has "
                                   "no scene label; training and evaluation need labels")
    return segments


def read_for_run(run_dir, store_path, *, fold, need_labels=True):
    """Load a run and read one fold of a store it may be applied to (provenance checked).

    Returns
    -------
    bundle, record : the run's model bundle and JSON record
    segments : featurestore.store.feature_store.Segments of the fold
    X : ndarray, shape (n_segments, n_columns), the model's input
    clips : the store's clip table
    """
    from featurestore.store import FeatureStore

    bundle, record = load_run(run_dir)
    with FeatureStore.open(store_path, mode="r") as store:
        check_provenance(record, store, run_dir)
        segments = read_segments(store, bundle["features"], fold=fold,
                                 pooling=bundle["pooling"], need_labels=need_labels)
        return bundle, record, segments, features_matrix(segments, bundle), store.clips


def output_classes(model_classes):
    """Columns of outputs: the ten DCASE scenes in order, then any other trained class (sorted)."""
    extra = sorted(str(c) for c in model_classes if str(c) not in SCENES)
    return list(SCENES) + extra


def scene_probabilities(bundle, X):
    """Return ``(proba, classes)``: the model's probabilities on ``X`` in :func:`output_classes`
    columns (zero for classes training never saw)."""
    from classifiers.checks import align_proba

    estimator = bundle["estimator"]
    classes = output_classes(estimator.classes_)
    proba = estimator.predict_proba(X)
    return align_proba(proba, [str(c) for c in estimator.classes_], classes), classes


def features_matrix(segments, bundle):
    """The model's input matrix from segments: its features side by side in training order."""
    X = segments.X(bundle["features"])
    if X.ndim != 2 or X.shape[1] != sum(bundle["dims"].values()):
        raise RunFormatError(f"segments give shape {X.shape}; the model expects "
                             f"{sum(bundle['dims'].values())} columns (pooling {bundle['pooling']!r})")
    return X


def write_json(path, document):
    """Write ``document`` as indented JSON via a temporary file (never a half-written file)."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=jsonable) + "\n")
    os.replace(temporary, path)


def save_run(run_dir, bundle, record):
    """Write ``model.joblib`` and ``run.json`` into ``run_dir`` (created if needed)."""
    import joblib

    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / (MODEL_FILE + ".tmp")
    joblib.dump(bundle, temporary)
    os.replace(temporary, run_dir / MODEL_FILE)
    write_json(run_dir / RECORD_FILE, record)


def load_record(run_dir):
    """Return the run record of ``run_dir``; RunNotFoundError / RunFormatError otherwise."""
    path = pathlib.Path(run_dir) / RECORD_FILE
    if not path.is_file():
        raise RunNotFoundError(f"{run_dir} is not a run directory (no {RECORD_FILE})")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RunFormatError(f"{path} is not valid JSON: {error}") from error
    if record.get("format") != RUN_FORMAT:
        raise RunFormatError(f"{path} is not an avscene run record")
    return record


def load_run(run_dir):
    """Return ``(bundle, record)`` of a run directory."""
    import joblib

    record = load_record(run_dir)
    path = pathlib.Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise RunNotFoundError(f"{run_dir} has no {MODEL_FILE}")
    bundle = joblib.load(path)
    if not isinstance(bundle, dict) or "estimator" not in bundle:
        raise RunFormatError(f"{path} does not hold an avscene model")
    return bundle, record


def apply_threads(n_threads):
    """Context manager limiting BLAS/OpenMP threads (None: no limit). The estimators' own
    ``n_jobs`` covers torch and LightGBM."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n_threads)


def system_name(record):
    """Short label of a run's system: ``lr+lgbm late: openl3_audio+openl3_video``."""
    system = record["system"]
    models = sorted(set(system["models"].values()))
    return f"{'+'.join(models)} {system['fusion']}: {'+'.join(system['features'])}"
