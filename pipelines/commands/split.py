"""``avscene split STORE --method {location,dcase2021} --out split.csv``: a validation split file.

Gives every clip of the training fold (``--train-fold``, from the store's clip table; no
features needed) the role ``train`` or ``validation`` and writes ``clip_id,role`` rows, which
``avscene train --split`` reads back. ``dcase2021`` is the DCASE 2021 Task 1B baseline's
``split_data.py`` (Python's ``random`` seeded 30; per scene, whole location numbers drawn into
training until it holds 90% of the scene's clips), ``location`` is avscene's default split of
``avscene train`` (seed 0).

The job is :func:`pipelines.jobs.split_files.write_store_split`; this module prints its summary.
"""

from pipelines.commands.options import (
    add_http,
    add_json,
    add_out,
    add_overwrite,
    check_output,
    number,
    print_json,
    seed,
)
from pipelines.jobs import split_files


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_http(parser)
    parser.add_argument(
        "--method",
        choices=split_files.METHODS,
        default="dcase2021",
        help="dcase2021 (the baseline's split_data.py) or location (avscene train's default)",
    )
    parser.add_argument(
        "--val-fraction",
        type=number(float, minimum=0, below=1),
        default=0.1,
        help="share of each scene's clips meant for validation",
    )
    parser.add_argument(
        "--seed",
        type=seed(),
        default=None,
        help="random seed (default: 30 for dcase2021, as the baseline; 0 for "
        "location, as avscene train)",
    )
    parser.add_argument("--train-fold", default="train", help="fold of the store to split")
    add_out(parser, what="the split file (clip_id,role)", metavar="FILE.csv")
    add_overwrite(parser, what="the split file")
    add_json(parser, what="a summary")


def run(args):
    check_output(args.out, overwrite=args.overwrite)
    summary = split_files.write_store_split(
        args.store,
        out=args.out,
        method=args.method,
        val_fraction=args.val_fraction,
        seed=args.seed,
        train_fold=args.train_fold,
        overwrite=args.overwrite,
    )
    if args.json:
        print_json(summary)
    else:
        print(
            f"wrote {summary['out']}: {summary['train']} train / {summary['validation']} "
            f"validation clips of fold {args.train_fold!r} (method {args.method}, seed "
            f"{summary['seed']})"
        )
    return 0
