"""``avscene compare RUN_DIR...``: trained systems side by side (validation and evaluated fold).

The best system, marked ``*``, is the one of lowest validation log loss
(:func:`pipelines.jobs.tables.best_system`), as in ``avscene report`` and ``avscene demo``.
"""

from pipelines.commands.options import add_json, print_json
from pipelines.jobs import runs, tables


def add_arguments(parser):
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    parser.add_argument(
        "--fold", default="evaluate", help="evaluated fold to show (from avscene evaluate)"
    )
    add_json(parser, what="the fold, the systems and the best one")


def run(args):
    rows = [
        tables.system_row(run_dir, runs.load_record(run_dir), args.fold)
        for run_dir in args.run_dirs
    ]
    if args.json:
        best = tables.best_system(rows)
        print_json({"fold": args.fold, "systems": rows, "best": best["run"] if best else None})
    else:
        print("\n".join(tables.systems_table(rows, fold=args.fold)))
        print("* lowest validation log loss")
    return 0
