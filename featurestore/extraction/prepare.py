"""Per-clip decoding for the extraction job (the part worker processes run), without torch.

:func:`prepare_clip` decodes one :class:`~featurestore.datasets.clips.Clip` once per modality
and hands the result to every requested extractor's ``prepare``
(:class:`~featurestore.extractors.Extractor`): the audio as one
:class:`~featurestore.extractors.AudioSignal` (mono float32 at 48 kHz, resampled per extractor
rate on demand), the video as one pass of sampled frames (:func:`sampled_frames`, fanned out to
several video extractors by :func:`fan_out`). It never raises for bad media: a
:class:`~featurestore.errors.MediaError` becomes the one-line reason of the features it affects.

Every input is a :class:`~featurestore.extractors.FeatureInput`: ``items`` (sliceable along
axis 0; the model consumes batches of items from many clips), ``item_rows`` (rows each item
yields) and the ``timestamps`` of those rows on the clip clock (seconds from the clip's first
presentation time, see :mod:`featurestore.media.decode`).
"""

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featurestore import limits
from featurestore.errors import MediaError
from featurestore.extractors import (
    AUDIO,
    PER_AUDIO_WINDOW,
    VIDEO,
    AudioSignal,
    FeatureInput,
    VideoFrames,
    VideoSampling,
    Windows,
)
from featurestore.frontends import logmel
from featurestore.media import decode as media
from featurestore.openl3 import framing

#: The features ``avscene extract`` computes by default (the DCASE 2021 baseline's inputs).
FEATURES = ("openl3_audio", "openl3_video", "logmel")
#: Bounds of the Plan's decoding settings that no command-line option sets.
PLAN_CHANNELS, PLAN_HOLD_SECONDS = limits.Bounds(1, 64, int), limits.Bounds(0.0, 10.0)
PLAN_DECODE_THREADS = limits.Bounds(0, 64, int)
AudioWindows = Windows.of  # the OpenL3 windows' shipping form (name kept for callers)
__all__ = [
    "FEATURES",
    "FeatureInput",
    "Plan",
    "PreparedClip",
    "fan_out",
    "prepare_clip",
    "probe_duration",
    "sampled_frames",
]


@dataclass(frozen=True)
class Plan:
    """What to extract and how (everything a worker needs, picklable).

    Attributes
    ----------
    features : tuple of str
        Feature names (:func:`featurestore.extractors.builtin`); default :data:`FEATURES`.
    hop : float
        Audio hop in seconds of the windowed audio embeddings (OpenL3, PANNs CNN14).
    center : bool
        Their centring (timestamps = window centres).
    fps : float
        Video sample rate in frames per second (every video feature).
    logmel : dict
        :func:`featurestore.frontends.logmel.logmel_params` output.
    image_scaling : str
        "openl3" (0.4.2's quirk, default) or "paper" (see :mod:`featurestore.openl3.image`).
    min_duration : float
        Audio shorter than this (seconds) is bad input. Default 0: any non-empty audio, as
        openl3 takes it (a clip shorter than one window is zero-padded to one window).
    min_sample_rate : int
        Audio sampled below this (Hz) is bad input (upsampling cannot restore the band).
    max_channels : int
        Audio with more channels is bad input (mean mixdown is meant for mono/stereo).
    hold : float
        Seconds the last video frame may be held past the end of the video.
    decode_threads : int
        FFmpeg decoder threads per worker (0: FFmpeg decides).
    video_frames : str
        "fps" (frames sampled at ``(j + 0.5) / fps``) or "per-audio-window" (one decoded frame
        per OpenL3 audio window, :func:`sampled_frames`), for every video feature.
    """

    features: tuple = FEATURES
    hop: float = 0.1
    center: bool = True
    fps: float = 10.0
    logmel: dict = field(default_factory=logmel.logmel_params)
    image_scaling: str = "openl3"
    min_duration: float = 0.0
    min_sample_rate: int = 16000
    max_channels: int = 2
    hold: float = media.HOLD_SECONDS
    decode_threads: int = 0
    video_frames: str = "fps"

    def __post_init__(self):
        """Refuse settings outside :mod:`featurestore.limits` (one-line ValueError), before
        anything is planned."""
        video_sampling(self)  # fps, hop, centring, video_frames
        logmel.check_params(self.logmel)
        limits.MIN_DURATION.check("min_duration (seconds)", self.min_duration)
        limits.SAMPLE_RATE.check("min_sample_rate (Hz)", self.min_sample_rate)
        for name, bounds in (
            ("max_channels", PLAN_CHANNELS),
            ("hold", PLAN_HOLD_SECONDS),
            ("decode_threads", PLAN_DECODE_THREADS),
        ):
            bounds.check(name, getattr(self, name))


