"""``avscene verify STORE``: re-read every chunk (crc32c checksums) and check the index."""

from pipelines.options import add_json, print_json


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_json(parser, what="the verdict and the problems found")


def run(args):
    from featurestore.store import FeatureStore

    with FeatureStore.open(args.store, mode="r") as store:
        problems = store.verify()
        summary = f"{len(store.clips)} clips, {len(store.features)} features"
    if args.json:
        print_json({"store": args.store, "ok": not problems, "problems": problems})
    elif problems:
        print("\n".join(problems))
    else:
        print(f"ok: {args.store}: {summary}; every chunk decodes and the index is consistent")
    return 1 if problems else 0
