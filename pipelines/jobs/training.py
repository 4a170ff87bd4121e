"""The in-memory training job behind ``avscene train``: build, split, fit, validate, write the run.

:func:`train` runs the job of a :class:`TrainSpec` (the command builds it from its options)
and returns the run record. Its parts: :func:`build` turns the spec into an estimator of
:mod:`classifiers.systems`; :func:`split_rows` gives the training and validation rows (a split
file, the baseline's split for its recipe, else whole locations held out); :func:`fit` fits the
estimator; :func:`validate` scores the held-out clips under the run's test protocol;
:func:`save_trained` writes the run directory (:mod:`pipelines.jobs.runs`) with its
``split.csv``. The Dask path (:mod:`pipelines.jobs.dask_training`) reuses them.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from classifiers import registry
from featurestore.provenance import sha256_file
from pipelines.jobs import checkpoint_runs, recipe, runs, split_files
from pipelines.jobs.specs import RunRecord, TrainSpec

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

#: ``(train_rows, val_rows)``: positions of the training and validation data rows.
Split = tuple[NDArray[Any], NDArray[Any]]

log = logging.getLogger(__name__)

#: The models by ``--model`` name (:data:`classifiers.registry.MODELS`, which imports no
#: estimator until one is used) and the fusions of :mod:`classifiers.systems` (repeated here:
#: ``--help`` needs no sklearn import).
MODELS = registry.MODELS
FUSIONS = ("none", "early", "late", "weighted", "stack", "proposed")


#: The split file of every run directory.
SPLIT_FILE = "split.csv"
#: How segment runs normalise (each estimator's own z-score, fitted on its training rows).
ESTIMATOR_NORMALISATION = "each estimator z-scores with the statistics of its training rows"


def train(spec: TrainSpec) -> RunRecord:
    """Train the system of ``spec`` in this process and write its run directory.

    Reads the training fold's rows from the store (segments, or frames for the recipe), splits
    them, fits the system (or loads the ``from_checkpoint`` networks), scores the validation
    rows and writes ``spec.out``.

    Parameters
    ----------
    spec : TrainSpec
        Without Dask options (those go to :func:`pipelines.jobs.dask_training.train`).

    Returns
    -------
    dict
        The run record, as written to ``run.json``.

    Raises
    ------
    AvsceneError
        Options that do not go together, an existing run directory without ``overwrite``,
        unreadable input (one line each).
    """
    from featurestore.store import FeatureStore

    if spec.uses_dask:
        raise ValueError("a Dask spec trains with pipelines.jobs.dask_training.train")
    spec = check_spec(spec)
    features = list(spec.features)
    runs.check_out(spec.out, overwrite=spec.overwrite)
    protocol = dict(recipe.FRAME_PROTOCOL if is_recipe(spec) else recipe.SEGMENT_PROTOCOL)
    loaded_states = checkpoint_runs.read_states(spec, features) if spec.from_checkpoint else None
    started = time.perf_counter()
    with runs.apply_threads(spec.threads), FeatureStore.open(spec.store, mode="r") as store:
        provenance = runs.feature_provenance(store, features)
        declared = {name: int(store.feature_attrs(name)["dim"]) for name in features}
        given = recipe.load_mean_std(spec.mean_std, features, declared)
        network = (
            checkpoint_runs.system(loaded_states, features, declared) if loaded_states else None
        )
        rows = recipe.read_rows(
            store, features, fold=spec.train_fold, protocol=protocol, pooling=spec.pooling
        )
        store_attrs = dict(store.attrs)
        X = rows.X(features)
        dims = {name: int(rows.features[name].shape[-1]) for name in features}
        split, split_record = split_rows(spec, store, rows)
        loaded = time.perf_counter()
        log.info(
            "read %d %s of %d clips (%s) in %.1f s",
            len(rows),
            "frames" if recipe.uses_frames(protocol) else "segments",
            len(np.unique(rows.clip_id)),
            "+".join(features),
            loaded - started,
        )
        fitted, models, protocol, extra = fit_system(
            spec, features, dims, X, rows, split, protocol, given, loaded_states, network
        )
        fit_done = time.perf_counter()
        validation = validate(fitted, X, rows, split, protocol=protocol)
        finished = time.perf_counter()
    times = {
        "read_s": loaded - started,
        "fit_s": fit_done - loaded,
        "validate_s": finished - fit_done,
        "total_s": finished - started,
    }
    return save_trained(
        spec,
        fitted,
        models=models,
        dims=dims,
        segments=rows,
        split=split,
        validation=validation,
        provenance=provenance,
        store_attrs=store_attrs,
        timings=times,
        protocol=protocol,
        split_record=split_record,
        extra=extra,
    )


def check_spec(spec: TrainSpec) -> TrainSpec:
    """Refuse option combinations before any reading (one line each); return the spec to train.

    A ``from_checkpoint`` spec comes back with preset ``dcase2021`` (the recipe's protocol,
    recorded as its preset).
    """
    features = list(spec.features)
    recipe_run = is_recipe(spec)
    if spec.uses_dask:
        if recipe_run or spec.split or spec.mean_std:
            raise runs.RunFormatError(
                "--dask trains avscene's segment systems; train "
                "--preset dcase2021, --from-checkpoint, --split and "
                "--mean-std without --dask"
            )
        return spec
    if spec.mean_std and not recipe_run:
        raise runs.RunFormatError(
            "--mean-std normalises the dcase2021 recipe: add --preset "
            "dcase2021 (or --from-checkpoint)"
        )
    if spec.from_checkpoint:
        checkpoint_runs.parts(spec, features)
        return dataclasses.replace(spec, preset="dcase2021")
    build(spec, features, dict.fromkeys(features, 1))
    return spec


def fit_system(
    spec: TrainSpec,
    features: Sequence[str],
    dims: dict[str, int],
    X: NDArray[Any],
    rows: Any,
    split: Split,
    protocol: dict[str, Any],
    given: dict[str, tuple],
    loaded_states: list[tuple[str, str, dict[str, Any]]] | None,
    network: Any,
) -> tuple[Any, dict[str, str], dict[str, Any], dict[str, Any] | None]:
    """``(fitted, models, protocol, extra record keys)``: trained, or the checked ``network``
    of the ``from_checkpoint`` files (``given``: the ``mean_std`` statistics)."""
    if not is_recipe(spec):
        estimator, models = build(spec, features, dims)
        protocol["normalisation"] = ESTIMATOR_NORMALISATION
        return fit(estimator, X, rows, split), models, protocol, None
    from classifiers.systems import feature_columns

    mean, std, normalisation = recipe.normalisation(X, split[0], feature_columns(dims), given)
    protocol["normalisation"] = normalisation
    models = dict.fromkeys(features, "baseline")
    if network is not None:
        assert loaded_states is not None  # the network is made of the loaded states
        return (
            checkpoint_runs.normalised_run(network, mean, std),
            models,
            protocol,
            {"checkpoints": checkpoint_runs.record(loaded_states)},
        )
    estimator, models = build(spec, features, dims)
    estimator.set_params(mean=mean, std=std)
    return fit(estimator, X, rows, split), models, protocol, None


def is_recipe(spec: TrainSpec) -> bool:
    """Whether the spec asks for the DCASE 2021 baseline recipe (frame rows, its protocol)."""
    from classifiers.presets import RECIPES

    return spec.preset in RECIPES or bool(spec.from_checkpoint)


def save_trained(
    spec: TrainSpec,
    fitted: Any,
    *,
    models: dict[str, str],
    dims: dict[str, int],
    segments: Any,
    split: Split,
    validation: dict[str, Any] | None,
    provenance: dict[str, dict[str, Any]],
    store_attrs: dict[str, Any],
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
    protocol: dict[str, Any] | None = None,
    split_record: dict[str, Any] | None = None,
) -> RunRecord:
    """Write the run directory (model bundle, ``split.csv``, ``run.json``); return the record.

    ``protocol`` is the run's test protocol (default: segments); ``split_record`` says where the
    split came from; ``extra`` adds top-level keys to the record (e.g. the Dask cluster of a
    distributed run, the checkpoints of an imported run).
    """
    from classifiers.calibration import TemperatureScaledClassifier
    from featurestore.provenance import package_versions, utc_now

    features = list(dims)
    protocol = protocol or {**recipe.SEGMENT_PROTOCOL, "normalisation": ESTIMATOR_NORMALISATION}
    bundle = {
        "estimator": fitted,
        "features": features,
        "dims": dims,
        "pooling": spec.pooling,
        "classes": [str(c) for c in fitted.classes_],
    }
    train_rows = split[0]
    unit = "frames" if recipe.uses_frames(protocol) else "segments"
    record = {
        "format": runs.RUN_FORMAT,
        "format_version": runs.RUN_FORMAT_VERSION,
        "created": utc_now(),
        "command": spec.command,
        "system": {
            "features": features,
            "models": models,
            "fusion": spec.fusion,
            "preset": spec.preset,
            "pooling": spec.pooling,
            "seed": spec.seed,
            "val_fraction": spec.val_fraction,
            "temperature": isinstance(fitted, TemperatureScaledClassifier),
            "threads": spec.threads,
        },
        "protocol": protocol,
        "split": {
            **(split_record or {"method": "location" if len(split[1]) else "none"}),
            "file": SPLIT_FILE,
        },
        "estimator": {
            "class": type(fitted).__name__,
            "params": {
                k: v
                for k, v in fitted.get_params(deep=True).items()
                if not hasattr(v, "get_params")
            },
        },
        "versions": package_versions(),
        "store": {
            "path": runs.store_location(spec.store),
            "attrs": store_attrs,
            "train_fold": spec.train_fold,
            "features": provenance,
        },
        "training": {
            **describe_rows(segments, train_rows, unit=unit),
            "locations": sorted(set(np.asarray(segments.groups)[train_rows].astype(str).tolist())),
        },
        "seen_cities": sorted(set(np.asarray(segments.city).astype(str).tolist())),
        "validation": validation,
        "timings": timings,
        "evaluations": {},
        **(extra or {}),
    }
    run_dir = pathlib.Path(spec.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    split_files.write_split(
        run_dir / SPLIT_FILE,
        *split_files.clip_roles(np.asarray(segments.clip_id), split),
        within=run_dir,
    )
    runs.save_run(spec.out, bundle, record)
    return record


def build(
    spec: TrainSpec, features: Sequence[str], dims: dict[str, int]
) -> tuple[Any, dict[str, str]]:
    """Return ``(estimator, {feature: model})`` of the spec.

    The recipe's estimator is a :class:`~classifiers.scaling.NormalisedClassifier` (its
    statistics are set before fitting, :func:`pipelines.jobs.recipe.normalisation`), never
    temperature-scaled; other systems are temperature-scaled unless ``spec.temperature`` is off or
    there is no validation data.
    """
    from classifiers import systems
    from classifiers.calibration import TemperatureScaledClassifier
    from classifiers.scaling import NormalisedClassifier

    try:
        models = systems.parse_models(spec.model, features)
        for model in models.values():
            registry.model(model)
        estimator = systems.make_system(
            dims,
            models,
            spec.fusion,
            preset=spec.preset,
            random_state=spec.seed,
            n_jobs=spec.threads,
        )
    except ValueError as error:
        raise runs.RunFormatError(str(error)) from error
    if is_recipe(spec):
        return NormalisedClassifier(estimator), models
    if spec.temperature and (spec.val_fraction > 0 or spec.split):
        estimator = TemperatureScaledClassifier(estimator, random_state=spec.seed)
    return estimator, models


def split_rows(spec: TrainSpec, store: FeatureStore, rows: Any) -> tuple[Split, dict[str, Any]]:
    """``((train_rows, val_rows), record)`` of the training fold's data rows.

    A ``split`` file wins; the recipe uses the baseline's split of the fold's clips (the whole
    clip table, as ``split_data.py`` split the whole fold1_train list); otherwise whole
    locations are held out per class from the rows (``val_fraction`` 0: none).
    """
    from classifiers import splits

    clips = store.clips
    fold = store.select(fold=spec.train_fold)
    if spec.split:
        roles, kind = split_files.read_split_file(spec.split, clips, fold, fold=spec.train_fold)
        record: dict[str, Any] = {
            "method": "file",
            "source": str(spec.split),
            "format": kind,
            "sha256": sha256_file(spec.split),
        }
    elif is_recipe(spec):
        roles = split_files.split_clips(
            clips, fold, method="dcase2021", val_fraction=spec.val_fraction
        )
        record = {
            "method": "dcase2021",
            "val_fraction": spec.val_fraction,
            "seed": split_files.DEFAULT_SEEDS["dcase2021"],
            "location_key": "the number in the file name (split_data.py)",
        }
    else:
        y, groups = np.asarray(rows.y).astype(str), np.asarray(rows.groups).astype(str)
        if spec.val_fraction > 0:
            split = splits.location_split(
                y, groups, val_fraction=spec.val_fraction, random_state=spec.seed
            )
            return split, {
                "method": "location",
                "val_fraction": spec.val_fraction,
                "seed": spec.seed,
            }
        return (np.arange(len(y)), np.zeros(0, dtype=np.int64)), {"method": "none"}
    split = split_files.rows_of_roles(
        rows.clip_id, clips.clip_id[fold], roles, where=str(spec.split or "the dcase2021 split")
    )
    if not len(split[0]):
        raise runs.RunFormatError(
            f"{spec.split or 'the dcase2021 split'} leaves no training "
            f"clips with {', '.join(rows.names)}"
        )
    return split, record


def fit(estimator: Any, X: NDArray[Any], segments: Any, split: Split) -> Any:
    """Fit on the training rows, the validation rows as ``eval_set``; return the fitted system."""
    y, groups = np.asarray(segments.y).astype(str), np.asarray(segments.groups).astype(str)
    train_rows, val_rows = split
    eval_set = (X[val_rows], y[val_rows]) if len(val_rows) else None
    try:
        return estimator.fit(
            X[train_rows], y[train_rows], groups=groups[train_rows], eval_set=eval_set
        )
    except ValueError as error:
        raise runs.RunFormatError(f"training failed: {error}") from error


def validate(
    fitted: Any, X: Any, segments: Any, split: Split, *, protocol: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Metrics of the fitted system on the validation rows (no bootstrap), or None.

    Frame runs are scored with the baseline's protocol (picked frames, clip rule over all
    frames); segment runs on their segments.
    """
    from classifiers import metrics

    val_rows = split[1]
    if not len(val_rows):
        return None
    if protocol is not None and recipe.uses_frames(protocol):
        scored = recipe.score_frames(fitted, segments.subset(val_rows), X[val_rows])
        report = metrics.evaluate(
            scored.y.astype(str),
            scored.proba,
            classes=scored.classes,
            clip_ids=scored.clip_id,
            n_bootstrap=0,
            clip_proba=scored.clip_proba,
            clip_pred=scored.clip_pred,
        )
        summary = describe_rows(segments, val_rows, unit="frames")
        summary["n_segments"] = int(len(scored.clip_id))
    else:
        proba = fitted.predict_proba(X[val_rows])
        classes = [str(c) for c in fitted.classes_]
        report = metrics.evaluate(
            np.asarray(segments.y)[val_rows].astype(str),
            proba,
            classes=classes,
            clip_ids=np.asarray(segments.clip_id)[val_rows],
            n_bootstrap=0,
        )
        summary = describe_rows(segments, val_rows)
    summary["locations"] = sorted(set(np.asarray(segments.groups)[val_rows].astype(str).tolist()))
    for level in ("segment", "clip"):
        summary[level] = {
            k: report[level][k]
            for k in ("log_loss", "accuracy", "overall_log_loss", "overall_accuracy")
        }
    summary["temperature"] = getattr(fitted, "temperature_", None)
    if summary["temperature"] is not None:
        raw = fitted.estimator_.predict_proba(X[val_rows])
        y_index = np.searchsorted(fitted.classes_, np.asarray(segments.y)[val_rows])
        summary["segment"]["log_loss_before_temperature"] = metrics.dcase_log_loss(y_index, raw)
    return summary


def describe_rows(segments: Any, rows: NDArray[Any], *, unit: str = "segments") -> dict[str, Any]:
    """Counts of rows (``n_segments`` or ``n_frames``), clips, locations and classes."""
    scenes, counts = np.unique(np.asarray(segments.y)[rows].astype(str), return_counts=True)
    return {
        f"n_{unit}": int(len(rows)),
        "n_clips": int(len(np.unique(np.asarray(segments.clip_id)[rows]))),
        "n_locations": int(len(np.unique(np.asarray(segments.groups)[rows]))),
        "classes": dict(zip(scenes.tolist(), counts.tolist())),
    }
