"""``avscene verify STORE [--repair]``: re-read every chunk (crc32c checksums) and check the
index; with ``--repair``, first remove leftover temporary files and leases of dead writers.

A store folder holding anything that is not a file of a store (a symbolic link, a FIFO, an
unknown name) is not opened: each such entry is listed on its own line (exit status 1)."""

from pipelines.commands.options import add_http, add_json, print_json


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_http(parser)
    parser.add_argument(
        "--repair",
        action="store_true",
        help="remove leftover temporary files (*.partial) and the leases of "
        "writers that are gone, reporting each (refused while a writer "
        "runs)",
    )
    add_json(parser, what="the verdict, the problems found and the files removed")


def run(args):
    from featurestore.store import FeatureStore
    from featurestore.store.integrity import store_folder_problems

    strangers = store_folder_problems(args.store)
    if strangers:
        return _report_strangers(args, strangers)
    with FeatureStore.open(
        args.store, mode="r+" if args.repair else "r", clip_table=False
    ) as store:  # verify reads it, and reports
        removed = store.repair() if args.repair else []
        problems = store.verify()
        leftovers = store.temporary_files()
        summary = f"{store.n_clips} clips, {len(store.features)} features"
    if args.json:
        print_json(
            {
                "store": args.store,
                "ok": not problems,
                "problems": problems,
                "removed": removed,
                "temporary_files": leftovers,
            }
        )
        return 1 if problems else 0
    for line in removed:
        print(line)
    if problems:
        print("\n".join(problems))
    else:
        print(f"ok: {args.store}: {summary}; every chunk decodes and the index is consistent")
    if leftovers:
        print(
            f"note: {len(leftovers)} leftover temporary files (not part of the store; "
            f"avscene verify --repair removes them), e.g. {leftovers[0]}"
        )
    return 1 if problems else 0


def _report_strangers(args, strangers):
    """List the entries that keep a store folder from being opened; exit status 1."""
    if args.json:
        print_json(
            {
                "store": args.store,
                "ok": False,
                "problems": strangers,
                "removed": [],
                "temporary_files": [],
            }
        )
    else:
        print("\n".join(strangers))
        print(
            f"not verified further: {args.store} holds {len(strangers)} entries that are not "
            f"part of a feature store; remove them (nothing was read from them)"
        )
    return 1
