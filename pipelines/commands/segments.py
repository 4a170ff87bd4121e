"""``avscene segments STORE --pooling mean[,max,meanstd]``: store the pooled 1-s segments.

``train``, ``evaluate`` and ``predict`` then read them instead of pooling the frames, as long as
the frames have not changed since (each copy records the fingerprint of the frames it was made
from; a stale copy is never used). Copies that are up to date are left alone unless
``--overwrite`` is given.

The job is :func:`pipelines.jobs.pooled_segments.write_segments`; this module prints what it did.
"""

from pipelines.commands.options import (
    add_json,
    add_overwrite,
    check_output,
    comma_list,
    print_json,
)
from pipelines.jobs import pooled_segments
from pipelines.jobs.pooled_segments import STORED_POOLINGS


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument(
        "--pooling",
        type=comma_list(choices=STORED_POOLINGS),
        default=("mean",),
        metavar="NAME,...",
        help=f"poolings to store, from {','.join(STORED_POOLINGS)}",
    )
    parser.add_argument(
        "--features",
        type=comma_list(),
        metavar="NAME,...",
        help="features to pool (default: all of the store's)",
    )
    add_overwrite(parser, what="segments that are up to date")
    add_json(parser, what="what was written")


def run(args):
    check_output(args.store, store=True)
    done = pooled_segments.write_segments(
        args.store, poolings=args.pooling, features=args.features, overwrite=args.overwrite
    )
    if args.json:
        print_json({"store": args.store, "segments": done})
        return 0
    for entry in done:
        state = "wrote" if entry["written"] else "up to date:"
        print(
            f"{state} segments/{entry['feature']}/{entry['pooling']}: {entry['segments']} "
            f"segments x {entry['dim']}"
        )
    return 0
