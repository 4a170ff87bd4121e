"""``avscene evaluate RUN_DIR STORE [--fold evaluate]``: DCASE 2021 Task 1B metrics of a trained run.

Segment level (every 1-s segment) and clip level, as the run's recorded test protocol says
(:mod:`pipelines.jobs.recipe`): by default a segment pools its second's frames and a clip sums its
segment probabilities; a ``dcase2021`` run scores segment k with one picked frame and a clip with
the baseline's rule over all its frames. Class-wise averaged log loss and accuracy, overall
values, a per-class table,
bootstrap 95% intervals (clips resampled), a per-city breakdown with cities unseen in training
marked, and PNG plots. Writes ``evaluation-<fold>.json``, ``confusion-<fold>.png``,
``confusion-<fold>-clip.png`` and ``classwise-<fold>.png`` into the run directory and adds a
summary to its ``run.json`` (the job: :func:`pipelines.jobs.evaluation.evaluate_run`); this
module prints the report.
"""

from pipelines.commands.options import (
    MAX_BOOTSTRAP,
    add_http,
    add_json,
    add_threads,
    check_output,
    non_negative,
    print_json,
    seed,
)
from pipelines.jobs import evaluation, runs, tables


def add_arguments(parser):
    parser.add_argument("run_dir", help="run directory written by avscene train")
    add_http(parser)
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--fold", default="evaluate", help="fold of the store to evaluate")
    parser.add_argument(
        "--bootstrap",
        type=non_negative(int, maximum=MAX_BOOTSTRAP),
        default=1000,
        help="bootstrap draws for the 95%% intervals (0: none)",
    )
    parser.add_argument("--seed", type=seed(), default=0, help="seed of the bootstrap")
    add_threads(parser)
    add_json(parser, what="the full report")


def run(args):
    check_output(
        args.run_dir, folder=True, files=[*evaluation.output_files(args.fold), runs.RECORD_FILE]
    )
    report = evaluation.evaluate_run(
        args.run_dir,
        args.store,
        fold=args.fold,
        bootstrap=args.bootstrap,
        seed=args.seed,
        threads=args.threads,
    )
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0


def format_report(report):
    """Per-class table (like the baseline's Table 1), averages with intervals, per-city table."""
    seg = report["segment"]
    lines = [
        f"{report['system']} on {report['store']}, fold {report['fold']}: "
        f"{report['n_clips']} clips, {seg['n']} segments",
        *tables.per_class_table(report, style="text"),
    ]
    intervals = tables.intervals_line(report)
    if intervals:
        lines.append(intervals)
    if report.get("per_city"):
        lines += ["", *tables.per_city_table(report, style="text")]
    lines.append("plots: " + ", ".join(report["plots"].values()))
    return "\n".join(lines)
