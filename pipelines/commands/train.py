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

The job is :func:`pipelines.jobs.training.train` (or, with ``--dask`` / ``--dask-local``,
:func:`pipelines.jobs.dask_training.train`) of the :class:`~pipelines.jobs.training.TrainSpec`
made from the options; this module prints the run's summary or its record.
"""

import argparse

from pipelines.commands.options import (
    add_dask_arguments,
    add_http,
    add_json,
    add_out,
    add_overwrite,
    add_threads,
    check_output,
    comma_list,
    list_type,
    number,
    print_json,
    seed,
)
from pipelines.jobs import dask_training, runs, training
from pipelines.jobs.training import SPLIT_FILE

MODELS, FUSIONS = training.MODELS, training.FUSIONS


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_http(parser)
    parser.add_argument(
        "--features",
        required=True,
        type=comma_list(),
        metavar="NAME,...",
        help="feature names, e.g. openl3_audio,openl3_video",
    )
    parser.add_argument(
        "--model",
        default="lr",
        help=f"one of {', '.join(MODELS)} for every feature, or one per feature: "
        "video=lgbm,audio=lr (keys match a feature name or a unique part)",
    )
    parser.add_argument(
        "--fusion",
        default="none",
        choices=FUSIONS,
        help="none (one feature), early (concatenated features, one model), late "
        "(averaged probabilities), weighted (late, weights fitted on "
        "validation), stack (meta-classifier on out-of-fold probabilities), "
        "proposed (DCASE 2021 baseline fusion of frozen baseline nets)",
    )
    parser.add_argument(
        "--preset",
        default="default",
        help="fast (tests), default (TAU-sized data), small (a few thousand "
        "segments), paper (the DCASE 2021 baseline's networks and training "
        "settings, on per-second segments), dcase2021 (the baseline's "
        "recipe: every frame a row, its split, normalisation, training and "
        "test protocol; --model baseline, --fusion none, early or proposed)",
    )
    parser.add_argument(
        "--pooling",
        default="mean",
        choices=("mean", "max", "meanstd", "center"),
        help="how a segment's frames are combined",
    )
    parser.add_argument("--train-fold", default="train", help="fold of the store to train on")
    parser.add_argument(
        "--val-fraction",
        type=number(float, minimum=0, below=1),
        default=0.1,
        help="share of training rows held out as whole locations (0: none)",
    )
    parser.add_argument(
        "--split",
        metavar="FILE",
        help="the validation split: a clip_id,role file (avscene split, a run's "
        "split.csv) or the baseline's val.csv (its clips are validation, "
        "the rest of the fold training)",
    )
    parser.add_argument(
        "--from-checkpoint",
        type=comma_list(unique=False),
        metavar="PATH,...",
        help="make the run from the baseline's trained PyTorch state dicts "
        "instead of training: one per feature in --features order, then "
        "the head for --fusion proposed; one for --fusion none or early",
    )
    parser.add_argument(
        "--mean-std",
        type=parse_mean_std,
        metavar="FEATURE=NPZ,...",
        help="the recipe's normalisation from global_mean_std.npz files "
        "(global_mean, global_std) instead of the training frames' "
        "statistics",
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="skip temperature scaling on the validation segments",
    )
    parser.add_argument("--seed", type=seed(), default=0, help="random seed of splits and models")
    add_threads(parser)
    add_out(parser, what="the run directory", metavar="RUN_DIR")
    add_overwrite(parser, what="the run directory")
    add_json(parser, what="the run record")
    add_dask_arguments(parser, what="train (--model lr or lgbm, --fusion none or early)")


@list_type
def parse_mean_std(text):
    """``FEATURE=NPZ,...`` -> tuple of (feature key, path) (argparse type)."""
    pairs = []
    for item in text.split(","):
        key, sep, path = item.partition("=")
        if not sep or not key.strip() or not path.strip():
            raise argparse.ArgumentTypeError(f"expected FEATURE=NPZ[,FEATURE=NPZ], got {item!r}")
        pairs.append((key.strip(), path.strip()))
    return tuple(pairs)


def train_spec(args) -> training.TrainSpec:
    """The :class:`~pipelines.jobs.training.TrainSpec` of the parsed options."""
    return training.TrainSpec(
        store=args.store,
        features=tuple(args.features),
        out=args.out,
        model=args.model,
        fusion=args.fusion,
        preset=args.preset,
        pooling=args.pooling,
        train_fold=args.train_fold,
        val_fraction=args.val_fraction,
        split=args.split,
        from_checkpoint=args.from_checkpoint,
        mean_std=args.mean_std,
        temperature=not args.no_temperature,
        seed=args.seed,
        threads=args.threads,
        overwrite=args.overwrite,
        dask=args.dask,
        dask_local=args.dask_local,
    )


def run(args):
    spec = train_spec(args)
    check_output(spec.out, folder=True, files=[*runs.output_files(spec.out), SPLIT_FILE])
    job = dask_training.train if spec.uses_dask else training.train
    record = job(spec)
    if args.json:
        print_json(record)
    else:
        print(format_summary(record, spec.out))
    return 0


def format_summary(record, run_dir):
    """The human-readable lines printed after training."""
    training, validation = record["training"], record["validation"]
    unit = "frames" if "n_frames" in training else "segments"
    lines = [
        f"{'imported' if record.get('checkpoints') else 'trained'} {runs.system_name(record)} "
        f"(preset {record['system']['preset']}) on {training['n_clips']} clips / "
        f"{training[f'n_{unit}']} {unit}, {training['n_locations']} locations, "
        f"{len(training['classes'])} classes in {record['timings']['fit_s']:.1f} s",
    ]
    if validation:
        seg, clip = validation["segment"], validation["clip"]
        temperature = validation.get("temperature")
        lines.append(
            f"validation ({validation['n_clips']} clips, {validation['n_locations']} locations): "
            f"segment log loss {seg['log_loss']:.3f}, accuracy {100 * seg['accuracy']:.1f}%; "
            f"clip log loss {clip['log_loss']:.3f}, accuracy {100 * clip['accuracy']:.1f}%"
            + (
                f"; temperature {temperature:.2f} (log loss before "
                f"{seg['log_loss_before_temperature']:.3f})"
                if temperature
                else ""
            )
        )
    lines.append(
        f"run directory {run_dir}: {runs.MODEL_FILE}, {runs.ARRAYS_FILE}, "
        f"{SPLIT_FILE}, {runs.RECORD_FILE}"
    )
    return "\n".join(lines)
