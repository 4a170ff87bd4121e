"""Small media files made by the tests themselves (WAV with soundfile, H.264 mp4 with PyAV).

Video frames carry their own index: the left half of frame i is grey level 16 * (i % 16), the
right half 16 * (i // 16), so :func:`frame_index` recovers i after lossy coding (256 frames max).
"""

import fractions

import numpy as np


def noise(seconds, *, sr=48000, channels=2, seed=0, amplitude=0.5):
    """Uniform noise, shape (round(seconds * sr), channels), float64."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, (int(round(seconds * sr)), channels))


def write_wav(path, samples, sr=48000, subtype="PCM_24"):
    import soundfile

    soundfile.write(str(path), samples, sr, subtype=subtype)
    return path


def indexed_frame(i, width, height):
    """RGB frame i: left half 16 * (i % 16), right half 16 * (i // 16)."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:, : width // 2] = 16 * (i % 16)
    frame[:, width // 2:] = 16 * (i // 16)
    return frame


def frame_index(rgb):
    """Recover the index of an :func:`indexed_frame` after lossy coding."""
    height, width = rgb.shape[:2]
    left = rgb[2:-2, 2: width // 2 - 2].mean()
    right = rgb[2:-2, width // 2 + 2: -2].mean()
    return int(round(left / 16)) + 16 * int(round(right / 16))


def write_mp4(path, *, width=64, height=48, rate=25, n_frames=25, start=0.0, times=None,
              audio=None, video=True, bframes=0, pix_fmt="yuv420p", faststart=False):
    """Write an H.264 mp4 of indexed frames (and optionally an AAC track).

    Parameters
    ----------
    rate : int or Fraction
        Nominal frame rate.
    start : float
        Presentation time of the first frame in seconds (non-zero start time).
    times : sequence of float, optional
        Explicit presentation times (variable frame rate); overrides rate/start spacing.
    audio : (samples (n, channels) float, sr), optional
    video : bool
        False writes an audio-only mp4.
    faststart : bool
        Put the index (moov) first, so a cut file still opens and loses its last frames.

    Returns
    -------
    times : ndarray, shape (n_frames,)
        The presentation time of each frame in seconds, as written.
    """
    import av

    rate = fractions.Fraction(rate).limit_denominator(100000)
    time_base = fractions.Fraction(1, 90000)
    if times is None:
        times = start + np.arange(n_frames) / float(rate)
    times = np.asarray(times, dtype=np.float64)
    options = {"movflags": "+faststart"} if faststart else {}
    container = av.open(str(path), "w", options=options)
    streams = []
    if video:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", "bframes": str(bframes)}
        if bframes:
            stream.options = {"preset": "fast", "bframes": str(bframes)}
        streams.append(stream)
    if audio is not None:
        samples, sr = audio
        astream = container.add_stream("aac", rate=sr)
        astream.layout = "stereo" if samples.shape[1] == 2 else "mono"
    if video:
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 90000)), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if audio is not None:
        planar = np.ascontiguousarray(samples.T, dtype=np.float32)
        for offset in range(0, planar.shape[1], 1024):
            chunk = np.ascontiguousarray(planar[:, offset: offset + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=astream.layout.name)
            frame.sample_rate, frame.pts = sr, offset
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    container.close()
    return times


def truncate(path, fraction=0.5, *, out=None):
    """Copy (or cut in place) the first ``fraction`` of a file's bytes."""
    data = open(path, "rb").read()
    target = out or path
    with open(target, "wb") as handle:
        handle.write(data[: int(len(data) * fraction)])
    return target
