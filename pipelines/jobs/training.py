"""The in-memory training job behind ``avscene train``: build, split, fit, validate, write the run.

:func:`build` turns the command's options into an estimator of :mod:`classifiers.systems`;
:func:`split_rows` gives the training and validation rows (a split file, the baseline's split
for its recipe, else whole locations held out); :func:`fit` fits the estimator;
:func:`validate` scores the held-out clips under the run's test protocol; :func:`save_trained`
writes the run directory (:mod:`pipelines.jobs.runs`) with its ``split.csv``. The Dask path
(:mod:`pipelines.jobs.dask_training`) reuses them.
"""

import json
import pathlib
import sys

import numpy as np

from classifiers import registry
from featurestore.provenance import sha256_file
from pipelines.jobs import recipe, runs, split_files

#: The models by ``--model`` name (:data:`classifiers.registry.MODELS`, which imports no
#: estimator until one is used) and the fusions of :mod:`classifiers.systems` (repeated here:
#: ``--help`` needs no sklearn import).
MODELS = registry.MODELS
FUSIONS = ("none", "early", "late", "weighted", "stack", "proposed")


#: The split file of every run directory.
SPLIT_FILE = "split.csv"
#: How segment runs normalise (each estimator's own z-score, fitted on its training rows).
ESTIMATOR_NORMALISATION = "each estimator z-scores with the statistics of its training rows"


def is_recipe(args):
    """Whether the options ask for the DCASE 2021 baseline recipe (frame rows, its protocol)."""
    from classifiers.presets import RECIPES

    return args.preset in RECIPES or bool(getattr(args, "from_checkpoint", None))


def save_trained(args, fitted, *, models, dims, segments, split, validation, provenance,
                 store_attrs, timings, extra=None, protocol=None, split_record=None):
    """Write the run directory (model bundle, ``split.csv``, ``run.json``) and print its
    summary; return 0.

    ``protocol`` is the run's test protocol (default: segments); ``split_record`` says where the
    split came from; ``extra`` adds top-level keys to the record (e.g. the Dask cluster of a
    distributed run, the checkpoints of an imported run).
    """
    from classifiers.calibration import TemperatureScaledClassifier
    from featurestore.provenance import package_versions, utc_now

    features = list(dims)
    protocol = protocol or {**recipe.SEGMENT_PROTOCOL, "normalisation": ESTIMATOR_NORMALISATION}
    bundle = {"estimator": fitted, "features": features, "dims": dims, "pooling": args.pooling,
              "classes": [str(c) for c in fitted.classes_]}
    train_rows = split[0]
    unit = "frames" if recipe.uses_frames(protocol) else "segments"
    record = {
        "format": runs.RUN_FORMAT, "format_version": runs.RUN_FORMAT_VERSION,
        "created": utc_now(), "command": "avscene " + " ".join(sys.argv[1:]),
        "system": {"features": features, "models": models, "fusion": args.fusion,
                   "preset": args.preset, "pooling": args.pooling, "seed": args.seed,
                   "val_fraction": args.val_fraction,
                   "temperature": isinstance(fitted, TemperatureScaledClassifier),
                   "threads": args.threads},
        "protocol": protocol,
        "split": {**(split_record or {"method": "location" if len(split[1]) else "none"}),
                  "file": SPLIT_FILE},
        "estimator": {"class": type(fitted).__name__,
                      "params": {k: v for k, v in fitted.get_params(deep=True).items()
                                 if not hasattr(v, "get_params")}},
        "versions": package_versions(),
        "store": {"path": runs.store_location(args.store), "attrs": store_attrs,
                  "train_fold": args.train_fold, "features": provenance},
        "training": {**describe_rows(segments, train_rows, unit=unit), "locations": sorted(
            set(np.asarray(segments.groups)[train_rows].astype(str).tolist()))},
        "seen_cities": sorted(set(np.asarray(segments.city).astype(str).tolist())),
        "validation": validation,
        "timings": timings,
        "evaluations": {},
        **(extra or {}),
    }
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    split_files.write_split(pathlib.Path(args.out) / SPLIT_FILE,
                          *split_files.clip_roles(np.asarray(segments.clip_id), split))
    runs.save_run(args.out, bundle, record)
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True, default=runs.jsonable))
    else:
        print(format_summary(record, args.out))
    return 0


def build(args, features, dims):
    """Return ``(estimator, {feature: model})`` for the command-line options.

    The recipe's estimator is a :class:`~classifiers.scaling.NormalisedClassifier` (its
    statistics are set before fitting, :func:`pipelines.jobs.recipe.normalisation`), never
    temperature-scaled; other systems are temperature-scaled unless ``--no-temperature`` or
    there is no validation data.
    """
    from classifiers import systems
    from classifiers.calibration import TemperatureScaledClassifier
    from classifiers.scaling import NormalisedClassifier

    try:
        models = systems.parse_models(args.model, features)
        for model in models.values():
            registry.model(model)
        estimator = systems.make_system(dims, models, args.fusion, preset=args.preset,
                                        random_state=args.seed, n_jobs=args.threads)
    except ValueError as error:
        raise runs.RunFormatError(str(error)) from error
    if is_recipe(args):
        return NormalisedClassifier(estimator), models
    if not args.no_temperature and (args.val_fraction > 0 or getattr(args, "split", None)):
        estimator = TemperatureScaledClassifier(estimator, random_state=args.seed)
    return estimator, models


