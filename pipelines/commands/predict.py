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
"""

import csv
import os
import pathlib
import time

import numpy as np

from pipelines.jobs import recipe, runs
from pipelines.commands.options import add_http, add_json, add_out, add_threads, print_json


def add_arguments(parser):
    parser.add_argument("run_dir", help="run directory written by avscene train")
    add_http(parser)
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    parser.add_argument("--fold", default=None, help="fold of the store (default: every clip)")
    add_out(parser, what="the DCASE output file (tab-separated)", metavar="FILE.csv")
    add_threads(parser)
    add_json(parser, what="a summary")


def segment_filenames(segments, clips):
    """DCASE row names of the segments (see the module doc).

    Parameters
    ----------
    segments : featurestore.store.Segments or pipelines.jobs.recipe.Scored (``clip_id``, ``second``)
    clips : featurestore.store.clip_table.ClipTable
    """
    position = clips.positions(np.asarray(segments.clip_id).astype(str))
    audio, video = np.asarray(clips.audio)[position], np.asarray(clips.video)[position]
    # A clip of duration D has floor(D + 1e-6) segments, at least 1 (the store's segment rule).
    single = np.floor(np.asarray(clips.duration, dtype=np.float64)[position] + 1e-6) <= 1
    names = []
    for clip_id, k, a, v, one in zip(segments.clip_id, segments.second, audio, video, single):
        source = str(a) or str(v)
        stem = pathlib.PurePosixPath(source).stem if source else str(clip_id)
        names.append(f"{stem}.wav" if one else f"{stem}_{int(k)}.wav")
    return names


def write_output(path, filenames, proba, classes):
    """Write the DCASE output file: header, then one row per segment."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    labels = np.asarray(classes)[np.asarray(proba).argmax(axis=1)]
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["filename", "scene_label", *classes])
        for name, label, row in zip(filenames, labels, proba):
            writer.writerow([name, label, *(f"{p:.10g}" for p in row)])
    os.replace(temporary, path)


def run(args):
    started = time.perf_counter()
    with runs.apply_threads(args.threads):
        bundle, record, rows, clips = recipe.read_for_run(args.run_dir, args.store,
                                                          fold=args.fold, need_labels=False)
        scored = recipe.score(bundle, record, rows)
        filenames = segment_filenames(scored, clips)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_output(args.out, filenames, scored.proba, scored.classes)
    summary = {"output": str(args.out), "rows": len(filenames),
               "clips": int(len(np.unique(scored.clip_id))),
               "protocol": recipe.protocol_of(record),
               "columns": ["filename", "scene_label", *scored.classes],
               "system": runs.system_name(record), "seconds": time.perf_counter() - started}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['rows']} rows ({summary['clips']} clips) of {summary['system']} "
              f"to {args.out} in {summary['seconds']:.1f} s")
    return 0
