"""``avscene predict RUN_DIR STORE [--fold F] --out OUTPUT.csv``: the DCASE 2021 Task 1B output file.

Tab-separated, header ``filename``, ``scene_label``, then one probability column per class in the
order airport, bus, metro, metro_station, park, public_square, shopping_mall, street_pedestrian,
street_traffic, tram (always all ten; a class training never saw gets probability 0; classes
outside these ten, if the model has any, follow). One row per 1-s segment, ``scene_label`` is the
most probable class. A segment is what the run's test protocol says (:mod:`pipelines.jobs.recipe`):
the pooled frames of the second, or, for a ``dcase2021`` run, the k-th picked frame.

File names (our decision, from the 2021 sources): a clip of one segment (the evaluation set's 1-s
clips) is named by its own audio file, ``<id>.wav`` (as 1B submissions, e.g.
``Yuanbo2020/DCASE2021-T1B:Code/evaluation_output.py``); segment k of a longer clip is
``<stem>_<k>.wav`` (as the baseline's ``test_DCASE.py`` names audio segments; its audio-visual
variant appends ``.mp4`` as well, which we do not). ``<stem>`` is the audio file's stem, else the
video file's, else the clip id. Works on stores without labels.

The job is :func:`pipelines.jobs.prediction.predict_run`; this module prints its summary.
"""

from pipelines.commands.options import (
    add_http,
    add_json,
    add_out,
    add_threads,
    check_output,
    print_json,
)
from pipelines.jobs import prediction


def add_arguments(parser):
    parser.add_argument("run_dir", help="run directory written by avscene train")
    add_http(parser)
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--fold", default=None, help="fold of the store (default: every clip)")
    add_out(parser, what="the DCASE output file (tab-separated)", metavar="FILE.csv")
    add_threads(parser)
    add_json(parser, what="a summary")


def run(args):
    check_output(args.out)
    summary = prediction.predict_run(
        args.run_dir, args.store, out=args.out, fold=args.fold, threads=args.threads
    )
    if args.json:
        print_json(summary)
    else:
        print(
            f"wrote {summary['rows']} rows ({summary['clips']} clips) of {summary['system']} "
            f"to {args.out} in {summary['seconds']:.1f} s"
        )
    return 0
