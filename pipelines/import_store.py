"""``avscene import IN.h5 STORE``: rebuild a store from a file written by ``avscene export``."""

import json


def add_arguments(parser):
    parser.add_argument("input", help="HDF5 file written by avscene export")
    parser.add_argument("store", help="feature store to create: a directory or an fsspec URL")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args):
    from featurestore.store.hdf5 import import_hdf5

    summary = import_hdf5(args.input, args.store, overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"input": args.input, "store": args.store, **summary}, indent=2))
    else:
        print(f"imported {args.input} into {args.store}: {summary['groups']} groups, "
              f"{summary['arrays']} arrays, {summary['chunks']} chunks")
    return 0
