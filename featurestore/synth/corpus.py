"""A synthetic corpus in the exact TAU Urban Audio-Visual Scenes 2021 layouts.

``OUT/development/`` is a development set (``audio/<scene>-<city>-<loc>-<segment>.wav``, 48 kHz
24-bit stereo; ``video/<same>.mp4``, H.264 yuv420p; ``meta.csv``;
``evaluation_setup/fold1_{train,evaluate,test}.csv``; tab-separated with the real headers).
Locations are split between train and evaluate (about 70/30 per class, none shared); each class
has several locations in several cities; location and segment ids are unique integers.
``OUT/evaluation/`` (with ``eval_clips``) holds one-second clips ``audio/<id>.wav`` and
``video/<id>.mp4`` from new locations (two cities only found there), unlabelled; their true
labels are in ``OUT/evaluation_truth.csv`` (meta.csv columns), outside the dataset folder.
``OUT/synth.json`` records the parameters. Every file is written by :mod:`featurestore.outputs`
(never through a symbolic link; the media into the folders synth has just made).

The task is learnable and needs both modalities: :data:`AUDIO_ALIKE` pairs sound alike but look
different, :data:`VIDEO_ALIKE` pairs look alike but sound different (recipes in
:mod:`featurestore.synth.audio` and :mod:`featurestore.synth.video`). Six classes are told apart
by one modality alone; airport, tram and public_square need both. Each location has its own
recording conditions, so location-grouped splits are harder than random ones, as in the real
data. Everything derives from ``seed``: a clip's content depends only on the seed, its location
and its index, not on ``workers``.
"""

import logging
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from featurestore import outputs
from featurestore.datasets import DEVELOPMENT_CITIES, EVALUATION_ONLY_CITIES, SCENES
from featurestore.provenance import package_versions

log = logging.getLogger(__name__)

#: Pairs that sound alike (the audio recipes differ only by a small band gain).
AUDIO_ALIKE = (
    ("airport", "shopping_mall"),
    ("bus", "tram"),
    ("street_pedestrian", "public_square"),
)
#: Pairs that look alike (the video recipes differ only by a small colour tint).
VIDEO_ALIKE = (("tram", "metro"), ("airport", "metro_station"), ("park", "public_square"))

SAMPLE_RATE = 48000
#: Upper bounds of the corpus options (a corpus is for tests and demos, not for filling disks).
MAX_CLIPS_PER_CLASS, MAX_EVAL_CLIPS, MAX_SECONDS = 10000, 100000, 600.0
MAX_SIDE, MAX_FPS = 4096, 120.0
META_HEADER = ("filename_audio", "filename_video", "scene_label", "identifier")
_AUDIO_PLACE, _VIDEO_PLACE, _AUDIO_CLIP, _VIDEO_CLIP, _PLAN = range(5)


@dataclass(frozen=True)
class ClipPlan:
    """What to render for one clip: its name, class, location and random-stream keys."""

    clip_id: str
    scene: str
    city: str
    location: str
    location_key: int
    clip_key: int
    fold: str


@dataclass(frozen=True)
class SynthResult:
    """Where :func:`synth_corpus` wrote what."""

    development: Path
    evaluation: Path | None
    truth: Path | None
    clips: int
    eval_clips: int
    elapsed: float


