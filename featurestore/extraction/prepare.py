"""Per-clip decoding and preprocessing for the extraction job (the part worker processes run).

:func:`prepare_clip` turns one :class:`~featurestore.datasets.clips.Clip` into network-ready inputs for
each requested feature, plus a one-line reason for every feature it cannot serve. It never
raises for bad media: a :class:`~featurestore.errors.MediaError` becomes the reason of the
features that needed that file. Nothing here imports torch.

Inputs are kept small for shipping between processes: OpenL3 audio windows travel as one
padded mono signal (the overlapping windows are a strided view rebuilt by the receiver, not ten
copies of the audio); video frames are picked at ``(j + 0.5) / fps`` and preprocessed one at a
time while decoding (only OpenL3's crop-only path, frames with a short side of 224..256 pixels,
keeps the small raw frames of the clip, because openl3 divides that batch by its maximum).

Every input is a :class:`FeatureInput`: ``items`` (sliceable along axis 0; the model consumes
batches of items from many clips), ``item_rows`` (rows each item yields) and the ``timestamps``
of those rows on the clip clock (seconds from the clip's first presentation time, see
:mod:`featurestore.media.decode`).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featurestore.errors import MediaError
from featurestore.frontends import logmel
from featurestore.media import decode as media
from featurestore.openl3 import framing, image

AUDIO, VIDEO = "audio", "video"

#: Feature name -> the media it reads.
MODALITY = {"openl3_audio": AUDIO, "openl3_video": VIDEO, "logmel": AUDIO}
FEATURES = tuple(MODALITY)


@dataclass(frozen=True)
class Plan:
    """What to extract and how (everything a worker needs, picklable).

    Attributes
    ----------
    features : tuple of str
        Subset of :data:`FEATURES`.
    hop : float
        OpenL3 audio hop in seconds.
    center : bool
        OpenL3 audio centring (timestamps = window centres).
    fps : float
        Video sample rate in frames per second.
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
        per OpenL3 audio window, :func:`openl3_video_window_input`).
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


