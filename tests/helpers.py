"""Helpers shared by the tests (pytest does not collect this module; fixtures live in conftest).

- where the workplace's reference data lives (:func:`shared_path`);
- small media files made by the tests themselves (WAV with soundfile, H.264 mp4 with PyAV):
  video frames carry their own index (the left half of frame i is grey level 16 * (i % 16), the
  right half 16 * (i // 16)), so :func:`frame_index` recovers i after lossy coding (256 frames max);
- clips and frames to write into feature stores, and store comparisons;
- small structured audio-visual feature matrices for the classifier tests;
- a Keras weight file re-written under another layer numbering.
"""

import fractions
import os
import pathlib
import re
import subprocess

import h5py
import numpy as np

from classifiers.synthetic import make_av_features
from featurestore.datasets import Clip
from featurestore.store import FeatureStore

ROOT = pathlib.Path(__file__).resolve().parents[1]


# -- reference data ------------------------------------------------------------------------


def _origin_root():
    """The repository this checkout was cloned from (a CI clone's ``../shared`` may be absent)."""
    try:
        url = subprocess.run(
            ["git", "-C", str(ROOT), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return None
    return pathlib.Path(url) if url and "://" not in url and pathlib.Path(url).is_dir() else None


def shared_path(name, *, env=None):
    """``../shared/<name>`` beside the repository (or beside the one it was cloned from).

    ``env`` names an environment variable that overrides the location.
    """
    if env and os.environ.get(env):
        return pathlib.Path(os.environ[env])
    candidates = [ROOT.parent / "shared" / name]
    origin = _origin_root()
    if origin is not None:
        candidates.append(origin.parent / "shared" / name)
    return next((path for path in candidates if path.exists()), candidates[0])


#: The official openl3 0.4.2 outputs and weights (``$AVSCENE_OPENL3_REFERENCE`` overrides).
REFERENCE_DIR = shared_path("openl3-reference", env="AVSCENE_OPENL3_REFERENCE")


#: Python source that makes every later ``import torch`` fail (run it first in a subprocess).
BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch blocked for this test")
sys.meta_path.insert(0, BlockTorch())
"""


# -- media files ---------------------------------------------------------------------------


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
    frame[:, width // 2 :] = 16 * (i // 16)
    return frame


def frame_index(rgb):
    """Recover the index of an :func:`indexed_frame` after lossy coding."""
    height, width = rgb.shape[:2]
    left = rgb[2:-2, 2 : width // 2 - 2].mean()
    right = rgb[2:-2, width // 2 + 2 : -2].mean()
    return int(round(left / 16)) + 16 * int(round(right / 16))


def write_mp4(
    path,
    *,
    width=64,
    height=48,
    rate=25,
    n_frames=25,
    start=0.0,
    times=None,
    audio=None,
    video=True,
    bframes=0,
    pix_fmt="yuv420p",
    faststart=False,
):
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
            chunk = np.ascontiguousarray(planar[:, offset : offset + 1024])
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
    data = pathlib.Path(path).read_bytes()
    target = out or path
    with open(target, "wb") as handle:
        handle.write(data[: int(len(data) * fraction)])
    return target


# -- feature stores ------------------------------------------------------------------------

SCENES = ("airport", "bus", "park")
CITIES = ("lisbon", "lyon", "milan")
#: 10 s development clips, 1 s evaluation clips, a 0.75 s clip and a 480,001-sample clip.
DURATIONS = (10.0, 1.0, 0.75, 480_001 / 48_000)


def make_clips(n_clips, *, seed=0, durations=DURATIONS):
    """Clips cycling through durations, with random scene/city/location/folds."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        city = CITIES[rng.integers(len(CITIES))]
        folds = [("train",), ("evaluate", "test"), ("evaluate",), ("eval",)][rng.integers(4)]
        clips.append(
            Clip(
                clip_id=f"clip-{seed}-{i:04d}",
                audio=f"audio/{i}.wav",
                video=None if i % 5 == 0 else f"video/{i}.mp4",
                scene=SCENES[rng.integers(len(SCENES))],
                city=city,
                location=f"{city}-{rng.integers(3)}",
                folds=folds,
                duration=float(durations[i % len(durations)]),
            )
        )
    return clips


def audio_like(clip, *, dim, seed, hop=0.1):
    """OpenL3-like frames: t_j = j * hop while the 1 s window fits (96 for 10 s, 6 for 1 s);
    the 480,001-sample clip gets 97 frames."""
    n_frames = max(1, 1 + int(np.floor((clip.duration - 0.5) / hop + 1e-9)))
    if clip.duration > 10:
        n_frames = 97
    return _frames(clip, n_frames, np.arange(n_frames) * hop, dim=dim, seed=seed)


def video_like(clip, *, dim, seed, fps=5.0):
    """Frames sampled at the middle of each 1/fps interval, t_j = (j + 0.5) / fps < duration."""
    times = (np.arange(int(np.ceil(clip.duration * fps)) + 1) + 0.5) / fps
    times = times[times < clip.duration]
    return _frames(clip, times.size, times, dim=dim, seed=seed)


def _frames(clip, n_frames, times, *, dim, seed):
    rng = np.random.default_rng([seed, int(clip.clip_id.rsplit("-", 1)[1])])
    values = (rng.standard_normal((n_frames, dim)) * 1.5 + 3).astype(np.float32)
    return values, np.asarray(times, dtype=np.float64)


def fill_store(store, name, clips, make, *, order=None, commit_seconds=0.0, **kwargs):
    """Write every pending clip of ``clips``, block by block; return {clip_id: (values, times)}."""
    written = {}
    by_id = {clip.clip_id: clip for clip in clips}
    for block in store.blocks():
        with store.block_writer(name, block, commit_seconds=commit_seconds) as writer:
            pending = store.pending(name, block=block)
            for clip_id in order(pending) if order else pending:
                if clip_id not in by_id:  # clips not given are left pending
                    continue
                values, times = make(by_id[clip_id], **kwargs)
                writer.write(clip_id, values, times)
                written[clip_id] = (values, times)
    return written


def new_store(
    where,
    clips,
    *,
    features=(("audio", 8, 10.0),),
    block_clips=4,
    chunk_mib=0.0005,
    storage_dtype="float32",
    compression="zstd",
):
    """A store with ``clips`` and empty features (small chunks so clips straddle chunks)."""
    store = FeatureStore.open(where, mode="w", block_clips=block_clips)
    store.add_clips(clips)
    for name, dim, rate in features:
        store.create_feature(
            name,
            dim=dim,
            frame_rate=rate,
            params={"hop": 1 / rate},
            chunk_mib=chunk_mib,
            storage_dtype=storage_dtype,
            compression=compression,
        )
    return store


def all_arrays(store):
    """{path: ndarray} of every array in the store's zarr group."""
    import zarr

    found = {}

    def walk(group, prefix):
        for name, member in group.members():
            if isinstance(member, zarr.Group):
                walk(member, prefix + name + "/")
            else:
                found[prefix + name] = np.asarray(member[...])

    walk(store._group, "")
    return found


def assert_same_arrays(a, b):
    """Both dicts of arrays hold the same names and equal values (NaN equal to NaN)."""
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name], b[name]
        assert x.shape == y.shape, name
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        elif x.dtype.kind in "TUO":
            assert x.tolist() == y.tolist(), name
        else:
            assert np.array_equal(x, y), name


# -- classifier data -----------------------------------------------------------------------


def small_av(*, n_clips=60, segments=5, dim=8, n_classes=4, locations_per_class=5, seed=0):
    """Return (X, y, groups, data) with audio and video side by side in X (dim + dim columns)."""
    data = make_av_features(
        n_clips=n_clips,
        segments_per_clip=segments,
        dim_audio=dim,
        dim_video=dim,
        n_classes=n_classes,
        locations_per_class=locations_per_class,
        random_state=seed,
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    return X, data["y"], data["location"], data


# -- OpenL3 weight files -------------------------------------------------------------------


def _strings(values, text):
    if text == "bytes":
        width = max([len(v) for v in values] + [1])
        return np.array([v.encode() for v in values], dtype=f"S{width}")
    return np.array(values, dtype=h5py.string_dtype())


def renumbered_copy(src, dst, *, first_suffix, text="bytes", top_level_group=False, seed=0):
    """Copy a Keras weights file under other layer numbering, written with h5py only.

    ``first_suffix=0``: TF2 style (``conv2d``, ``conv2d_1``, ...); ``8``: a continuing counter
    (``conv2d_8`` ... ``conv2d_15``, so ``conv2d_10`` sorts before ``conv2d_8``). Groups are
    created in a shuffled order, so the file's own order cannot help a reader.
    """

    def rename(name):
        match = re.fullmatch(r"(.*)_(\d+)", name)
        if not match:
            return name
        number = int(match.group(2)) - 1 + first_suffix
        return match.group(1) if number == 0 else f"{match.group(1)}_{number}"

    with h5py.File(src, "r") as source, h5py.File(dst, "w") as target:
        names = [n.decode() if isinstance(n, bytes) else n for n in source.attrs["layer_names"]]
        target.attrs["layer_names"] = _strings([rename(n) for n in names], text)
        for key in ("backend", "keras_version"):
            value = source.attrs[key]
            value = value.decode() if isinstance(value, bytes) else str(value)
            target.attrs[key] = np.bytes_(value) if text == "bytes" else value
        for index in np.random.default_rng(seed).permutation(len(names)):
            old, new = names[index], rename(names[index])
            group = target.create_group(new)
            weight_names = [w.decode() for w in source[old].attrs["weight_names"]]
            if not weight_names:
                group.attrs["weight_names"] = np.zeros((0,), dtype=np.float64)
                continue
            renamed = [f"{new}/{w.split('/', 1)[1]}" for w in weight_names]
            group.attrs["weight_names"] = _strings(renamed, text)
            for old_weight, new_weight in zip(weight_names, renamed):
                group.create_dataset(new_weight, data=source[old][old_weight][()])
        if top_level_group:
            target.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(
                (0,), dtype=np.float64
            )
    return pathlib.Path(dst)
