"""``avscene train STORE --features ... --model ... --fusion ... --out RUN_DIR``: fit a system.

Reads the training fold's 1-s segments from the store, holds out whole locations for validation
(``--val-fraction``, per class; or the clips of a ``--split`` file), fits the system (validation
data keep the best epoch / early-stop the trees / fit late-fusion weights), fits a temperature on
the validation segments (unless ``--no-temperature``), and writes the run directory.

``--preset dcase2021`` is the DCASE 2021 Task 1B baseline recipe instead: every stored frame is
a training row, the baseline's split (``split_data.py``), each feature normalised with given
``global_mean_std.npz`` statistics (``--mean-std``) or those of the training frames, no
temperature, the baseline's training settings, and its test protocol recorded in the run
(:mod:`pipelines.jobs.recipe`). ``--from-checkpoint`` makes such a run from the baseline's trained
networks without training (:mod:`pipelines.jobs.checkpoint_runs`).
"""

import logging
import time

import numpy as np

from pipelines.jobs import checkpoint_runs, dask_training, recipe, runs, training
from pipelines.commands.options import (
    add_dask_arguments,
    add_http,
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
    add_http(parser)
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
                             "segments), paper (the DCASE 2021 baseline's networks and training "
                             "settings, on per-second segments), dcase2021 (the baseline's "
                             "recipe: every frame a row, its split, normalisation, training and "
                             "test protocol; --model baseline, --fusion none, early or proposed)")
    parser.add_argument("--pooling", default="mean", choices=("mean", "max", "meanstd", "center"),
                        help="how a segment's frames are combined")
    parser.add_argument("--train-fold", default="train", help="fold of the store to train on")
    parser.add_argument("--val-fraction", type=number(float, minimum=0, below=1), default=0.1,
                        help="share of training rows held out as whole locations (0: none)")
    parser.add_argument("--split", metavar="FILE",
                        help="the validation split: a clip_id,role file (avscene split, a run's "
                             "split.csv) or the baseline's val.csv (its clips are validation, "
                             "the rest of the fold training)")
    parser.add_argument("--from-checkpoint", type=comma_list(unique=False), metavar="PATH,...",
                        help="make the run from the baseline's trained PyTorch state dicts "
                             "instead of training: one per feature in --features order, then "
                             "the head for --fusion proposed; one for --fusion none or early")
    parser.add_argument("--mean-std", type=recipe.parse_mean_std, metavar="FEATURE=NPZ,...",
                        help="the recipe's normalisation from global_mean_std.npz files "
                             "(global_mean, global_std) instead of the training frames' "
                             "statistics")
    parser.add_argument("--no-temperature", action="store_true",
                        help="skip temperature scaling on the validation segments")
    parser.add_argument("--seed", type=seed(), default=0, help="random seed of splits and models")
    add_threads(parser)
    add_out(parser, what="the run directory", metavar="RUN_DIR")
    add_overwrite(parser, what="the run directory")
    add_json(parser, what="the run record")
    add_dask_arguments(parser, what="train (--model lr or lgbm, --fusion none or early)")


def check_options(args, features):
    """Refuse option combinations before any reading (one line each)."""
    recipe_run = training.is_recipe(args)
    if args.dask or args.dask_local:
        if recipe_run or args.split or args.mean_std:
            raise runs.RunFormatError("--dask trains avscene's segment systems; train "
                                      "--preset dcase2021, --from-checkpoint, --split and "
                                      "--mean-std without --dask")
        return
    if args.mean_std and not recipe_run:
        raise runs.RunFormatError("--mean-std normalises the dcase2021 recipe: add --preset "
                                  "dcase2021 (or --from-checkpoint)")
    if args.from_checkpoint:
        checkpoint_runs.parts(args, features)
        args.preset = "dcase2021"            # the recipe's protocol, recorded as its preset
    else:
        training.build(args, features, {name: 1 for name in features})


def run(args):
    from featurestore.store import FeatureStore

    features = list(args.features)
    check_options(args, features)
    if args.dask or args.dask_local:
        return dask_training.run(args)
    runs.check_out(args.out, overwrite=args.overwrite)
    protocol = dict(recipe.FRAME_PROTOCOL if training.is_recipe(args)
                    else recipe.SEGMENT_PROTOCOL)
    loaded_states = checkpoint_runs.read_states(args, features) if args.from_checkpoint else None
    started = time.perf_counter()
    with runs.apply_threads(args.threads), FeatureStore.open(args.store, mode="r") as store:
        provenance = runs.feature_provenance(store, features)
        declared = {name: int(store.feature_attrs(name)["dim"]) for name in features}
        given = recipe.load_mean_std(args.mean_std, features, declared)
        network = (checkpoint_runs.system(loaded_states, features, declared)
                   if loaded_states else None)
        rows = recipe.read_rows(store, features, fold=args.train_fold, protocol=protocol,
                                pooling=args.pooling)
        store_attrs = dict(store.attrs)
        X = rows.X(features)
        dims = {name: int(rows.features[name].shape[-1]) for name in features}
        split, split_record = training.split_rows(args, store, rows)
        loaded = time.perf_counter()
        log.info("read %d %s of %d clips (%s) in %.1f s", len(rows),
                 "frames" if recipe.uses_frames(protocol) else "segments",
                 len(np.unique(rows.clip_id)), "+".join(features), loaded - started)
        fitted, models, protocol, extra = fit_system(args, features, dims, X, rows, split,
                                                     protocol, given, loaded_states, network)
        fit_done = time.perf_counter()
        validation = training.validate(fitted, X, rows, split, protocol=protocol)
        finished = time.perf_counter()
    times = {"read_s": loaded - started, "fit_s": fit_done - loaded,
             "validate_s": finished - fit_done, "total_s": finished - started}
    return training.save_trained(args, fitted, models=models, dims=dims, segments=rows,
                                 split=split, validation=validation, provenance=provenance,
                                 store_attrs=store_attrs, timings=times, protocol=protocol,
                                 split_record=split_record, extra=extra)


def fit_system(args, features, dims, X, rows, split, protocol, given, loaded_states, network):
    """``(fitted, models, protocol, extra record keys)``: trained, or the checked ``network``
    of the ``--from-checkpoint`` files (``given``: the ``--mean-std`` statistics)."""
    if not training.is_recipe(args):
        estimator, models = training.build(args, features, dims)
        protocol["normalisation"] = training.ESTIMATOR_NORMALISATION
        return training.fit(estimator, X, rows, split), models, protocol, None
    from classifiers.systems import feature_columns

    mean, std, normalisation = recipe.normalisation(X, split[0], feature_columns(dims), given)
    protocol["normalisation"] = normalisation
    models = {name: "baseline" for name in features}
    if network is not None:
        return (checkpoint_runs.normalised_run(network, mean, std), models, protocol,
                {"checkpoints": checkpoint_runs.record(loaded_states)})
    estimator, models = training.build(args, features, dims)
    estimator.set_params(mean=mean, std=std)
    return training.fit(estimator, X, rows, split), models, protocol, None