class AudioWindows:
    """OpenL3 windows of one clip, shipped as the padded signal; ``[a:b]`` gives (b-a, 48000).

    Pickling sends ``signal`` only (about one copy of the clip's audio), not the overlapping
    windows (ten copies at hop 0.1 s).
    """

    def __init__(self, windows):
        n, width = windows.shape
        self.hop = int(windows.strides[0] // windows.itemsize) if n > 1 else width
        self.width, self.n = width, n
        if n > 1 and self.hop <= width and windows.strides[1] == windows.itemsize:
            self.signal = np.concatenate([windows[:, :self.hop].ravel(), windows[-1, self.hop:]])
        else:
            self.signal, self.hop = np.ascontiguousarray(windows).ravel(), width

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        view = np.lib.stride_tricks.as_strided(
            self.signal, shape=(self.n, self.width),
            strides=(self.hop * self.signal.itemsize, self.signal.itemsize), writeable=False)
        return view[index]


@dataclass
class FeatureInput:
    """Network input of one clip for one feature (see the module docstring)."""

    items: object
    item_rows: np.ndarray
    timestamps: np.ndarray

    @property
    def n_rows(self):
        return len(self.timestamps)


@dataclass
class PreparedClip:
    """What a worker sends back for one clip."""

    clip_id: str
    inputs: dict = field(default_factory=dict)      # feature -> FeatureInput
    failures: dict = field(default_factory=dict)    # feature -> one-line reason
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
        raise MediaError(f"{path}: {info.channels} audio channels, expected at most "
                         f"{plan.max_channels}")
    if info.sample_rate < plan.min_sample_rate:
        raise MediaError(f"{path}: sample rate {info.sample_rate} Hz is below the "
                         f"{plan.min_sample_rate} Hz minimum")
    samples, rate = media.read_audio(path, min_duration=plan.min_duration)
    return framing.mono_48k(samples, rate).astype(np.float32, copy=False)


def openl3_audio_input(mono, plan):
    windows, stamps = framing.frame_audio(mono, framing.SAMPLE_RATE, hop_size=plan.hop,
                                          center=plan.center)
    return FeatureInput(AudioWindows(windows), np.ones(len(stamps), np.int64), stamps)


def logmel_input(mono, plan):
    params = plan.logmel
    if params["sample_rate"] != framing.SAMPLE_RATE:
        from featurestore.media import resample

        mono = resample(mono, framing.SAMPLE_RATE, params["sample_rate"])
    stamps = logmel.frame_timestamps(len(mono), params)
    return FeatureInput([mono], np.array([len(stamps)], np.int64), stamps)


def openl3_video_input(path, duration, plan, *, frames=None):
    """Frames at (j + 0.5) / fps (or the given ``(time, rgb)`` pairs), preprocessed as openl3
    0.4.2 does for one clip's batch."""
    rows, raw, stamps = [], [], []
    if frames is None:
        frames = media.iter_video(path, fps=plan.fps, duration=duration, hold=plan.hold,
                                  threads=plan.decode_threads)
    for stamp, rgb in frames:
        height, width = rgb.shape[:2]
        if min(height, width) < image.SIZE:
            raise MediaError(f"{path}: video is {width}x{height}, OpenL3 needs at least "
                             f"224 pixels on the short side")
        stamps.append(stamp)
        if _crop_only(height, width, plan):
            raw.append(rgb)   # small frames; normalised together below, as openl3 does
        else:
            rows.append(image.preprocess_images(rgb, scaling=plan.image_scaling)[0])
    if not stamps:
        raise MediaError(f"{path}: no video frame at {plan.fps:g} fps within {duration:.3f} s")
    frames = (image.preprocess_images(np.stack(raw), scaling=plan.image_scaling) if raw
              else np.stack(rows))
    return FeatureInput(frames, np.ones(len(stamps), np.int64), np.asarray(stamps, np.float64))


def openl3_video_window_input(path, duration, plan):
    """One frame per OpenL3 audio window, as the DCASE 2021 baseline picks them.

    The clip's audio windows (hop ``plan.hop``, ``plan.center``) for ``duration`` seconds at
    48 kHz are counted; of all the video's decoded frames, frame ``np.linspace(0, n_frames - 1,
    n_windows).astype(int)[j]`` goes with window j and carries its timestamp ``j * hop``, so the
    video rows line up one to one with the audio rows.
    """
    n_samples = int(np.floor(duration * framing.SAMPLE_RATE + 1e-6))
    n_windows = framing.count_windows(n_samples, framing.SAMPLE_RATE, hop_size=plan.hop,
                                      center=plan.center)
    stamps = np.arange(n_windows) * plan.hop
    picked = media.iter_spread_frames(path, n_windows, threads=plan.decode_threads)
    return openl3_video_input(path, duration, plan,
                              frames=zip(stamps, (rgb for _, rgb in picked)))


def _crop_only(height, width, plan):
    """Whether openl3 would crop without resizing and then divide the batch by its maximum."""
    exact = (height, width) == (image.SIZE, image.SIZE)
    return not exact and min(height, width) <= image.SHORT_SIDE and plan.image_scaling == "openl3"


def prepare_clip(task):
    """Decode one clip and build the inputs of each requested feature (worker entry point).

    Parameters
    ----------
    task : tuple (clip, root, plan, features)
        ``clip.duration`` must be set (the clip clock's length, from :func:`probe_duration`);
        ``features`` is the subset of ``plan.features`` still pending for this clip.

    Returns
    -------
    PreparedClip
        One :class:`FeatureInput` or one reason per requested feature.
    """
    clip, root, plan, features = task
    started = time.perf_counter()
    result = PreparedClip(clip.clip_id)
    root = Path(root)
    audio_features = [f for f in features if MODALITY[f] == AUDIO]
    if audio_features:
        try:
            if clip.audio is None:
                raise MediaError(f"clip {clip.clip_id}: no audio file")
            mono = read_mono_48k(root / clip.audio, plan)
            for name in audio_features:
                builder = openl3_audio_input if name == "openl3_audio" else logmel_input
                result.inputs[name] = builder(mono, plan)
        except MediaError as error:
            result.failures.update(dict.fromkeys(audio_features, str(error)))
    if VIDEO in (MODALITY[f] for f in features):
        try:
            if clip.video is None:
                raise MediaError(f"clip {clip.clip_id}: no video file")
            builder = (openl3_video_window_input if plan.video_frames == "per-audio-window"
                       else openl3_video_input)
            result.inputs["openl3_video"] = builder(root / clip.video, clip.duration, plan)
        except MediaError as error:
            result.failures["openl3_video"] = str(error)
    result.decode_seconds = time.perf_counter() - started
    return result


_CONTEXT = {}


def init_worker(root, plan):
    """Worker initializer: the dataset root and plan shared by every task of the job."""
    _CONTEXT.update(root=Path(root), plan=plan)


def prepare_task(task):
    """Worker entry point: ``(clip, features)`` with the context of :func:`init_worker`."""
    clip, features = task
    result = prepare_clip((clip, _CONTEXT["root"], _CONTEXT["plan"], features))
    prefix = str(_CONTEXT["root"]) + "/"
    result.failures = {name: reason.replace(prefix, "") for name, reason in result.failures.items()}
    return result
