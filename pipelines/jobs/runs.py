"""Run directories of ``avscene train``: the model, its JSON record, provenance checks, segments.

A run directory holds data only; nothing in it is unpickled or executed when it is read:

- ``model.json``: the model's features, dims, pooling and classes, and the fitted estimator as a
  tree of class names (from a closed list), parameters and attributes
  (:mod:`classifiers.persistence`);
- ``model.npz``: the estimator's arrays (read with ``allow_pickle=False``);
- ``model-<name>.txt``: LightGBM boosters in LightGBM's own text format, when there are any;
- ``run.json``: parameters, package versions, the store and the fingerprints of the features the
  model was trained on, training/validation counts and metrics, timings, and a summary of every
  later ``avscene evaluate`` (``evaluations``);
- ``evaluation-<fold>.json`` and the plots written by ``avscene evaluate``.

A run written by an older avscene (a pickled ``model.joblib``) is refused with a one-line error
asking to retrain it. Applying a model to a store whose feature definition (extractor parameters, weights, dim, storage
dtype: the store's fingerprint) differs from training raises ProvenanceMismatchError.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from featurestore import outputs
from featurestore.datasets import SCENES
from featurestore.errors import (
    AvsceneError,
    ProvenanceMismatchError,
    RunFormatError,
    RunNotFoundError,
    StoreFormatError,
)
from pipelines.jobs.specs import PathLike, RunRecord

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

RUN_FORMAT = "avscene-run"
RUN_FORMAT_VERSION = 2
RECORD_FILE = "run.json"
MODEL_FILE = "model.json"
ARRAYS_FILE = "model.npz"
#: Written by avscene before run format 2 (a pickle): never read.
LEGACY_MODEL_FILE = "model.joblib"


def check_out(run_dir: PathLike, *, overwrite: bool) -> None:
    """Refuse to replace an existing run directory unless ``overwrite``."""
    if (pathlib.Path(run_dir) / RECORD_FILE).exists() and not overwrite:
        raise RunFormatError(f"{run_dir} holds a run already (--overwrite replaces it)")


def store_location(where: str) -> str:
    """Absolute path for local stores, the URL unchanged otherwise."""
    return where if "://" in str(where) else os.path.abspath(where)


def feature_provenance(store: FeatureStore, features: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Return ``{feature: {"fingerprint", "params"}}`` for the named features of ``store``."""
    missing = [name for name in features if name not in store.features]
    if missing:
        raise StoreFormatError(
            f"{store.label} has no feature {missing[0]!r} "
            f"(it has {', '.join(store.features) or 'none'})"
        )
    return {
        name: {
            "fingerprint": store.feature_fingerprint(name),
            "params": store.feature_params(name),
        }
        for name in features
    }


def check_provenance(record: RunRecord, store: FeatureStore, run_dir: PathLike) -> None:
    """Raise ProvenanceMismatchError unless ``store`` holds the features the run was trained on."""
    for name, trained in record["store"]["features"].items():
        if name not in store.features:
            raise ProvenanceMismatchError(
                f"{store.label} has no feature {name!r}, which the model in {run_dir} was trained on"
            )
        found = store.feature_fingerprint(name)
        if found != trained["fingerprint"]:
            raise ProvenanceMismatchError(
                f"feature {name!r} of {store.label} (fingerprint {found[:12]}) differs from the "
                f"one the model in {run_dir} was trained on ({trained['fingerprint'][:12]}): "
                "extracted with other parameters or weights; retrain or use a matching store"
            )


def read_segments(
    store: FeatureStore,
    features: Sequence[str],
    *,
    fold: str | None = None,
    pooling: str = "mean",
    need_labels: bool = True,
) -> Any:
    """Return the joined segments of ``features`` for the clips of ``fold`` (None: every clip).

    Raises StoreFormatError when nothing is selected or, with ``need_labels``, a segment has no
    scene label.
    """
    selection = None if fold is None else store.select(fold=fold)
    segments = store.segments(features, selection=selection, pooling=pooling)
    where = f"fold {fold!r} of {store.label}" if fold else store.label
    if len(segments) == 0:
        raise StoreFormatError(
            f"{where} has no segments with all of {', '.join(features)} "
            "(no clips in that fold, or features not extracted yet)"
        )
    if need_labels:
        unlabelled = np.flatnonzero(np.asarray(segments.scene) == "")
        if unlabelled.size:
            raise StoreFormatError(
                f"{where}: clip {str(segments.clip_id[unlabelled[0]])!r} has "
                "no scene label; training and evaluation need labels"
            )
    return segments


def output_classes(model_classes: Iterable[object]) -> list[str]:
    """Columns of outputs: the ten DCASE scenes in order, then any other trained class (sorted)."""
    extra = sorted(str(c) for c in model_classes if str(c) not in SCENES)
    return list(SCENES) + extra


def scene_probabilities(bundle: dict[str, Any], X: ArrayLike) -> tuple[NDArray[Any], list[str]]:
    """Return ``(proba, classes)``: the model's probabilities on ``X`` in :func:`output_classes`
    columns (zero for classes training never saw)."""
    from classifiers.input_checks import align_proba

    estimator = bundle["estimator"]
    classes = output_classes(estimator.classes_)
    try:
        proba = estimator.predict_proba(X)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
        raise RunFormatError(
            f"the run's model cannot predict on these features ({type(error).__name__}: {error})"
        ) from None
    return align_proba(proba, [str(c) for c in estimator.classes_], classes), classes


