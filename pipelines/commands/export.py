"""``avscene export STORE --out FILE.h5``: copy a store, losslessly, into one HDF5 file."""

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
    add_out(parser, what="the HDF5 file", metavar="FILE.h5")
    parser.add_argument(
        "--compression",
        choices=("gzip", "lzf", "none"),
        default="gzip",
        help="HDF5 filter of the datasets",
    )
    add_overwrite(parser, what="the HDF5 file")
    add_json(parser, what="what was written")


def run(args):
    from featurestore.store import FeatureStore
    from featurestore.store.interchange.hdf5_export import export_hdf5

    check_output(args.out, overwrite=args.overwrite)
    with FeatureStore.open(args.store, mode="r") as store:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        summary = export_hdf5(
            store, args.out, compression=args.compression, overwrite=args.overwrite
        )
    if args.json:
        print_json({"store": args.store, "out": args.out, **summary})
    else:
        print(
            f"exported {args.store} to {args.out}: {summary['groups']} groups, "
            f"{summary['arrays']} arrays, {summary['chunks']} chunks, "
            f"{summary['bytes'] / 2**20:.1f} MiB"
        )
    return 0
