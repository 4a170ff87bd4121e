"""The evaluation job behind ``avscene evaluate``: DCASE 2021 Task 1B metrics of a trained run.

:func:`evaluate_run` scores a fold of a store with a run as its recorded test protocol says
(:mod:`pipelines.jobs.recipe`), computes the metrics (:func:`classifiers.metrics.evaluate`),
writes ``evaluation-<fold>.json`` and the plots into the run directory, adds a summary to its
``run.json`` and returns the report.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

from pipelines.jobs import recipe, runs
from pipelines.jobs.specs import PathLike, RunRecord


def evaluate_run(
    run_dir: PathLike,
    store: str,
    *,
    fold: str = "evaluate",
    bootstrap: int = 1000,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` on ``fold`` of ``store``; write and return the report.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``avscene train``.
    store : str
        Feature store: a directory or an fsspec URL.
    fold : str
        Fold of the store to evaluate.
    bootstrap : int
        Bootstrap draws for the 95% intervals (0: none).
    seed : int
        Seed of the bootstrap.
    threads : int, optional
        CPU threads of this process (None: the libraries' own choice).

    Returns
    -------
    dict
        The report of :func:`classifiers.metrics.evaluate` with the run, system, protocol,
        store, fold, creation time, timings and plot files, as ``evaluation-<fold>.json`` holds
        it.
    """
    from featurestore.provenance import utc_now

    started = time.perf_counter()
    with runs.apply_threads(threads):
        bundle, record, rows, _ = recipe.read_for_run(run_dir, store, fold=fold)
        read = time.perf_counter()
        scored = recipe.score(bundle, record, rows)
        predicted = time.perf_counter()
    report = evaluate_segments(scored, record, fold=fold, bootstrap=bootstrap, seed=seed)
    report.update(
        {
            "run": str(run_dir),
            "system": runs.system_name(record),
            "protocol": recipe.protocol_of(record),
            "store": runs.store_location(store),
            "fold": fold,
            "created": utc_now(),
            "timings": {
                "read_s": read - started,
                "predict_s": predicted - read,
                "metrics_s": time.perf_counter() - predicted,
            },
        }
    )
    run_dir = pathlib.Path(run_dir)
    report["plots"] = write_plots(report, run_dir, fold)
    runs.write_json(run_dir / report_file(fold), report, within=run_dir)
    record["evaluations"][fold] = summary(report)
    runs.write_json(run_dir / runs.RECORD_FILE, record, within=run_dir)
    return report


def evaluate_segments(
    scored: recipe.Scored, record: RunRecord, *, fold: str, bootstrap: int, seed: int
) -> dict[str, Any]:
    """The metrics report of a fold's scored segments (:class:`pipelines.jobs.recipe.Scored`; see
    :func:`classifiers.metrics.evaluate`)."""
    from classifiers import metrics

    y, classes = np.asarray(scored.y).astype(str), scored.classes
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise runs.RunFormatError(
            f"fold {fold!r} holds label {unknown[0]!r}, not a class "
            f"of the model or of DCASE ({', '.join(classes)})"
        )
    return metrics.evaluate(
        y,
        scored.proba,
        classes=classes,
        clip_ids=np.asarray(scored.clip_id),
        cities=np.asarray(scored.city).astype(str),
        seen_cities=record.get("seen_cities"),
        n_bootstrap=bootstrap,
        random_state=seed,
        clip_proba=scored.clip_proba,
        clip_pred=scored.clip_pred,
    )


def report_file(fold: str) -> str:
    """Name of the JSON report of ``fold`` in the run directory."""
    return f"evaluation-{fold}.json"


def plot_files(fold: str) -> dict[str, str]:
    """``{plot: file name}`` of the plots of ``fold`` in the run directory."""
    return {
        "confusion_segment": f"confusion-{fold}.png",
        "confusion_clip": f"confusion-{fold}-clip.png",
        "classwise": f"classwise-{fold}.png",
    }


def output_files(fold: str) -> list[str]:
    """Every file evaluating ``fold`` writes into the run directory, besides ``run.json``."""
    return [report_file(fold), *plot_files(fold).values()]


def write_plots(report: dict[str, Any], run_dir: pathlib.Path, fold: str) -> dict[str, str]:
    """Write the confusion matrices and the class-wise bar plot; return their file names."""
    from classifiers import plots

    names = plot_files(fold)
    classes = report["classes"]
    title = f"{report['system']} - {fold}"
    plots.plot_confusion_matrix(
        report["segment"]["confusion"],
        classes,
        run_dir / names["confusion_segment"],
        title=f"{title} (1 s segments)",
        within=run_dir,
    )
    plots.plot_confusion_matrix(
        report["clip"]["confusion"],
        classes,
        run_dir / names["confusion_clip"],
        title=f"{title} (clips)",
        within=run_dir,
    )
    plots.plot_classwise(
        {
            level: {c: v["accuracy"] for c, v in report[key]["per_class"].items()}
            for level, key in (("1 s segments", "segment"), ("clips", "clip"))
        },
        run_dir / names["classwise"],
        title=f"Class-wise accuracy: {title}",
        within=run_dir,
    )
    return names


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report kept in run.json's ``evaluations``."""
    keep = ("log_loss", "accuracy", "overall_log_loss", "overall_accuracy", "n", "ci")
    return {
        "store": report["store"],
        "created": report["created"],
        "n_clips": report["n_clips"],
        **{
            level: {k: report[level][k] for k in keep if k in report[level]}
            for level in ("segment", "clip")
        },
    }
