"""``avscene score PREDICTIONS.csv TRUTH.csv``: DCASE 2021 Task 1B metrics of an output file.

PREDICTIONS.csv is a system output in the DCASE format (tab-separated: ``filename``, ``scene_label``,
then one probability column per class), as ``avscene predict`` writes it or any other system
does. TRUTH.csv holds the true labels: a tab-separated file with ``filename_audio`` (or
``filename``) and ``scene_label`` columns, such as the development set's ``meta.csv``, the
released evaluation-set labels or the ``evaluation_truth.csv`` of ``avscene synth``.

Rows are matched by file stem: output row ``airport-lisbon-1000-40000_3.wav`` (segment 3) and
``17.wav`` (a one-second clip) belong to the truth rows ``audio/airport-lisbon-1000-40000.wav``
and ``audio/17.wav``. Segments of one stem form a clip for the clip-level metrics.
"""

import csv
import pathlib
import re

import numpy as np

from featurestore.datasets import SCENES
from featurestore.errors import UsageError
from pipelines.commands.options import MAX_BOOTSTRAP, add_json, non_negative, print_json
from pipelines.jobs.tables import interval, number, percent

_SEGMENT_SUFFIX = re.compile(r"_(\d+)$")


def add_arguments(parser):
    parser.add_argument(
        "predictions", metavar="PREDICTIONS.csv", help="system output file (DCASE format)"
    )
    parser.add_argument(
        "truth", metavar="TRUTH.csv", help="labels: tab-separated, filename_audio and scene_label"
    )
    parser.add_argument(
        "--bootstrap",
        type=non_negative(int, maximum=MAX_BOOTSTRAP),
        default=1000,
        help="bootstrap draws for the 95%% intervals (0: none)",
    )
    add_json(parser, what="the full report")


def _rows(path):
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            return reader.fieldnames or [], list(reader)
    except OSError as error:
        raise UsageError(f"{path}: cannot read ({error.strerror})") from None


def read_truth(path):
    """``{file stem: scene label}`` of a labels file."""
    header, rows = _rows(path)
    name_column = next((c for c in ("filename_audio", "filename") if c in header), None)
    if name_column is None or "scene_label" not in header:
        raise UsageError(
            f"{path}: needs columns filename_audio (or filename) and scene_label, "
            f"has {', '.join(header) or 'no header'}"
        )
    return {pathlib.PurePosixPath(row[name_column]).stem: row["scene_label"] for row in rows}


def read_output(path):
    """``(clip stems (n,), probabilities (n, 10) float64)`` of an output file, rows in file order."""
    header, rows = _rows(path)
    missing = [c for c in ("filename", *SCENES) if c not in header]
    if missing:
        raise UsageError(
            f"{path}: not a DCASE output file, missing column(s) {', '.join(missing)}"
        )
    stems, proba = [], np.empty((len(rows), len(SCENES)))
    for index, row in enumerate(rows):
        stem = pathlib.PurePosixPath(row["filename"]).name.split(".")[0]
        stems.append(_SEGMENT_SUFFIX.sub("", stem))
        try:
            proba[index] = [float(row[c]) for c in SCENES]
        except (TypeError, ValueError):
            raise UsageError(f"{path} row {index + 2}: probabilities are not numbers") from None
    return np.asarray(stems), proba


def score(output, truth, *, n_bootstrap=1000):
    """The metrics report (see :func:`classifiers.metrics.evaluate`) of an output file."""
    from classifiers import metrics

    stems, proba = read_output(output)
    labels = read_truth(truth)
    unknown = sorted(set(stems.tolist()) - set(labels))
    if unknown:
        raise UsageError(
            f"{output}: {len(unknown)} clip(s) have no label in {truth}, e.g. {unknown[0]!r}"
        )
    y = np.asarray([labels[s] for s in stems])
    try:
        report = metrics.evaluate(
            y, proba, classes=list(SCENES), clip_ids=stems, n_bootstrap=n_bootstrap, random_state=0
        )
    except ValueError as error:
        raise UsageError(f"{truth}: {error}") from None
    report.update({"output": str(output), "truth": str(truth)})
    return report


def format_score(report):
    seg, clip = report["segment"], report["clip"]
    ci_s, ci_c = seg.get("ci") or {}, clip.get("ci") or {}
    return (
        f"{report['output']}: {report['n_clips']} clips, {seg['n']} segments\n"
        f"segments: log loss {number(seg['log_loss'])}{interval(ci_s.get('log_loss'))}, "
        f"accuracy {percent(seg['accuracy'])}"
        f"{interval(ci_s.get('accuracy'), as_percent=True)}\n"
        f"clips:    log loss {number(clip['log_loss'])}{interval(ci_c.get('log_loss'))}, "
        f"accuracy {percent(clip['accuracy'])}"
        f"{interval(ci_c.get('accuracy'), as_percent=True)}"
    )


def run(args):
    report = score(args.predictions, args.truth, n_bootstrap=args.bootstrap)
    if args.json:
        print_json(report)
    else:
        print(format_score(report))
    return 0