def split_rows(args, store, rows):
    """``((train_rows, val_rows), record)`` of the training fold's data rows.

    A ``--split`` file wins; the recipe uses the baseline's split of the fold's clips (the whole
    clip table, as ``split_data.py`` split the whole fold1_train list); otherwise whole
    locations are held out per class from the rows (``--val-fraction`` 0: none).
    """
    from classifiers import splits

    clips = store.clips
    fold = store.select(fold=args.train_fold)
    if getattr(args, "split", None):
        roles, kind = split_files.read_split_file(args.split, clips, fold, fold=args.train_fold)
        record = {"method": "file", "source": str(args.split), "format": kind,
                  "sha256": sha256_file(args.split)}
    elif is_recipe(args):
        roles = split_files.split_clips(clips, fold, method="dcase2021",
                                      val_fraction=args.val_fraction)
        record = {"method": "dcase2021", "val_fraction": args.val_fraction,
                  "seed": split_files.DEFAULT_SEEDS["dcase2021"],
                  "location_key": "the number in the file name (split_data.py)"}
    else:
        y, groups = np.asarray(rows.y).astype(str), np.asarray(rows.groups).astype(str)
        if args.val_fraction > 0:
            split = splits.location_split(y, groups, val_fraction=args.val_fraction,
                                          random_state=args.seed)
            return split, {"method": "location", "val_fraction": args.val_fraction,
                           "seed": args.seed}
        return (np.arange(len(y)), np.zeros(0, dtype=np.int64)), {"method": "none"}
    split = split_files.rows_of_roles(rows.clip_id, clips.clip_id[fold], roles,
                                    where=str(args.split or "the dcase2021 split"))
    if not len(split[0]):
        raise runs.RunFormatError(f"{args.split or 'the dcase2021 split'} leaves no training "
                                  f"clips with {', '.join(rows.names)}")
    return split, record


def fit(estimator, X, segments, split):
    """Fit on the training rows, the validation rows as ``eval_set``; return the fitted system."""
    y, groups = np.asarray(segments.y).astype(str), np.asarray(segments.groups).astype(str)
    train_rows, val_rows = split
    eval_set = (X[val_rows], y[val_rows]) if len(val_rows) else None
    try:
        return estimator.fit(X[train_rows], y[train_rows], groups=groups[train_rows],
                             eval_set=eval_set)
    except ValueError as error:
        raise runs.RunFormatError(f"training failed: {error}") from error


def validate(fitted, X, segments, split, *, protocol=None):
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
        report = metrics.evaluate(scored.y.astype(str), scored.proba, classes=scored.classes,
                                  clip_ids=scored.clip_id, n_bootstrap=0,
                                  clip_proba=scored.clip_proba, clip_pred=scored.clip_pred)
        summary = describe_rows(segments, val_rows, unit="frames")
        summary["n_segments"] = int(len(scored.clip_id))
    else:
        proba = fitted.predict_proba(X[val_rows])
        classes = [str(c) for c in fitted.classes_]
        report = metrics.evaluate(np.asarray(segments.y)[val_rows].astype(str), proba,
                                  classes=classes,
                                  clip_ids=np.asarray(segments.clip_id)[val_rows], n_bootstrap=0)
        summary = describe_rows(segments, val_rows)
    summary["locations"] = sorted(set(np.asarray(segments.groups)[val_rows].astype(str).tolist()))
    for level in ("segment", "clip"):
        summary[level] = {k: report[level][k] for k in
                          ("log_loss", "accuracy", "overall_log_loss", "overall_accuracy")}
    summary["temperature"] = getattr(fitted, "temperature_", None)
    if summary["temperature"] is not None:
        raw = fitted.estimator_.predict_proba(X[val_rows])
        y_index = np.searchsorted(fitted.classes_, np.asarray(segments.y)[val_rows])
        summary["segment"]["log_loss_before_temperature"] = metrics.dcase_log_loss(y_index, raw)
    return summary


def describe_rows(segments, rows, *, unit="segments"):
    """Counts of rows (``n_segments`` or ``n_frames``), clips, locations and classes."""
    scenes, counts = np.unique(np.asarray(segments.y)[rows].astype(str), return_counts=True)
    return {f"n_{unit}": int(len(rows)),
            "n_clips": int(len(np.unique(np.asarray(segments.clip_id)[rows]))),
            "n_locations": int(len(np.unique(np.asarray(segments.groups)[rows]))),
            "classes": dict(zip(scenes.tolist(), counts.tolist()))}


def format_summary(record, run_dir):
    """The human-readable lines printed after training."""
    training, validation = record["training"], record["validation"]
    unit = "frames" if "n_frames" in training else "segments"
    lines = [
        f"{'imported' if record.get('checkpoints') else 'trained'} {runs.system_name(record)} "
        f"(preset {record['system']['preset']}) on {training['n_clips']} clips / "
        f"{training[f'n_{unit}']} {unit}, {training['n_locations']} locations, "
        f"{len(training['classes'])} classes in {record['timings']['fit_s']:.1f} s",
    ]
    if validation:
        seg, clip = validation["segment"], validation["clip"]
        temperature = validation.get("temperature")
        lines.append(
            f"validation ({validation['n_clips']} clips, {validation['n_locations']} locations): "
            f"segment log loss {seg['log_loss']:.3f}, accuracy {100 * seg['accuracy']:.1f}%; "
            f"clip log loss {clip['log_loss']:.3f}, accuracy {100 * clip['accuracy']:.1f}%"
            + (f"; temperature {temperature:.2f} (log loss before "
               f"{seg['log_loss_before_temperature']:.3f})" if temperature else ""))
    lines.append(f"run directory {run_dir}: {runs.MODEL_FILE}, {runs.ARRAYS_FILE}, "
                 f"{SPLIT_FILE}, {runs.RECORD_FILE}")
    return "\n".join(lines)