@dataclass
class PreparedClip:
    """What a worker sends back for one clip."""

    clip_id: str
    inputs: dict = field(default_factory=dict)  # feature -> FeatureInput
    failures: dict = field(default_factory=dict)  # feature -> one-line reason
    decode_seconds: float = 0.0


def probe_duration(clip, root):
    """Duration of a clip in seconds: its audio's (exact), else its video's.

    Raises
    ------
    MediaError
        Neither file can be probed; the message names the clip and the file(s).
    """
    root = Path(root)
    reasons = []
    for path, probe in ((clip.audio, media.probe_audio), (clip.video, media.probe_video)):
        if path is None:
            continue
        try:
            return probe(root / path).duration
        except MediaError as error:
            reasons.append(str(error))
    if not reasons:
        raise MediaError(f"clip {clip.clip_id}: no audio or video file")
    raise MediaError(f"clip {clip.clip_id}: " + "; ".join(reasons))


def probe_task(task):
    """Worker entry for probing: ``(clip, root)`` -> duration (float) or reason (str)."""
    clip, root = task
    try:
        return probe_duration(clip, root)
    except MediaError as error:
        return str(error)


def read_mono_48k(path, plan):
    """Decode, check, mix down (mean) and resample to 48 kHz: shape (n,), float32."""
    info = media.probe_audio(path)
    if info.channels > plan.max_channels:
        raise MediaError(
            f"{path}: {info.channels} audio channels, expected at most {plan.max_channels}"
        )
    if info.sample_rate < plan.min_sample_rate:
        raise MediaError(
            f"{path}: sample rate {info.sample_rate} Hz is below the "
            f"{plan.min_sample_rate} Hz minimum"
        )
    samples, rate = media.read_audio(path, min_duration=plan.min_duration)
    return framing.mono_48k(samples, rate).astype(np.float32, copy=False)


def video_sampling(plan):
    """The :class:`~featurestore.extractors.VideoSampling` of a plan."""
    return VideoSampling(mode=plan.video_frames, fps=plan.fps, hop=plan.hop, center=plan.center)


def sampled_frames(path, duration, plan):
    """The clip's frames as every video extractor receives them (one decoding pass).

    ``fps``: the frame on screen at ``(j + 0.5) / fps`` for each time below ``duration``.
    ``per-audio-window``: the clip's OpenL3 audio windows (hop ``plan.hop``, ``plan.center``)
    for ``duration`` seconds at 48 kHz are counted; of all the video's decoded frames, frame
    ``np.linspace(0, n_frames - 1, n_windows).astype(int)[j]`` goes with window j and carries
    its timestamp ``j * hop``, so the video rows line up one to one with the audio rows.
    """
    sampling = video_sampling(plan)
    if plan.video_frames == PER_AUDIO_WINDOW:
        n_samples = int(np.floor(duration * framing.SAMPLE_RATE + 1e-6))
        n_windows = framing.count_windows(
            n_samples, framing.SAMPLE_RATE, hop_size=plan.hop, center=plan.center
        )
        stamps = np.arange(n_windows) * plan.hop
        picked = media.iter_spread_frames(path, n_windows, threads=plan.decode_threads)
        frames = zip(stamps, (rgb for _, rgb in picked))
    else:
        frames = media.iter_video(
            path, fps=plan.fps, duration=duration, hold=plan.hold, threads=plan.decode_threads
        )
    return VideoFrames(
        _at_least_one(frames, path, duration, sampling), path=path, sampling=sampling.describe()
    )


def _at_least_one(frames, path, duration, sampling):
    count = 0
    for item in frames:
        count += 1
        yield item
    if not count:
        raise MediaError(
            f"{path}: no video frame at {sampling.describe()} within {duration:.3f} s"
        )


