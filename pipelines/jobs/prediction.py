"""The prediction job behind ``avscene predict``: the DCASE 2021 Task 1B output file of a run.

:func:`predict_run` scores a store (or one fold) with a run as its recorded test protocol says
(:mod:`pipelines.jobs.recipe`), writes the output file and returns a summary. The file's format
and row names: :mod:`pipelines.commands.predict`.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featurestore import outputs
from pipelines.jobs import recipe, runs
from pipelines.jobs.specs import PathLike


def predict_run(
    run_dir: PathLike,
    store: str,
    *,
    out: PathLike,
    fold: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write the DCASE output file of the run in ``run_dir`` on ``store``; return a summary.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``avscene train``.
    store : str
        Feature store: a directory or an fsspec URL (labels not needed).
    out : path
        The output file (tab-separated; its folder is created).
    fold : str, optional
        Fold of the store (None: every clip).
    threads : int, optional
        CPU threads of this process (None: the libraries' own choice).

    Returns
    -------
    dict
        ``output``, ``rows`` (1-s segments), ``clips``, ``protocol``, ``columns``, ``system``
        and ``seconds``.
    """
    started = time.perf_counter()
    with runs.apply_threads(threads):
        bundle, record, rows, clips = recipe.read_for_run(
            run_dir, store, fold=fold, need_labels=False
        )
        scored = recipe.score(bundle, record, rows)
        filenames = segment_filenames(scored, clips)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_output(out, filenames, scored.proba, scored.classes)
    return {
        "output": str(out),
        "rows": len(filenames),
        "clips": int(len(np.unique(scored.clip_id))),
        "protocol": recipe.protocol_of(record),
        "columns": ["filename", "scene_label", *scored.classes],
        "system": runs.system_name(record),
        "seconds": time.perf_counter() - started,
    }


def segment_filenames(segments: Any, clips: Any) -> list[str]:
    """DCASE row names of the segments (see :mod:`pipelines.commands.predict`).

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


def write_output(
    path: PathLike, filenames: Sequence[str], proba: NDArray[Any], classes: Sequence[str]
) -> None:
    """Write the DCASE output file: header, then one row per segment (through a fresh temporary
    file, never through a symbolic link: :func:`featurestore.outputs.write_csv`)."""
    labels = np.asarray(classes)[np.asarray(proba).argmax(axis=1)]
    rows = (
        [name, label, *(f"{p:.10g}" for p in row)]
        for name, label, row in zip(filenames, labels, proba)
    )
    outputs.write_csv(path, [["filename", "scene_label", *classes], *rows], delimiter="\t")
