"""``avscene synth --out DIR``: write a synthetic corpus in the TAU Urban Audio-Visual Scenes 2021 layout.

``DIR/development/`` (meta.csv, evaluation_setup/, audio/, video/), with ``--eval-clips`` also
``DIR/evaluation/`` (one-second clips named by integer id) and ``DIR/evaluation_truth.csv``
(their labels); ``DIR/synth.json`` records the options. See :mod:`featurestore.synth.corpus`.
"""

import argparse

from featurestore.datasets import SCENES
from featurestore.errors import UsageError
from featurestore.synth import corpus
from pipelines.commands.options import (
    add_json,
    add_out,
    add_overwrite,
    add_workers,
    check_output,
    comma_list,
    non_negative,
    number,
    positive,
    print_json,
    seed,
)


def _size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 400x224, got {text!r}"
        ) from None
    if (
        not 16 <= min(width, height) <= max(width, height) <= corpus.MAX_SIDE
        or width % 2
        or height % 2
    ):
        raise argparse.ArgumentTypeError(
            f"width and height must be even, from 16 to {corpus.MAX_SIDE}, got {text}"
        )
    return width, height


def add_arguments(parser):
    add_out(parser, what="the corpus (development/ and evaluation/ go inside)", metavar="DIR")
    parser.add_argument(
        "--clips-per-class",
        type=positive(int, maximum=corpus.MAX_CLIPS_PER_CLASS),
        default=4,
        metavar="N",
        help="development clips per class",
    )
    parser.add_argument(
        "--seconds",
        type=number(float, minimum=1.0, maximum=corpus.MAX_SECONDS),
        default=10.0,
        metavar="S",
        help="length of a development clip (evaluation clips are 1 s)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        default="400x224",
        metavar="WxH",
        help="video size; OpenL3 video needs a short side >= 224 (range: "
        f"even sides from 16 to {corpus.MAX_SIDE})",
    )
    parser.add_argument(
        "--fps",
        type=number(float, minimum=0.1, maximum=corpus.MAX_FPS),
        default=30.0,
        metavar="F",
        help="video frame rate",
    )
    parser.add_argument(
        "--seed", type=seed(), default=0, metavar="K", help="random seed (same seed, same corpus)"
    )
    parser.add_argument(
        "--eval-clips",
        type=non_negative(int, maximum=corpus.MAX_EVAL_CLIPS),
        default=0,
        metavar="M",
        help="one-second evaluation clips to write (0: none)",
    )
    parser.add_argument(
        "--classes",
        type=comma_list(choices=SCENES),
        default=SCENES,
        metavar="SCENE,...",
        help="scene classes to include (default: all ten)",
    )
    parser.add_argument(
        "--locations-per-class",
        type=positive(int, maximum=corpus.MAX_CLIPS_PER_CLASS),
        default=argparse.SUPPRESS,
        metavar="L",
        help="recording locations per class, at most --clips-per-class "
        "(default: clips-per-class / 3, at least 2)",
    )
    add_workers(parser, default=None, what="rendering clips (None: one per core)")
    add_overwrite(parser, what="the development/ and evaluation/ of an earlier synth run")
    add_json(parser, what="what was written")


def check_arguments(args):
    """The options checked together before any work (a UsageError: the usage error)."""
    locations = getattr(args, "locations_per_class", None)
    if locations is not None and locations > args.clips_per_class:
        raise UsageError(
            f"--locations-per-class {locations} exceeds --clips-per-class {args.clips_per_class}"
        )


def run(args):
    from featurestore.synth import synth_corpus

    check_output(args.out, folder=True)
    classes = tuple(args.classes)
    locations = getattr(args, "locations_per_class", None)
    check_arguments(args)
    try:
        result = synth_corpus(
            args.out,
            clips_per_class=args.clips_per_class,
            seconds=args.seconds,
            size=args.size,
            fps=args.fps,
            seed=args.seed,
            eval_clips=args.eval_clips,
            classes=classes,
            locations_per_class=locations,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    report = dict(
        development=str(result.development),
        clips=result.clips,
        evaluation=str(result.evaluation) if result.evaluation else None,
        eval_clips=result.eval_clips,
        truth=str(result.truth) if result.truth else None,
        seconds=round(result.elapsed, 2),
    )
    if args.json:
        print_json(report)
        return 0
    width, height = args.size
    print(
        f"wrote {result.clips} clips of {args.seconds:g} s ({len(classes)} classes, "
        f"{width}x{height} at {args.fps:g} fps) to {result.development}"
    )
    if result.evaluation:
        print(
            f"wrote {result.eval_clips} one-second clips to {result.evaluation}, "
            f"labels in {result.truth}"
        )
    print(f"took {result.elapsed:.1f} s; check with: avscene scan {result.development}")
    return 0