def prepare_clip(clip, root, plan, extractors):
    """Decode one clip once per modality and build the input of each extractor.

    Parameters
    ----------
    clip : Clip
        ``clip.duration`` must be set (the clip clock's length, from :func:`probe_duration`).
    root : Path
        The dataset root.
    plan : Plan
        Decoding settings.
    extractors : list of Extractor
        The features still pending for this clip.

    Returns
    -------
    PreparedClip
        One :class:`FeatureInput` or one reason per extractor. Bad media never raises: a
        decoding failure is the reason of every extractor of that modality, an extractor's
        own refusal (e.g. frames too small for it) the reason of that extractor only.
    """
    started = time.perf_counter()
    result = PreparedClip(clip.clip_id)
    root = Path(root)
    for modality in (AUDIO, VIDEO):
        chosen = [e for e in extractors if e.modality == modality]
        if not chosen:
            continue
        try:
            path = getattr(clip, modality)
            if path is None:
                raise MediaError(f"clip {clip.clip_id}: no {modality} file")
            if modality == AUDIO:
                signal = AudioSignal(read_mono_48k(root / path, plan), path=root / path)
                outcomes = {e.name: _prepare_one(e, signal, clip) for e in chosen}
            else:
                frames = sampled_frames(root / path, clip.duration, plan)
                outcomes = fan_out(frames, chosen, clip)
        except MediaError as error:
            outcomes = dict.fromkeys((e.name for e in chosen), error)
        for name, outcome in outcomes.items():
            if isinstance(outcome, MediaError):
                result.failures[name] = str(outcome)
            else:
                result.inputs[name] = outcome
    result.decode_seconds = time.perf_counter() - started
    return result


def _prepare_one(extractor, media_input, clip):
    try:
        return extractor.prepare(media_input, clip)
    except MediaError as error:
        return error


class _End:
    """End of the frames (``error`` set when decoding failed)."""

    def __init__(self, error=None):
        self.error = error


def fan_out(frames, extractors, clip, *, queue_frames=2):
    """Run every video extractor's ``prepare`` on one decoding pass of ``frames``.

    One extractor consumes the frames directly. Several each run in a thread fed through a
    small queue, so that the frames are decoded once and only a few are held at a time. A
    decoding error reaches every extractor; an extractor that stops early or refuses the clip
    does not hold up the others.

    Returns
    -------
    dict name -> FeatureInput or MediaError
    """
    if len(extractors) == 1:
        return {extractors[0].name: _prepare_one(extractors[0], frames, clip)}
    queues = [queue.Queue(maxsize=queue_frames) for _ in extractors]
    done = [threading.Event() for _ in extractors]
    outcomes, bugs = {}, []

    def consume(extractor, feed, finished):
        def items():
            while True:
                item = feed.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item

        try:
            outcomes[extractor.name] = _prepare_one(
                extractor, VideoFrames(items(), path=frames.path, sampling=frames.sampling), clip
            )
        except BaseException as error:  # a bug: re-raised in the worker below
            bugs.append(error)
        finally:
            finished.set()

    threads = [
        threading.Thread(target=consume, args=args, daemon=True)
        for args in zip(extractors, queues, done)
    ]
    for thread in threads:
        thread.start()
    end = _End()
    try:
        for item in frames:
            if all(event.is_set() for event in done):
                break
            _offer(item, queues, done)
    except MediaError as error:
        end = _End(error)
    finally:
        _offer(end, queues, done)
        for thread in threads:
            thread.join()
    if bugs:
        raise bugs[0]
    return outcomes


def _offer(item, queues, done):
    """Put ``item`` on every queue whose consumer still reads."""
    for feed, finished in zip(queues, done):
        while not finished.is_set():
            try:
                feed.put(item, timeout=0.05)
                break
            except queue.Full:
                continue


_CONTEXT: dict = {}


def init_worker(root, plan, extractors):
    """Worker initializer: the dataset root, plan and extractors shared by every task."""
    _CONTEXT.update(root=Path(root), plan=plan, extractors={e.name: e for e in extractors})


def prepare_task(task):
    """Worker entry point: ``(clip, feature names)`` with the context of :func:`init_worker`."""
    clip, features = task
    chosen = [_CONTEXT["extractors"][name] for name in features]
    result = prepare_clip(clip, _CONTEXT["root"], _CONTEXT["plan"], chosen)
    prefix = str(_CONTEXT["root"]) + "/"
    result.failures = {
        name: reason.replace(prefix, "") for name, reason in result.failures.items()
    }
    return result


def plan_extractors(plan, *, weights=None, random_weights=None, bf16=False):
    """The built-in extractors of ``plan.features`` (:func:`featurestore.extractors.builtin`).

    ``weights`` is a path (the OpenL3 folder or file, as ``--weights DIR``) or a dict feature
    name -> path (key None: the OpenL3 folder). Runs in the main process (building a backbone's
    extractor may import torch); the workers receive the built extractors.
    """
    from featurestore.extractors import builtin

    if weights is not None and not isinstance(weights, dict):
        weights = {None: weights}
    return [
        builtin(
            name,
            weights=weights,
            random_weights=random_weights,
            bf16=bf16,
            hop=plan.hop,
            center=plan.center,
            sampling=video_sampling(plan),
            image_scaling=plan.image_scaling,
            logmel_params=plan.logmel,
        )
        for name in plan.features
    ]
