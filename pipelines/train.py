"""``avscene train STORE --features ... --model ... --fusion ... --out RUN_DIR``: fit a system.

Reads the training fold's 1-s segments from the store, holds out whole locations for validation
(``--val-fraction``, per class, like the DCASE baseline), fits the system (validation data keep the
best epoch / early-stop the trees / fit late-fusion weights), fits a temperature on the
validation segments (unless ``--no-temperature``), and writes the run directory.
"""

import logging
import time

import numpy as np

from pipelines import dask_training, runs, training
from pipelines.options import (
    add_dask_arguments,
    add_json,
    add_out,
    add_overwrite,
    add_threads,
    comma_list,
    number,
    seed,
)

log = logging.getLogger(__name__)

MODELS, FUSIONS = training.MODELS, training.FUSIONS


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--features", required=True, type=comma_list(), metavar="NAME,...",
                        help="feature names, e.g. openl3_audio,openl3_video")
    parser.add_argument("--model", default="lr",
                        help=f"one of {', '.join(MODELS)} for every feature, or one per feature: "
                             "video=lgbm,audio=lr (keys match a feature name or a unique part)")
    parser.add_argument("--fusion", default="none", choices=FUSIONS,
                        help="none (one feature), early (concatenated features, one model), late "
                             "(averaged probabilities), weighted (late, weights fitted on "
                             "validation), stack (meta-classifier on out-of-fold probabilities), "
                             "proposed (DCASE 2021 baseline fusion of frozen baseline nets)")
    parser.add_argument("--preset", default="default",
                        help="fast (tests), default (TAU-sized data), small (a few thousand "
                             "segments), paper (the DCASE 2021 baseline's networks and training settings, on "
                             "per-second segments)")
    parser.add_argument("--pooling", default="mean", choices=("mean", "max", "meanstd", "center"),
                        help="how a segment's frames are combined")
    parser.add_argument("--train-fold", default="train", help="fold of the store to train on")
    parser.add_argument("--val-fraction", type=number(float, minimum=0, below=1), default=0.1,
                        help="share of training rows held out as whole locations (0: none)")
    parser.add_argument("--no-temperature", action="store_true",
                        help="skip temperature scaling on the validation segments")
    parser.add_argument("--seed", type=seed(), default=0, help="random seed of splits and models")
    add_threads(parser)
    add_out(parser, what="the run directory", metavar="RUN_DIR")
    add_overwrite(parser, what="the run directory")
    add_json(parser, what="the run record")
    add_dask_arguments(parser, what="train (--model lr or lgbm, --fusion none or early)")


def run(args):
    from featurestore.store import FeatureStore

    if args.dask or args.dask_local:
        return dask_training.run(args)
    runs.check_out(args.out, overwrite=args.overwrite)
    features = list(args.features)
    # bad options fail before any reading
    training.build(args, features, {name: 1 for name in features})
    started = time.perf_counter()
    with runs.apply_threads(args.threads), FeatureStore.open(args.store, mode="r") as store:
        provenance = runs.feature_provenance(store, features)
        segments = runs.read_segments(store, features, fold=args.train_fold, pooling=args.pooling)
        store_attrs = dict(store.attrs)
        X = segments.X(features)
        dims = {name: int(segments.features[name].shape[1]) for name in features}
        loaded = time.perf_counter()
        log.info("read %d segments of %d clips (%s) in %.1f s", len(segments),
                 len(np.unique(segments.clip_id)), "+".join(features), loaded - started)
        estimator, models = training.build(args, features, dims)
        fitted, split = training.fit(estimator, X, segments, args)
        fit_done = time.perf_counter()
        validation = training.validate(fitted, X, segments, split)
        finished = time.perf_counter()
    times = {"read_s": loaded - started, "fit_s": fit_done - loaded,
             "validate_s": finished - fit_done, "total_s": finished - started}
    return training.save_trained(args, fitted, models=models, dims=dims, segments=segments,
                                 split=split, validation=validation, provenance=provenance,
                                 store_attrs=store_attrs, timings=times)
