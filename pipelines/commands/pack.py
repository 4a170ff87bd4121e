"""``avscene pack STORE --out OUT.zarr.zip``: the store as one zip archive, read in place.

Every command and ``FeatureStore.open`` read the archive (a path or a URL) without unpacking it;
``avscene unpack`` restores a writable store. ``--segments-only`` leaves out the frames and keeps
the stored segments (``avscene segments``), the clip table and the features' provenance.
"""

import pathlib

from pipelines.commands.options import (
    add_http,
    add_json,
    add_out,
    add_overwrite,
    check_output,
    print_json,
)


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_http(parser)
    add_out(parser, what="the zip archive (its name ends in .zip)", metavar="OUT.zarr.zip")
    parser.add_argument(
        "--segments-only",
        action="store_true",
        help="leave out the frames: keep the stored segments, the clip table and "
        "the features' provenance and index (enough for train, evaluate "
        "and predict)",
    )
    add_overwrite(parser, what="the archive")
    add_json(parser, what="what was written")


def run(args):
    from featurestore.store import FeatureStore
    from featurestore.store.interchange.archive import pack_store

    check_output(args.out, overwrite=args.overwrite)
    with FeatureStore.open(args.store, mode="r") as store:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        summary = pack_store(
            store, args.out, segments_only=args.segments_only, overwrite=args.overwrite
        )
    if args.json:
        print_json({"store": args.store, "out": args.out, **summary})
    else:
        what = "stored segments, clip table and provenance" if args.segments_only else "store"
        print(
            f"packed the {what} of {args.store} into {args.out}: {summary['entries']} "
            f"entries, {summary['bytes'] / 2**20:.1f} MiB"
        )
    return 0
