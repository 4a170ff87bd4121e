"""``avscene segments STORE --pooling mean[,max,meanstd]``: store the pooled 1-s segments.

``train``, ``evaluate`` and ``predict`` then read them instead of pooling the frames, as long as
the frames have not changed since (each copy records the fingerprint of the frames it was made
from; a stale copy is never used). Copies that are up to date are left alone unless
``--overwrite`` is given.
"""

from pipelines.commands.options import (
    add_json,
    add_overwrite,
    check_output,
    comma_list,
    print_json,
)

#: The poolings that can be stored (repeated here: ``--help`` imports no store code).
STORED_POOLINGS = ("mean", "max", "meanstd", "center")


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--pooling", type=comma_list(choices=STORED_POOLINGS), default=("mean",),
                        metavar="NAME,...", help="poolings to store, from "
                                                  f"{','.join(STORED_POOLINGS)}")
    parser.add_argument("--features", type=comma_list(), metavar="NAME,...",
                        help="features to pool (default: all of the store's)")
    add_overwrite(parser, what="segments that are up to date")
    add_json(parser, what="what was written")


def store_segments(where, features, poolings):
    """Store the segments of the ``features`` of ``where`` that have no pending clips (the end
    of ``avscene extract --segments``); return what was done, one dict per feature and pooling
    (``skipped`` names the features left out)."""
    import logging

    from featurestore.store import FeatureStore

    log = logging.getLogger("avscene.extract")
    with FeatureStore.open(where, mode="r+") as store:
        ready = [name for name in features if name in store.features and
                 not store.pending(name)]
        for name in sorted(set(features) - set(ready)):
            log.info("segments of %s not stored: it has pending clips", name)
        done = store.write_segments(ready, poolings=poolings) if ready else []
    for entry in done:
        log.info("segments/%s/%s: %d segments %s", entry["feature"], entry["pooling"],
                 entry["segments"], "written" if entry["written"] else "up to date")
    return {"stored": done, "skipped": sorted(set(features) - set(ready))}


def run(args):
    from featurestore.store import FeatureStore

    check_output(args.store, store=True)
    with FeatureStore.open(args.store, mode="r+") as store:
        done = store.write_segments(args.features, poolings=args.pooling,
                                    overwrite=args.overwrite)
    if args.json:
        print_json({"store": args.store, "segments": done})
        return 0
    for entry in done:
        state = "wrote" if entry["written"] else "up to date:"
        print(f"{state} segments/{entry['feature']}/{entry['pooling']}: {entry['segments']} "
              f"segments x {entry['dim']}")
    return 0
