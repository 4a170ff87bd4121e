"""The in-memory training job behind ``avscene train``: build, fit, validate, write the run.

:func:`build` turns the command's options into an estimator of :mod:`classifiers.systems`;
:func:`fit` splits the training segments by location and fits it; :func:`validate` scores the
held-out locations; :func:`save_trained` writes the run directory (:mod:`pipelines.runs`). The
Dask path (:mod:`pipelines.dask_training`) reuses all four.
"""

import sys

import numpy as np

from pipelines import runs
from pipelines.options import print_json

#: The vocabulary of :mod:`classifiers.systems` (repeated: ``--help`` needs no sklearn import).
MODELS = ("lr", "mlp", "lgbm", "baseline")
FUSIONS = ("none", "early", "late", "weighted", "stack", "proposed")


def save_trained(args, fitted, *, models, dims, segments, split, validation, provenance,
                 store_attrs, timings, extra=None):
    """Write the run directory (model bundle + ``run.json``) and print its summary; return 0.

    ``extra`` adds top-level keys to the record (e.g. the Dask cluster of a distributed run).
    """
    from featurestore.provenance import package_versions, utc_now

    features = list(dims)
    bundle = {"estimator": fitted, "features": features, "dims": dims, "pooling": args.pooling,
              "classes": [str(c) for c in fitted.classes_]}
    train_rows = split[0]
    record = {
        "format": runs.RUN_FORMAT, "format_version": runs.RUN_FORMAT_VERSION,
        "created": utc_now(), "command": "avscene " + " ".join(sys.argv[1:]),
        "system": {"features": features, "models": models, "fusion": args.fusion,
                   "preset": args.preset, "pooling": args.pooling, "seed": args.seed,
                   "val_fraction": args.val_fraction, "temperature": not args.no_temperature,
                   "threads": args.threads},
        "estimator": {"class": type(fitted).__name__,
                      "params": {k: v for k, v in fitted.get_params(deep=True).items()
                                 if not hasattr(v, "get_params")}},
        "versions": package_versions(),
        "store": {"path": runs.store_location(args.store), "attrs": store_attrs,
                  "train_fold": args.train_fold, "features": provenance},
        "training": {**describe_rows(segments, train_rows), "locations": sorted(
            set(np.asarray(segments.groups)[train_rows].astype(str).tolist()))},
        "seen_cities": sorted(set(np.asarray(segments.city).astype(str).tolist())),
        "validation": validation,
        "timings": timings,
        "evaluations": {},
        **(extra or {}),
    }
    runs.save_run(args.out, bundle, record)
    if args.json:
        print_json(record)
    else:
        print(format_summary(record, args.out))
    return 0


def build(args, features, dims):
    """Return ``(estimator, {feature: model})`` for the command-line options."""
    from classifiers import systems
    from classifiers.calibration import TemperatureScaledClassifier

    try:
        models = systems.parse_models(args.model, features)
        for model in models.values():
            if model not in MODELS:
                raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        estimator = systems.make_system(dims, models, args.fusion, preset=args.preset,
                                        random_state=args.seed, n_jobs=args.threads)
    except ValueError as error:
        raise runs.RunFormatError(str(error)) from error
    if not args.no_temperature and args.val_fraction > 0:
        estimator = TemperatureScaledClassifier(estimator, random_state=args.seed)
    return estimator, models


def fit(estimator, X, segments, args):
    """Split by location, fit; return ``(fitted, (train_rows, val_rows))``."""
    from classifiers import splits

    y, groups = np.asarray(segments.y).astype(str), np.asarray(segments.groups).astype(str)
    if args.val_fraction > 0:
        train_rows, val_rows = splits.location_split(y, groups, val_fraction=args.val_fraction,
                                                     random_state=args.seed)
    else:
        train_rows, val_rows = np.arange(len(y)), np.zeros(0, dtype=np.int64)
    eval_set = (X[val_rows], y[val_rows]) if len(val_rows) else None
    try:
        fitted = estimator.fit(X[train_rows], y[train_rows], groups=groups[train_rows],
                               eval_set=eval_set)
    except ValueError as error:
        raise runs.RunFormatError(f"training failed: {error}") from error
    return fitted, (train_rows, val_rows)


def validate(fitted, X, segments, split):
    """Metrics of the fitted system on the validation rows (no bootstrap), or None."""
    from classifiers import metrics

    val_rows = split[1]
    if not len(val_rows):
        return None
    proba = fitted.predict_proba(X[val_rows])
    classes = [str(c) for c in fitted.classes_]
    report = metrics.evaluate(np.asarray(segments.y)[val_rows].astype(str), proba, classes=classes,
                              clip_ids=np.asarray(segments.clip_id)[val_rows], n_bootstrap=0)
    summary = describe_rows(segments, val_rows)
    summary["locations"] = sorted(set(np.asarray(segments.groups)[val_rows].astype(str).tolist()))
    for level in ("segment", "clip"):
        summary[level] = {k: report[level][k] for k in
                          ("log_loss", "accuracy", "overall_log_loss", "overall_accuracy")}
    summary["temperature"] = getattr(fitted, "temperature_", None)
    if hasattr(fitted, "estimator_"):
        raw = fitted.estimator_.predict_proba(X[val_rows])
        y_index = np.searchsorted(fitted.classes_, np.asarray(segments.y)[val_rows])
        summary["segment"]["log_loss_before_temperature"] = metrics.dcase_log_loss(y_index, raw)
    return summary


def describe_rows(segments, rows):
    """Counts of segments, clips, locations and classes among ``rows``."""
    scenes, counts = np.unique(np.asarray(segments.y)[rows].astype(str), return_counts=True)
    return {"n_segments": int(len(rows)),
            "n_clips": int(len(np.unique(np.asarray(segments.clip_id)[rows]))),
            "n_locations": int(len(np.unique(np.asarray(segments.groups)[rows]))),
            "classes": dict(zip(scenes.tolist(), counts.tolist()))}


def format_summary(record, run_dir):
    """The human-readable lines printed after training."""
    training, validation = record["training"], record["validation"]
    lines = [
        f"trained {runs.system_name(record)} (preset {record['system']['preset']}) on "
        f"{training['n_clips']} clips / {training['n_segments']} segments, "
        f"{training['n_locations']} locations, {len(training['classes'])} classes "
        f"in {record['timings']['fit_s']:.1f} s",
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
                 f"{runs.RECORD_FILE}")
    return "\n".join(lines)