def features_matrix(segments: Any, bundle: dict[str, Any]) -> NDArray[Any]:
    """The model's input matrix from segments: its features side by side in training order."""
    X = segments.X(bundle["features"])
    if X.ndim != 2 or X.shape[1] != sum(bundle["dims"].values()):
        raise RunFormatError(
            f"segments give shape {X.shape}; the model expects "
            f"{sum(bundle['dims'].values())} columns (pooling {bundle['pooling']!r})"
        )
    return X


def write_json(path: PathLike, document: Any, *, within: PathLike | None = None) -> None:
    """Write ``document`` as indented JSON (:func:`featurestore.outputs.write_json`: a fresh
    temporary file renamed into place, never through a symbolic link)."""
    outputs.write_json(path, document, within=within, default=jsonable)


def output_files(run_dir: PathLike) -> list[str]:
    """Names of the files ``avscene train`` writes into ``run_dir`` that are there already (its
    fixed files and any LightGBM booster texts), to check before training."""
    run_dir = pathlib.Path(run_dir)
    boosters = sorted(p.name for p in run_dir.glob("model-*.txt")) if run_dir.is_dir() else []
    return [MODEL_FILE, ARRAYS_FILE, RECORD_FILE, *boosters]


def save_run(run_dir: PathLike, bundle: dict[str, Any], record: RunRecord) -> None:
    """Write the model files and ``run.json`` into ``run_dir`` (created if needed).

    ``bundle`` is ``{"estimator", "features", "dims", "pooling", "classes"}``; every file goes
    through a fresh temporary name and a rename (:mod:`featurestore.outputs`), ``run.json``
    last.
    """
    from classifiers.persistence import dump_estimator

    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tree, arrays, texts = dump_estimator(bundle["estimator"])
    model = {key: value for key, value in bundle.items() if key != "estimator"}
    model.update(
        format=RUN_FORMAT,
        format_version=RUN_FORMAT_VERSION,
        estimator=tree,
        texts={name: _text_file(name) for name in texts},
    )
    for name, text in texts.items():
        outputs.write_text(run_dir / _text_file(name), text, within=run_dir)
    outputs.write_npz(run_dir / ARRAYS_FILE, arrays, within=run_dir)
    write_json(run_dir / MODEL_FILE, model, within=run_dir)
    write_json(run_dir / RECORD_FILE, record, within=run_dir)
    (run_dir / LEGACY_MODEL_FILE).unlink(missing_ok=True)


def _text_file(name: str) -> str:
    return f"model-{name.replace('.', '-')}.txt"


def load_record(run_dir: PathLike) -> RunRecord:
    """Return the run record of ``run_dir``; RunNotFoundError / RunFormatError otherwise."""
    path = pathlib.Path(run_dir) / RECORD_FILE
    if not path.is_file():
        raise RunNotFoundError(f"{run_dir} is not a run directory (no {RECORD_FILE})")
    record = _read_json(path)
    if record.get("format") != RUN_FORMAT:
        raise RunFormatError(f"{path} is not an avscene run record")
    _check_version(record, path)
    return record


def _read_json(path: PathLike) -> dict[str, Any]:
    try:
        document = json.loads(pathlib.Path(path).read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFormatError(f"{path} is not valid JSON ({type(error).__name__})") from None
    if not isinstance(document, dict):
        raise RunFormatError(f"{path} does not hold a JSON object")
    return document


def _check_version(document: dict[str, Any], path: PathLike) -> None:
    version = document.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise RunFormatError(
            f"{path} was written in run format {version}, this avscene reads format "
            f"{RUN_FORMAT_VERSION} (older runs kept their model as a pickle): retrain it with "
            "avscene train"
        )


def load_run(run_dir: PathLike) -> tuple[dict[str, Any], RunRecord]:
    """Return ``(bundle, record)`` of a run directory, read from data files only."""
    from classifiers.persistence import load_estimator

    record = load_record(run_dir)
    run_dir = pathlib.Path(run_dir)
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise RunNotFoundError(f"{run_dir} has no {MODEL_FILE}")
    model = _read_json(path)
    _check_version(model, path)
    arrays = _read_arrays(run_dir / ARRAYS_FILE)
    try:
        texts = {
            name: (run_dir / file).read_text()
            for name, file in model["texts"].items()
            if pathlib.PurePath(file).name == file
        }
        bundle = {key: model[key] for key in ("features", "dims", "pooling", "classes")}
        bundle["estimator"] = load_estimator(model["estimator"], arrays, texts)
    except (KeyError, OSError, UnicodeDecodeError, AvsceneError) as error:
        raise RunFormatError(f"{path} does not describe an avscene model ({error})") from None
    return bundle, record


def _read_arrays(path: pathlib.Path) -> dict[str, NDArray[Any]]:
    """``{name: ndarray}`` of an npz file, refusing anything that would need unpickling."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise RunNotFoundError(f"{path.parent} has no {path.name}") from None
    except (ValueError, OSError, EOFError) as error:
        raise RunFormatError(f"{path} is not a numpy .npz of plain arrays ({error})") from None


def apply_threads(n_threads: int | None) -> AbstractContextManager[Any]:
    """Context manager limiting BLAS/OpenMP threads (None: no limit). The estimators' own
    ``n_jobs`` covers torch and LightGBM."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n_threads)


def system_name(record: RunRecord) -> str:
    """Short label of a run's system: ``lr+lgbm late: openl3_audio+openl3_video``."""
    system = record["system"]
    models = sorted(set(system["models"].values()))
    return f"{'+'.join(models)} {system['fusion']}: {'+'.join(system['features'])}"


def jsonable(value: Any) -> Any:
    """JSON form of numpy scalars and arrays, sets and tuples (``json.dumps(default=...)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)
