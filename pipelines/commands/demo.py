"""``avscene demo``: the whole product on a synthetic corpus, in one command (``make demo``).

It runs, and prints, the same commands a user runs on the real data:

1. ``avscene synth``: a small corpus in the TAU Urban Audio-Visual Scenes 2021 layout
   (development clips plus one-second evaluation clips with hidden labels);
2. ``avscene extract`` (development, then evaluation) into one store: OpenL3 audio and video
   embeddings and log-mels. Official OpenL3 weights are used when found; otherwise random weights
   are written and every output says that the numbers are only a pipeline check;
3. ``avscene train`` + ``avscene evaluate`` for LR, MLP and LightGBM per modality and for the
   fusions (early, late, stacking, the DCASE 2021 baseline's proposed fusion), two systems at a
   time in separate processes with one thread each (the fastest use of 2 cores);
4. ``avscene predict`` with the system of lowest validation log loss on the evaluation clips,
   then ``avscene score`` of that output file against the hidden labels;
5. ``avscene report``: ``report.md`` with the comparison, per-class tables and plots;
6. ``avscene pack``: the store as one zip archive (``store.zarr.zip``) to share, which every
   command reads in place.

To stay within a few minutes on 2 CPU cores the extraction takes one 1 s OpenL3 window
(``--hop 1 --no-center``) and one video frame (``--fps 1``) per second of media, in bf16 where
the hardware supports it; the real-data commands in the README use the baseline's settings.

The job is :func:`pipelines.jobs.demo_run.run_demo`; this module gives it the command line to run
the steps with (:func:`command`), prints the summary and returns the exit status.
"""

import contextlib

from featurestore import outputs
from featurestore.datasets import SCENES
from featurestore.errors import UsageError
from pipelines.commands.options import (
    add_json,
    add_out,
    add_workers,
    check_output,
    comma_list,
    non_negative,
    number,
    positive,
    print_json,
    seed,
)
from pipelines.jobs import demo_run, tables

#: Upper bounds of the corpus options (the demo runs every step in minutes, not hours).
MAX_CLIPS_PER_CLASS, MAX_SECONDS, MAX_EVAL_CLIPS = 1000, 60.0, 10000


def add_arguments(parser):
    add_out(
        parser,
        what="the corpus, store, runs, output file and report",
        required=False,
        default="demo-output",
        metavar="DIR",
    )
    parser.add_argument(
        "--clips-per-class",
        type=positive(int, maximum=MAX_CLIPS_PER_CLASS),
        default=8,
        help="development clips per class",
    )
    parser.add_argument(
        "--seconds",
        type=number(float, minimum=1.0, maximum=MAX_SECONDS),
        default=3.0,
        help="length of development clips",
    )
    parser.add_argument(
        "--eval-clips",
        type=non_negative(int, maximum=MAX_EVAL_CLIPS),
        default=20,
        help="one-second evaluation clips",
    )
    parser.add_argument(
        "--classes",
        type=comma_list(choices=SCENES),
        default=SCENES,
        metavar="SCENE,...",
        help="scene classes",
    )
    parser.add_argument(
        "--weights",
        help="official OpenL3 weights (file or folder); default: "
        "found automatically, else RANDOM weights",
    )
    parser.add_argument("--preset", default="small", help="classifier preset (see avscene train)")
    add_workers(
        parser,
        default=2,
        what="training systems, one thread each",
        zero="train one system at a time in this process",
    )
    parser.add_argument("--seed", type=seed(), default=0, help="seed of the corpus and the models")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete everything in --out first, even files that are not a demo's "
        "(a previous demo's folder is always replaced)",
    )
    add_json(parser, what="the summary")


def command(argv, *, log=None):
    """Print ``avscene ARGV`` and run it in this process; its stdout goes to ``log`` if given.

    Returns the exit status (AvsceneErrors become status 2 with their one-line message, as on
    the command line).
    """
    from pipelines.commands import cli

    print("$ avscene " + " ".join(map(str, argv)), flush=True)
    if log is None:
        return cli.main([str(a) for a in argv])
    with outputs.create_new(log, text=True) as handle, contextlib.redirect_stdout(handle):
        return cli.main([str(a) for a in argv])


def notice(text):
    """Print a message of the demo at once (the banner about random weights)."""
    print(text, flush=True)


def demo_spec(args) -> demo_run.DemoSpec:
    """The :class:`~pipelines.jobs.demo_run.DemoSpec` of the parsed options."""
    return demo_run.DemoSpec(
        out=args.out,
        clips_per_class=args.clips_per_class,
        seconds=args.seconds,
        eval_clips=args.eval_clips,
        classes=tuple(args.classes),
        weights=args.weights,
        preset=args.preset,
        workers=args.workers,
        seed=args.seed,
        overwrite=args.overwrite,
    )


def check_arguments(args):
    """The options checked before any work: a preset ``avscene train`` knows (UsageError)."""
    from classifiers.presets import get_preset

    try:
        get_preset(args.preset)
    except ValueError as error:
        raise UsageError(f"--preset: {error}") from None


def run(args):
    spec = demo_spec(args)
    check_output(spec.out, folder=True)
    summary = demo_run.run_demo(spec, run_command=command, notice=notice)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary, summary["systems"]))
    return 0 if demo_run.succeeded(summary, spec.classes) else 1


def format_summary(summary, rows):
    """The lines printed at the end: the systems table, the evaluation-set score, the files."""
    lines = [
        "",
        *tables.systems_table(rows, fold="evaluate", style="text"),
        "* lowest validation log loss",
    ]
    scored = summary["evaluation_set"]
    if scored:
        lines.append(
            f"evaluation clips ({summary['best_system']}): log loss "
            f"{scored['log_loss']:.3f}, accuracy {100 * scored['accuracy']:.1f}%"
        )
    lines += [
        f"demo finished in {summary['seconds']:.0f} s",
        f"report: {summary['report']}",
        f"store:  {summary['store']}",
    ]
    if summary.get("archive"):
        lines.append(
            f"archive: {summary['archive']} ({summary['archive_bytes'] / 2**20:.1f} "
            f"MiB; every command reads it in place, avscene unpack restores the store)"
        )
    lines.append(f"output: {summary['output']}")
    return "\n".join(lines)
