"""Shared helpers for the feature-store tests (no tests here): clips and frames to write."""

import numpy as np

from featurestore.datasets.clips import Clip
from featurestore.store.feature_store import FeatureStore

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
        clips.append(Clip(
            clip_id=f"clip-{seed}-{i:04d}", audio=f"audio/{i}.wav",
            video=None if i % 5 == 0 else f"video/{i}.mp4",
            scene=SCENES[rng.integers(len(SCENES))], city=city,
            location=f"{city}-{rng.integers(3)}", folds=folds,
            duration=float(durations[i % len(durations)]),
        ))
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
            for clip_id in (order(pending) if order else pending):
                if clip_id not in by_id:              # clips not given are left pending
                    continue
                values, times = make(by_id[clip_id], **kwargs)
                writer.write(clip_id, values, times)
                written[clip_id] = (values, times)
    return written


def new_store(where, clips, *, features=(("audio", 8, 10.0),), block_clips=4, chunk_mib=0.0005,
              storage_dtype="float32", compression="zstd"):
    """A store with ``clips`` and empty features (small chunks so clips straddle chunks)."""
    store = FeatureStore.open(where, mode="w", block_clips=block_clips)
    store.add_clips(clips)
    for name, dim, rate in features:
        store.create_feature(name, dim=dim, frame_rate=rate, params={"hop": 1 / rate},
                             chunk_mib=chunk_mib, storage_dtype=storage_dtype,
                             compression=compression)
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
