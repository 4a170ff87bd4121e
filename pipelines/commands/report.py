"""``avscene report RUN_DIR... --out report.md``: evaluated systems side by side, in Markdown.

The report reads what ``avscene train`` and ``avscene evaluate`` wrote into each run directory
(``run.json``, ``evaluation-<fold>.json`` and its plots) and never recomputes a number. Sections:
systems side by side (1 s segments and 10 s clips, log loss and accuracy with 95% intervals), the
test protocol of each (as its run recorded it and ``evaluate`` applied it), the per-class and
per-city tables of the best system, its confusion matrices, and the provenance of the features
(store, extractor parameters, weight checksums, package versions, imported checkpoints).

The best system is the one with the lowest *validation* log loss: choosing on the evaluated fold
itself would overstate what the choice achieves.

The job is :func:`pipelines.jobs.reporting.write_report`; this module prints its summary.
"""

from pipelines.commands.options import add_json, add_out, check_output, print_json
from pipelines.jobs import reporting, tables


def add_arguments(parser):
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="evaluated run directories")
    add_out(parser, what="the Markdown report", metavar="FILE.md")
    parser.add_argument("--fold", default="evaluate", help="evaluated fold to report")
    parser.add_argument("--title", default="avscene report", help="first heading")
    add_json(parser, what="the report's path, its systems and the best one")


def run(args):
    check_output(args.out)
    summary = reporting.write_report(args.run_dirs, out=args.out, fold=args.fold, title=args.title)
    if args.json:
        print_json(summary)
    else:
        best = tables.best_system(summary["systems"])
        print(
            f"wrote {args.out}: {len(summary['systems'])} systems; best by validation log "
            f"loss: {best['system']} ({best['run']})"
        )
    return 0
