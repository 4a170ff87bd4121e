"""``avscene export STORE OUT.h5``: copy a store, losslessly, into one HDF5 file."""

import json


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("output", help="HDF5 file to write")
    parser.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip",
                        help="HDF5 filter of the datasets")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args):
    from featurestore.store import FeatureStore
    from featurestore.store.hdf5 import export_hdf5

    with FeatureStore.open(args.store, mode="r") as store:
        summary = export_hdf5(store, args.output, compression=args.compression,
                              overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"store": args.store, **summary}, indent=2))
    else:
        print(f"exported {args.store} to {args.output}: {summary['groups']} groups, "
              f"{summary['arrays']} arrays, {summary['chunks']} chunks, "
              f"{summary['bytes'] / 2**20:.1f} MiB")
    return 0