def synth_corpus(
    out,
    *,
    clips_per_class=4,
    seconds=10.0,
    size=(400, 224),
    fps=30.0,
    seed=0,
    eval_clips=0,
    classes=SCENES,
    locations_per_class=None,
    workers=None,
    overwrite=False,
):
    """Write a synthetic development set (and evaluation set) under ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder; ``development/`` (and ``evaluation/``) are created in it.
    clips_per_class : int
        Development clips per class (>= 1).
    seconds : float
        Length of a development clip; evaluation clips are 1 s.
    size : (int, int)
        Video width and height (even numbers).
    fps : float
        Video frame rate.
    seed : int
        Seed (>= 0); the same seed gives identical WAV bytes and decoded frames.
    eval_clips : int
        Number of one-second evaluation clips (0: none).
    classes : sequence of str
        Scene classes (a subset of SCENES).
    locations_per_class : int, optional
        At most ``clips_per_class``; default ``ceil(clips_per_class / 3)``, at least 2 (at most
        ``clips_per_class``).
    workers : int, optional
        Worker processes (default: one per core); 0 or 1 renders in this process.
    overwrite : bool
        Replace ``development/`` and ``evaluation/`` of an earlier synth run (one that wrote
        ``synth.json``); otherwise existing folders raise FileExistsError.

    Returns
    -------
    SynthResult
    """
    started = time.perf_counter()
    locations = locations_per_class or min(max(math.ceil(clips_per_class / 3), 2), clips_per_class)
    _check_options(clips_per_class, seconds, size, fps, seed, eval_clips, classes, locations)
    out = Path(out)
    development, evaluation = out / "development", out / "evaluation"
    _prepare(out, [development, evaluation, out / "evaluation_truth.csv"], overwrite=overwrite)
    dev_plans, eval_plans = plan_corpus(
        classes,
        clips_per_class=clips_per_class,
        locations_per_class=locations,
        eval_clips=eval_clips,
        seed=seed,
    )
    options = dict(
        seed=seed,
        clips_per_class=clips_per_class,
        seconds=seconds,
        size=list(size),
        fps=fps,
        eval_clips=eval_clips,
        classes=list(classes),
        locations_per_class=locations,
    )
    outputs.write_json(
        out / "synth.json",
        dict(
            options, audio_alike=AUDIO_ALIKE, video_alike=VIDEO_ALIKE, versions=package_versions()
        ),
        within=out,
    )
    _write_development_lists(development, dev_plans, within=out)
    tasks = [(plan, development, seconds) for plan in dev_plans]
    truth = None
    if eval_plans:
        truth = out / "evaluation_truth.csv"
        _write_table(truth, META_HEADER, [_meta_row(p) for p in eval_plans], within=out)
        tasks += [(plan, evaluation, 1.0) for plan in eval_plans]
    _render_all(tasks, seed=seed, size=tuple(size), fps=fps, workers=workers)
    return SynthResult(
        development,
        evaluation if eval_plans else None,
        truth,
        len(dev_plans),
        len(eval_plans),
        time.perf_counter() - started,
    )


def _check_options(clips_per_class, seconds, size, fps, seed, eval_clips, classes, locations):
    unknown = sorted(set(classes) - set(SCENES))
    problems = [
        (
            not 1 <= clips_per_class <= MAX_CLIPS_PER_CLASS,
            f"clips_per_class must be from 1 to {MAX_CLIPS_PER_CLASS}, got {clips_per_class}",
        ),
        (
            not 1 <= locations <= clips_per_class,
            f"locations_per_class must be between 1 and clips_per_class, got {locations}",
        ),
        (
            not 1.0 <= seconds <= MAX_SECONDS,
            f"seconds must be from 1 to {MAX_SECONDS}, got {seconds}",
        ),
        (
            len(size) != 2 or any(not 16 <= v <= MAX_SIDE or v % 2 for v in size),
            f"size must be two even numbers from 16 to {MAX_SIDE}, got {size}",
        ),
        (not 0 < fps <= MAX_FPS, f"fps must be > 0 and <= {MAX_FPS}, got {fps}"),
        (seed < 0, f"seed must be >= 0, got {seed}"),
        (
            not 0 <= eval_clips <= MAX_EVAL_CLIPS,
            f"eval_clips must be from 0 to {MAX_EVAL_CLIPS}, got {eval_clips}",
        ),
        (
            not classes or unknown or len(set(classes)) != len(classes),
            f"classes must be distinct names from {', '.join(SCENES)}; got {', '.join(classes)}",
        ),
    ]
    for failed, message in problems:
        if failed:
            raise ValueError(message)


def _prepare(out, folders, *, overwrite):
    existing = [f for f in folders if f.exists()]
    if existing and not (overwrite and (out / "synth.json").is_file()):
        hint = (
            "pass overwrite/--overwrite"
            if (out / "synth.json").is_file()
            else "choose another folder (it was not written by synth)"
        )
        raise FileExistsError(f"{existing[0]}: exists; {hint}")
    for path in existing:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def plan_corpus(classes, *, clips_per_class, locations_per_class, eval_clips, seed):
    """Name every clip and assign its class, city, location and fold.

    Returns
    -------
    (list of ClipPlan, list of ClipPlan)
        Development clips (fold ``train`` or ``evaluate``) and evaluation clips (fold ``eval``,
        ids ``0 .. eval_clips - 1``).
    """
    rng = np.random.default_rng([seed, _PLAN])
    eval_locations = 2 if eval_clips else 0
    n_locations = len(classes) * (locations_per_class + eval_locations)
    location_ids = rng.choice(np.arange(1, max(1300, 3 * n_locations)), n_locations, replace=False)
    n_clips = len(classes) * clips_per_class
    segment_ids = np.sort(
        rng.choice(np.arange(100, max(46000, 4 * n_clips)), n_clips, replace=False)
    )
    dev, evaluation, key = [], [], 0
    for scene in classes:
        cities = _cities(rng, DEVELOPMENT_CITIES, locations_per_class)
        n_evaluate = max(1, round(0.3 * locations_per_class)) if locations_per_class > 1 else 0
        folds = rng.permutation(
            ["evaluate"] * n_evaluate + ["train"] * (locations_per_class - n_evaluate)
        )
        for j in range(locations_per_class):
            location = f"{cities[j]}-{location_ids[key]}"
            for _ in range(j, clips_per_class, locations_per_class):
                segment = segment_ids[len(dev)]
                dev.append(
                    ClipPlan(
                        f"{scene}-{location}-{segment}",
                        scene,
                        cities[j],
                        location,
                        key,
                        len(dev),
                        str(folds[j]),
                    )
                )
            key += 1
    if eval_clips:
        labels = rng.permutation([classes[i % len(classes)] for i in range(eval_clips)])
        places = {}
        for scene in classes:
            cities = _cities(rng, DEVELOPMENT_CITIES + EVALUATION_ONLY_CITIES, eval_locations)
            places[scene] = [(city, key + i) for i, city in enumerate(cities)]
            key += eval_locations
        for i, scene in enumerate(labels):
            city, location_key = places[scene][rng.integers(eval_locations)]
            evaluation.append(
                ClipPlan(
                    str(i),
                    str(scene),
                    city,
                    f"{city}-{location_ids[location_key]}",
                    location_key,
                    n_clips + i,
                    "eval",
                )
            )
    return dev, evaluation


