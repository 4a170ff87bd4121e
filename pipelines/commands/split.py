"""``avscene split STORE --method {location,dcase2021} --out split.csv``: a validation split file.

Gives every clip of the training fold (``--train-fold``, from the store's clip table; no
features needed) the role ``train`` or ``validation`` and writes ``clip_id,role`` rows, which
``avscene train --split`` reads back. ``dcase2021`` is the DCASE 2021 Task 1B baseline's
``split_data.py`` (Python's ``random`` seeded 30; per scene, whole location numbers drawn into
training until it holds 90% of the scene's clips), ``location`` is avscene's default split of
``avscene train`` (seed 0).
"""

import pathlib

import numpy as np

from featurestore.errors import UsageError
from pipelines.jobs import split_files
from pipelines.commands.options import (
    add_http,
    add_json,
    add_out,
    add_overwrite,
    number,
    print_json,
    seed,
)


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_http(parser)
    parser.add_argument("--method", choices=split_files.METHODS, default="dcase2021",
                        help="dcase2021 (the baseline's split_data.py) or location (avscene "
                             "train's default)")
    parser.add_argument("--val-fraction", type=number(float, minimum=0, below=1), default=0.1,
                        help="share of each scene's clips meant for validation")
    parser.add_argument("--seed", type=seed(), default=None,
                        help="random seed (default: 30 for dcase2021, as the baseline; 0 for "
                             "location, as avscene train)")
    parser.add_argument("--train-fold", default="train", help="fold of the store to split")
    add_out(parser, what="the split file (clip_id,role)", metavar="FILE.csv")
    add_overwrite(parser, what="the split file")
    add_json(parser, what="a summary")


def run(args):
    from featurestore.store import FeatureStore

    out = pathlib.Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists already (--overwrite replaces it)")
    with FeatureStore.open(args.store, mode="r") as store:
        clips = store.clips
        positions = store.select(fold=args.train_fold)
        if not len(positions):
            raise UsageError(f"{store.label} has no clips in fold {args.train_fold!r}")
        roles = split_files.split_clips(clips, positions, method=args.method,
                                      val_fraction=args.val_fraction, seed=args.seed)
        ids = np.asarray(clips.clip_id)[positions]
        scenes = np.asarray(clips.scene)[positions].astype(str)
    out.parent.mkdir(parents=True, exist_ok=True)
    split_files.write_split(out, ids, roles)
    validation = roles == split_files.ROLES[1]
    summary = {
        "out": str(out), "method": args.method, "fold": args.train_fold,
        "val_fraction": args.val_fraction,
        "seed": split_files.DEFAULT_SEEDS[args.method] if args.seed is None else args.seed,
        "clips": int(len(ids)), "train": int(np.count_nonzero(~validation)),
        "validation": int(np.count_nonzero(validation)),
        "validation_per_scene": {scene: int(np.count_nonzero(validation & (scenes == scene)))
                                 for scene in sorted(set(scenes.tolist()))},
    }
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {out}: {summary['train']} train / {summary['validation']} validation clips "
              f"of fold {args.train_fold!r} (method {args.method}, seed {summary['seed']})")
    return 0
