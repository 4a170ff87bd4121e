"""``avscene evaluate RUN_DIR STORE [--fold evaluate]``: DCASE 2021 Task 1B metrics of a trained run.

Segment level (every 1-s segment) and clip level, as the run's recorded test protocol says
(:mod:`pipelines.jobs.recipe`): by default a segment pools its second's frames and a clip sums its
segment probabilities; a ``dcase2021`` run scores segment k with one picked frame and a clip with
the baseline's rule over all its frames. Class-wise averaged log loss and accuracy, overall
values, a per-class table,
bootstrap 95% intervals (clips resampled), a per-city breakdown with cities unseen in training
marked, and PNG plots. Writes ``evaluation-<fold>.json``, ``confusion-<fold>.png``,
``confusion-<fold>-clip.png`` and ``classwise-<fold>.png`` into the run directory and adds a
summary to its ``run.json``.
"""

import pathlib
import time

import numpy as np

from pipelines.jobs import recipe, runs
from pipelines.commands import tables
from pipelines.commands.options import (
    add_http,
    add_json,
    add_threads,
    non_negative,
    print_json,
    seed,
)


def add_arguments(parser):
    parser.add_argument("run_dir", help="run directory written by avscene train")
    add_http(parser)
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--fold", default="evaluate", help="fold of the store to evaluate")
    parser.add_argument("--bootstrap", type=non_negative(int), default=1000,
                        help="bootstrap draws for the 95%% intervals (0: none)")
    parser.add_argument("--seed", type=seed(), default=0, help="seed of the bootstrap")
    add_threads(parser)
    add_json(parser, what="the full report")


def run(args):
    from featurestore.provenance import utc_now

    started = time.perf_counter()
    with runs.apply_threads(args.threads):
        bundle, record, rows, _ = recipe.read_for_run(args.run_dir, args.store, fold=args.fold)
        read = time.perf_counter()
        scored = recipe.score(bundle, record, rows)
        predicted = time.perf_counter()
    report = evaluate_segments(scored, record, args)
    report.update({
        "run": str(args.run_dir), "system": runs.system_name(record),
        "protocol": recipe.protocol_of(record),
        "store": runs.store_location(args.store), "fold": args.fold, "created": utc_now(),
        "timings": {"read_s": read - started, "predict_s": predicted - read,
                    "metrics_s": time.perf_counter() - predicted},
    })
    report["plots"] = write_plots(report, pathlib.Path(args.run_dir), args.fold)
    runs.write_json(pathlib.Path(args.run_dir) / f"evaluation-{args.fold}.json", report)
    record["evaluations"][args.fold] = summary(report)
    runs.write_json(pathlib.Path(args.run_dir) / runs.RECORD_FILE, record)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0


def evaluate_segments(scored, record, args):
    """The metrics report of a fold's scored segments (:class:`pipelines.jobs.recipe.Scored`; see
    :func:`classifiers.metrics.evaluate`)."""
    from classifiers import metrics

    y, classes = np.asarray(scored.y).astype(str), scored.classes
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise runs.RunFormatError(f"fold {args.fold!r} holds label {unknown[0]!r}, not a class "
                                  f"of the model or of DCASE ({', '.join(classes)})")
    return metrics.evaluate(y, scored.proba, classes=classes,
                            clip_ids=np.asarray(scored.clip_id),
                            cities=np.asarray(scored.city).astype(str),
                            seen_cities=record.get("seen_cities"), n_bootstrap=args.bootstrap,
                            random_state=args.seed, clip_proba=scored.clip_proba,
                            clip_pred=scored.clip_pred)


def write_plots(report, run_dir, fold):
    """Write the confusion matrices and the class-wise bar plot; return their file names."""
    from classifiers import plots

    names = {"confusion_segment": f"confusion-{fold}.png",
             "confusion_clip": f"confusion-{fold}-clip.png",
             "classwise": f"classwise-{fold}.png"}
    classes = report["classes"]
    title = f"{report['system']} - {fold}"
    plots.plot_confusion_matrix(report["segment"]["confusion"], classes,
                                run_dir / names["confusion_segment"],
                                title=f"{title} (1 s segments)")
    plots.plot_confusion_matrix(report["clip"]["confusion"], classes,
                                run_dir / names["confusion_clip"], title=f"{title} (clips)")
    plots.plot_classwise(
        {level: {c: v["accuracy"] for c, v in report[key]["per_class"].items()}
         for level, key in (("1 s segments", "segment"), ("clips", "clip"))},
        run_dir / names["classwise"], title=f"Class-wise accuracy: {title}")
    return names


def summary(report):
    """The part of a report kept in run.json's ``evaluations``."""
    keep = ("log_loss", "accuracy", "overall_log_loss", "overall_accuracy", "n", "ci")
    return {"store": report["store"], "created": report["created"], "n_clips": report["n_clips"],
            **{level: {k: report[level][k] for k in keep if k in report[level]}
               for level in ("segment", "clip")}}


def format_report(report):
    """Per-class table (like the baseline's Table 1), averages with intervals, per-city table."""
    seg = report["segment"]
    lines = [f"{report['system']} on {report['store']}, fold {report['fold']}: "
             f"{report['n_clips']} clips, {seg['n']} segments",
             *tables.per_class_table(report, style="text")]
    intervals = tables.intervals_line(report)
    if intervals:
        lines.append(intervals)
    if report.get("per_city"):
        lines += ["", *tables.per_city_table(report, style="text")]
    lines.append("plots: " + ", ".join(report["plots"].values()))
    return "\n".join(lines)