def _cities(rng, pool, count):
    """``count`` cities, all different while the pool lasts."""
    order = list(rng.permutation(pool))
    return [str(order[i % len(order)]) for i in range(count)]


def _meta_row(plan):
    return (f"audio/{plan.clip_id}.wav", f"video/{plan.clip_id}.mp4", plan.scene, plan.location)


def _write_table(path, header, rows, *, within):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    outputs.write_text(path, "\n".join(lines) + "\n", within=within)


def _write_development_lists(root, plans, *, within):
    """meta.csv and evaluation_setup/fold1_{train,evaluate,test}.csv, sorted by file name."""
    plans = sorted(plans, key=lambda p: p.clip_id)
    _write_table(root / "meta.csv", META_HEADER, [_meta_row(p) for p in plans], within=within)
    for fold in ("train", "evaluate"):
        rows = [_meta_row(p)[:3] for p in plans if p.fold == fold]
        _write_table(
            root / "evaluation_setup" / f"fold1_{fold}.csv", META_HEADER[:3], rows, within=within
        )
    rows = [_meta_row(p)[:2] for p in plans if p.fold == "evaluate"]
    _write_table(
        root / "evaluation_setup" / "fold1_test.csv", META_HEADER[:2], rows, within=within
    )


def _render_all(tasks, *, seed, size, fps, workers):
    for folder in {root for _, root, _ in tasks}:
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        (folder / "video").mkdir(parents=True, exist_ok=True)
    workers = min((os.cpu_count() or 1) if workers is None else workers, len(tasks))
    arguments = [
        (plan, str(root), clip_seconds, seed, size, fps) for plan, root, clip_seconds in tasks
    ]
    if workers <= 1:
        done = map(render_clip, *zip(*arguments))
        _log_progress(done, len(arguments))
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        _log_progress(pool.map(render_clip, *zip(*arguments)), len(arguments))


def _log_progress(results, total):
    step = max(total // 10, 1)
    for count, _ in enumerate(results, start=1):
        if count % step == 0 or count == total:
            log.info("rendered %d/%d clips", count, total)


def render_clip(plan, root, seconds, seed, size, fps):
    """Render and write ``audio/<clip_id>.wav`` and ``video/<clip_id>.mp4`` of one plan."""
    import soundfile

    from featurestore.synth.audio import location_audio, render_audio
    from featurestore.synth.video import encode_video, location_video, render_video

    root = Path(root)
    place_audio = location_audio(np.random.default_rng([seed, _AUDIO_PLACE, plan.location_key]))
    place_video = location_video(np.random.default_rng([seed, _VIDEO_PLACE, plan.location_key]))
    audio = render_audio(
        plan.scene,
        place_audio,
        np.random.default_rng([seed, _AUDIO_CLIP, plan.clip_key]),
        seconds=seconds,
        sample_rate=SAMPLE_RATE,
    )
    with outputs.create_new(root / "audio" / f"{plan.clip_id}.wav", within=root) as handle:
        soundfile.write(handle, audio, SAMPLE_RATE, subtype="PCM_24", format="WAV")
    frames = render_video(
        plan.scene,
        place_video,
        np.random.default_rng([seed, _VIDEO_CLIP, plan.clip_key]),
        seconds=seconds,
        size=size,
        fps=fps,
    )
    with outputs.create_new(root / "video" / f"{plan.clip_id}.mp4", within=root) as handle:
        encode_video(handle, frames, fps=fps)
    return plan.clip_id
