"""Media probing and decoding: audio with soundfile (PyAV for other containers), video with PyAV.

Every failure raises :class:`~featurestore.errors.MediaError` with a one-line message that names
the file (missing, empty, unreadable or truncated file, no audio/video stream, zero frames,
NaN/inf samples, media shorter than needed). What can be handled correctly is handled: any
sample rate and channel count (resampling and mixdown are the consumer's job), odd lengths
(480,001 samples), one-second clips, odd frame sizes, variable frame rates, non-zero start times.

The clock (shared by every feature of a store): time 0 of a file is the first presentation time of its
stream (the stream's ``start_time``), so a video whose first frame has pts 0.2 s starts at 0.
Video frames are sampled at ``t_j = (j + 0.5) / fps`` for ``t_j < duration``; sample j takes the
frame on screen at ``t_j``: the last frame with presentation time ``<= t_j`` (the first frame for
times before it, the last frame for times up to ``hold`` seconds past the end of the video).
:func:`iter_spread_frames` picks frames by position instead (the DCASE 2021 baseline's way).
"""

import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from featurestore.errors import MediaError

#: File suffixes read with soundfile; anything else (mp4, m4a, ...) is read with PyAV.
SOUNDFILE_SUFFIXES = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
    }
)

#: Default seconds by which video sample times may run past the end of the last frame.
HOLD_SECONDS = 0.25


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe_audio` reads from an audio file's header."""

    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self):
        """Length in seconds (``frames / sample_rate``)."""
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a video file's headers (nothing assumed).

    ``frame_rate`` is the stream's average rate (frames per second, float), ``start_time`` the
    first presentation time in seconds (the origin of the clip clock), ``duration`` the stream's
    length in seconds from that origin, ``frames`` the frame count the container declares (0 when
    it declares none).
    """

    path: str
    width: int
    height: int
    frame_rate: float
    start_time: float
    duration: float
    frames: int
    codec: str


def _check_file(path):
    """Raise MediaError when ``path`` is missing, not a file or empty."""
    try:
        size = os.path.getsize(path)
    except OSError:
        raise MediaError(f"{path}: file not found") from None
    if not os.path.isfile(path):
        raise MediaError(f"{path}: not a regular file")
    if size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    return size


def _one_line(error):
    """Collapse an exception message onto one line (FFmpeg errors: their reason only)."""
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split()) or type(error).__name__


def _uses_soundfile(path):
    return os.path.splitext(str(path))[1].lower() in SOUNDFILE_SUFFIXES


def _check_riff_complete(path, size):
    """Raise MediaError when a RIFF/WAVE file's data chunk is cut short.

    libsndfile silently reads what is there, so a truncated WAV would pass as a shorter clip.
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # RF64, W64 or not RIFF: nothing to check here (soundfile decides)
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                available = size - offset - 8
                if chunk_size not in (0, 0xFFFFFFFF) and available < chunk_size:
                    raise MediaError(
                        f"{path}: truncated WAV: data chunk declares {chunk_size} "
                        f"bytes, file holds {available}"
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def probe_audio(path):
    """Read an audio file's header: sample rate, channels, frames.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    AudioInfo
    """
    path = str(path)
    size = _check_file(path)
    if not _uses_soundfile(path):
        return _probe_audio_av(path)
    import soundfile

    _check_riff_complete(path, size)
    try:
        info = soundfile.info(path)
    except Exception as error:  # LibsndfileError, RuntimeError, TypeError on odd headers
        raise MediaError(f"{path}: unreadable audio: {_one_line(error)}") from None
    if info.frames <= 0:
        raise MediaError(f"{path}: audio has zero samples")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def read_audio(path, *, min_duration=0.0):
    """Decode an audio file to float32 samples, channels last.

    Parameters
    ----------
    path : str or path-like
    min_duration : float
        Seconds the audio must last at least (MediaError otherwise).

    Returns
    -------
    samples : ndarray, shape (n_samples, n_channels), float32
        Full-scale values in [-1, 1]; mono files give one column.
    sample_rate : int
    """
    path = str(path)
    info = probe_audio(path)
    if _uses_soundfile(path):
        import soundfile

        try:
            samples, _ = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception as error:
            raise MediaError(f"{path}: unreadable audio: {_one_line(error)}") from None
    else:
        samples = _read_audio_av(path)
    _check_audio(path, samples, info.sample_rate, min_duration)
    return samples, info.sample_rate


def _check_audio(path, samples, sample_rate, min_duration):
    if len(samples) == 0:
        raise MediaError(f"{path}: audio has zero samples")
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise MediaError(f"{path}: audio holds {bad} NaN/inf samples")
    needed = math.ceil(min_duration * sample_rate - 1e-9)
    if len(samples) < needed:
        raise MediaError(
            f"{path}: audio lasts {len(samples) / sample_rate:.3f} s, "
            f"shorter than the {min_duration:g} s needed"
        )


def _open_av(path):
    import av

    _check_file(path)
    try:
        return av.open(path, metadata_errors="ignore")
    except Exception as error:  # av.FFmpegError and friends
        raise MediaError(f"{path}: unreadable media: {_one_line(error)}") from None


def _probe_audio_av(path):
    with _open_av(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        seconds = _stream_seconds(stream, container)
        frames = int(round(seconds * stream.sample_rate)) if seconds else 0
        return AudioInfo(path, int(stream.sample_rate), int(stream.channels), frames)


def _read_audio_av(path):
    """Decode the first audio stream of a container to float32 (n, channels)."""
    import av

    with _open_av(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
        except av.FFmpegError as error:
            raise MediaError(f"{path}: audio decode error: {_one_line(error)}") from None
    if not chunks:
        raise MediaError(f"{path}: audio has zero samples")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T, dtype=np.float32)


def _stream_seconds(stream, container):
    """Length of a stream in seconds from its own start, from the headers (0.0 if unknown)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        start = float(container.start_time or 0) / 1e6
        origin = (
            float(stream.start_time * stream.time_base) if stream.start_time is not None else start
        )
        return max(float(container.duration) / 1e6 + start - origin, 0.0)
    return 0.0


def probe_video(path):
    """Read a video file's headers: size, frame rate, start time, duration, frame count.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    VideoInfo
    """
    path = str(path)
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = _stream_seconds(stream, container)
        frames = int(stream.frames or 0)
        if not duration and frames and rate:
            duration = frames / float(rate)
        if not duration:
            raise MediaError(f"{path}: video duration unknown (no duration in the headers)")
        return VideoInfo(
            path,
            int(stream.codec_context.width),
            int(stream.codec_context.height),
            float(rate) if rate else 0.0,
            _stream_origin(stream),
            duration,
            frames,
            stream.codec_context.name,
        )


def _video_stream(container, path):
    if not container.streams.video:
        raise MediaError(f"{path}: no video stream")
    stream = container.streams.video[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        raise MediaError(f"{path}: video stream has no frame size")
    return stream


def _stream_origin(stream):
    """The stream's first presentation time in seconds (0.0 when not declared)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def sample_times(duration, fps):
    """Video sample times ``t_j = (j + 0.5) / fps`` for every ``t_j < duration``.

    Parameters
    ----------
    duration : float
        Clip length in seconds.
    fps : float
        Requested frames per second.

    Returns
    -------
    times : ndarray, shape (n,), float64
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    n = max(math.ceil(duration * fps - 0.5), 0)
    times = (np.arange(n + 1, dtype=np.float64) + 0.5) / fps
    return times[times < duration]


def _frame_seconds(frame, stream, origin, index):
    """Presentation time of a decoded frame on the clip clock."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base) - origin
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise MediaError(f"{stream.container.name}: frames carry no timestamps and no frame rate")
    return index / float(rate)


def _frame_span(frame, stream):
    """How long a frame stays on screen, in seconds."""
    if getattr(frame, "duration", None) and frame.time_base is not None:
        return float(frame.duration * frame.time_base)
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0


def iter_video(path, *, fps, duration=None, hold=HOLD_SECONDS, threads=0):
    """Decode a video and yield the frames shown at the sample times, one at a time.

    Only the previous decoded frame and the current one are held in memory; a frame is
    converted to RGB only when it is picked (once, however many sample times show it).

    Parameters
    ----------
    path : str or path-like
    fps : float
        Requested sample rate in frames per second.
    duration : float, optional
        Clip length in seconds (e.g. the audio's, so both modalities share one clock);
        defaults to the video's own duration.
    hold : float
        Seconds past the end of the last frame for which that frame is still used; sample
        times later than that raise MediaError (video shorter than needed).
    threads : int
        Decoder threads (0: FFmpeg picks); threading type is "AUTO" (frame + slice).

    Yields
    ------
    time : float
        Sample time in seconds from the clip start.
    rgb : ndarray, shape (height, width, 3), uint8
    """
    import av

    path = str(path)
    container = _open_av(path)
    with container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        origin = _stream_origin(stream)
        if duration is None:
            duration = _stream_seconds(stream, container) or probe_video(path).duration
        times = sample_times(duration, fps)
        j, previous, rgb, end, index = 0, None, None, 0.0, 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                start = _frame_seconds(frame, stream, origin, index)
                while j < len(times) and times[j] < start:
                    if rgb is None:  # picked for the first time (before the first frame: this one)
                        rgb = (frame if previous is None else previous).to_ndarray(format="rgb24")
                    yield times[j], rgb
                    j += 1
                previous, rgb = frame, None
                end = start + _frame_span(frame, stream)
                if j == len(times):
                    break
        except av.FFmpegError as error:
            raise MediaError(
                f"{path}: video decode error after {j} sampled frames: {_one_line(error)}"
            ) from None
        if previous is None:
            raise MediaError(f"{path}: video has zero decodable frames")
        if j < len(times):
            last_needed = times[-1]
            if last_needed >= end + hold:
                raise MediaError(
                    f"{path}: video lasts {end:.3f} s, shorter than the {duration:.3f} s needed"
                )
            if rgb is None:
                rgb = previous.to_ndarray(format="rgb24")
            for time in times[j:]:
                yield time, rgb


def iter_spread_frames(path, n_picks, *, threads=0):
    """Decode every frame of a video and yield ``n_picks`` of them spread evenly over it.

    Pick k is frame ``np.linspace(0, n_frames - 1, n_picks).astype(int)[k]`` of the video's
    ``n_frames`` frames in presentation order, whatever their timestamps (the DCASE 2021
    baseline's choice of one frame per audio window); a frame picked twice is yielded twice. The
    frames are first counted from the stream's packets (no decoding), then decoded once, only the
    picked ones converted to RGB; a video that decodes to another number of frames raises
    MediaError rather than give frames picked for the wrong count.

    Parameters
    ----------
    path : str or path-like
    n_picks : int, at least 1
    threads : int
        Decoder threads (0: FFmpeg picks).

    Yields
    ------
    index : int
        The picked frame's position among all frames.
    rgb : ndarray, shape (height, width, 3), uint8
    """
    import av

    path = str(path)
    if int(n_picks) < 1:
        raise ValueError(f"n_picks must be at least 1, got {n_picks!r}")
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        try:
            n_frames = sum(
                1 for packet in container.demux(stream) if packet.size and not packet.is_discard
            )
        except av.FFmpegError as error:
            raise MediaError(f"{path}: unreadable video packets: {_one_line(error)}") from None
    if n_frames == 0:
        raise MediaError(f"{path}: video has zero frames")
    picks = np.linspace(0, n_frames - 1, int(n_picks)).astype(int)
    k = decoded = 0
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if k < len(picks) and picks[k] == index:
                    rgb = frame.to_ndarray(format="rgb24")
                    while k < len(picks) and picks[k] == index:
                        yield index, rgb
                        k += 1
        except av.FFmpegError as error:
            raise MediaError(
                f"{path}: video decode error after {decoded} of {n_frames} frames: "
                f"{_one_line(error)}"
            ) from None
    if decoded != n_frames:
        raise MediaError(
            f"{path}: {decoded} video frames decoded but the stream holds "
            f"{n_frames} packets; frames cannot be picked by position"
        )


def read_video(path, *, fps, duration=None, hold=HOLD_SECONDS, threads=0, transform=None):
    """Decode the frames shown at the sample times ``(j + 0.5) / fps`` of a video.

    Parameters
    ----------
    path : str or path-like
    fps : float
        Requested frames per second.
    duration : float, optional
        Clip length in seconds; defaults to the video's own duration.
    hold, threads
        As in :func:`iter_video`.
    transform : callable, optional
        Applied to each picked (H, W, 3) uint8 frame as it is decoded (e.g. resize and crop),
        so that full-size frames are never held together; its outputs are stacked.

    Returns
    -------
    frames : ndarray, shape (n, height, width, 3), uint8 (or the stacked transform outputs)
    timestamps : ndarray, shape (n,), float64
    """
    times, frames = [], None
    for k, (time, rgb) in enumerate(
        iter_video(path, fps=fps, duration=duration, hold=hold, threads=threads)
    ):
        item = transform(rgb) if transform is not None else rgb
        if frames is None:
            n = len(sample_times(duration, fps)) if duration is not None else None
            frames = _Stack(item, n)
        frames.put(k, item)
        times.append(time)
    if frames is None:
        raise MediaError(f"{path}: no video frames at {fps:g} fps within the clip")
    return frames.array(len(times)), np.asarray(times, dtype=np.float64)


class _Stack:
    """Preallocated output rows (grows when the final count is not known up front)."""

    def __init__(self, first, n):
        self._rows = np.empty(((n or 16),) + first.shape, first.dtype)

    def put(self, k, item):
        if k >= len(self._rows):
            grown = np.empty((2 * len(self._rows),) + self._rows.shape[1:], self._rows.dtype)
            grown[: len(self._rows)] = self._rows
            self._rows = grown
        self._rows[k] = item

    def array(self, n):
        return self._rows[:n]
