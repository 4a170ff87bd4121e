"""``avscene import FILE.h5 --out STORE``: rebuild a store from a file written by ``avscene export``."""

from pipelines.commands.options import (
    add_json,
    add_out,
    add_overwrite,
    check_output,
    print_json,
)


def add_arguments(parser):
    parser.add_argument("input", metavar="FILE.h5", help="HDF5 file written by avscene export")
    add_out(
        parser, what="the feature store to create (a directory or an fsspec URL)", metavar="STORE"
    )
    add_overwrite(parser, what="the store")
    add_json(parser, what="what was imported")


def run(args):
    from featurestore.store import import_hdf5

    check_output(args.out, folder=True)
    summary = import_hdf5(args.input, args.out, overwrite=args.overwrite)
    if args.json:
        print_json({"input": args.input, "store": args.out, **summary})
    else:
        print(
            f"imported {args.input} into {args.out}: {summary['groups']} groups, "
            f"{summary['arrays']} arrays, {summary['chunks']} chunks"
        )
    return 0
