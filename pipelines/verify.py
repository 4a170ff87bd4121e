"""``avscene verify STORE``: re-read every chunk (crc32c checksums) and check the index."""

import json


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args):
    from featurestore.store import FeatureStore

    with FeatureStore.open(args.store, mode="r") as store:
        problems = store.verify()
        summary = f"{len(store.clips)} clips, {len(store.features)} features"
    if args.json:
        print(json.dumps({"store": args.store, "ok": not problems, "problems": problems}, indent=2))
    elif problems:
        print("\n".join(problems))
    else:
        print(f"ok: {args.store}: {summary}; every chunk decodes and the index is consistent")
    return 1 if problems else 0
