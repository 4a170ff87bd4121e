"""``avscene synth OUT``: write a synthetic corpus in the TAU Urban Audio-Visual Scenes 2021 layout.

``OUT/development/`` (meta.csv, evaluation_setup/, audio/, video/), with ``--eval-clips`` also
``OUT/evaluation/`` (one-second clips named by integer id) and ``OUT/evaluation_truth.csv``
(their labels); ``OUT/synth.json`` records the options. See :mod:`featurestore.synth.corpus`.
"""

import argparse
import json

from featurestore.datasets import SCENES
from featurestore.errors import UsageError


def _size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 400x224, got {text!r}")
    if min(width, height) < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"width and height must be even and >= 16, got {text}")
    return width, height


def _at_least(minimum, kind=int):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value
    return parse


def add_arguments(parser):
    parser.add_argument("out", help="output folder (development/ and evaluation/ go inside)")
    parser.add_argument("--clips-per-class", type=_at_least(1), default=4, metavar="N",
                        help="development clips per class")
    parser.add_argument("--seconds", type=_at_least(1.0, float), default=10.0, metavar="S",
                        help="length of a development clip (evaluation clips are 1 s)")
    parser.add_argument("--size", type=_size, default="400x224", metavar="WxH",
                        help="video size; OpenL3 video needs a short side >= 224")
    parser.add_argument("--fps", type=_at_least(0.1, float), default=30.0, metavar="F",
                        help="video frame rate")
    parser.add_argument("--seed", type=_at_least(0), default=0, metavar="K",
                        help="random seed (same seed, same corpus)")
    parser.add_argument("--eval-clips", type=_at_least(0), default=0, metavar="M",
                        help="one-second evaluation clips to write (0: none)")
    parser.add_argument("--classes", nargs="+", choices=SCENES, default=argparse.SUPPRESS,
                        metavar="SCENE", help="scene classes to include (default: all ten)")
    parser.add_argument("--locations-per-class", type=_at_least(1), default=argparse.SUPPRESS,
                        metavar="L", help="recording locations per class "
                                          "(default: clips-per-class / 3, at least 2)")
    parser.add_argument("--jobs", type=_at_least(0), default=0, metavar="J",
                        help="worker processes (0: all cores)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the development/ and evaluation/ of an earlier synth run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args):
    from featurestore.synth import synth_corpus

    classes = getattr(args, "classes", SCENES)
    locations = getattr(args, "locations_per_class", None)
    if len(set(classes)) != len(classes):
        raise UsageError(f"--classes repeats a class: {' '.join(classes)}")
    if locations is not None and locations > args.clips_per_class:
        raise UsageError(f"--locations-per-class {locations} exceeds --clips-per-class "
                            f"{args.clips_per_class}")
    try:
        result = synth_corpus(
            args.out, clips_per_class=args.clips_per_class, seconds=args.seconds,
            size=args.size, fps=args.fps, seed=args.seed, eval_clips=args.eval_clips,
            classes=classes, locations_per_class=locations,
            jobs=args.jobs or None, overwrite=args.overwrite)
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    report = dict(development=str(result.development), clips=result.clips,
                  evaluation=str(result.evaluation) if result.evaluation else None,
                  eval_clips=result.eval_clips, truth=str(result.truth) if result.truth else None,
                  seconds=round(result.elapsed, 2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    width, height = args.size
    print(f"wrote {result.clips} clips of {args.seconds:g} s ({len(classes)} classes, "
          f"{width}x{height} at {args.fps:g} fps) to {result.development}")
    if result.evaluation:
        print(f"wrote {result.eval_clips} one-second clips to {result.evaluation}, "
              f"labels in {result.truth}")
    print(f"took {result.elapsed:.1f} s; check with: avscene scan {result.development}")
    return 0

