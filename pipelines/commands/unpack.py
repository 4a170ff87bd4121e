"""``avscene unpack ARCHIVE --out STORE``: a writable store from an ``avscene pack`` archive.

The store is built beside its target, verified fully and renamed into place: a failed or killed
unpack leaves nothing at ``STORE``.
"""

from pipelines.commands.options import (
    add_http,
    add_json,
    add_out,
    add_overwrite,
    check_output,
    print_json,
)


def add_arguments(parser):
    parser.add_argument(
        "archive",
        metavar="ARCHIVE",
        help="zip archive written by avscene pack: a path or an fsspec URL",
    )
    add_http(parser)
    add_out(
        parser, what="the feature store to create (a directory or an fsspec URL)", metavar="STORE"
    )
    add_overwrite(parser, what="the store")
    add_json(parser, what="what was unpacked")


def run(args):
    from featurestore.store.interchange.archive import unpack_archive

    check_output(args.out, folder=True)
    summary = unpack_archive(args.archive, args.out, overwrite=args.overwrite)
    if args.json:
        print_json({"archive": args.archive, "store": args.out, **summary})
    else:
        print(
            f"unpacked {args.archive} into {args.out}: {summary['entries']} entries, "
            f"{summary['bytes'] / 2**20:.1f} MiB, verified"
        )
    return 0
