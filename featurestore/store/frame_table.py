"""The frame-level view of a store: every stored frame one row, features joined on (clip, time).

The DCASE 2021 Task 1B baseline trains on every OpenL3 frame and tests on picked frames
(:mod:`classifiers.protocols`); :func:`read_frame_table` gives it those rows. Several features
are joined on (clip, timestamp): every clip must hold the same number of frames at the same
timestamps in each feature (within :data:`TIME_TOLERANCE`), otherwise the store is refused with
one line naming the clip. Video sampled at ``(j + 0.5) / fps`` never lines up with the audio
windows; extracting it with ``--video-frames per-audio-window`` gives one frame per audio window
at the window's timestamp. Clips pending or failed for any feature contribute no rows.
"""

from dataclasses import dataclass, field

import numpy as np

from featurestore.errors import StoreFormatError
from featurestore.store.layout import n_segments

#: Seconds by which the timestamps of two features' frames may differ and still be joined.
TIME_TOLERANCE = 1e-6


@dataclass(repr=False)
class FrameTable:
    """Frames of one or more features, one row per (clip, timestamp), clips in store order.

    Attributes
    ----------
    features : dict of str -> ndarray, shape (n_rows, dim), float32
    clip_id, scene, city, location, folds : ndarray of str, shape (n_rows,)
    position : ndarray of int, shape (n_rows,)
        Clip position in the store's clip table.
    timestamp : ndarray of float64, shape (n_rows,)
        Seconds from the clip start (the first feature's values).
    frame : ndarray of int, shape (n_rows,)
        Index of the row within its clip, in time order (0 .. n_frames - 1).
    n_frames, n_segments : ndarray of int, shape (n_rows,)
        Frames of the row's clip, and its number of 1-s segments (the store's segment rule).
    names : tuple of str, the features in read order
    """

    features: dict
    clip_id: np.ndarray
    scene: np.ndarray
    city: np.ndarray
    location: np.ndarray
    folds: np.ndarray
    position: np.ndarray
    timestamp: np.ndarray
    frame: np.ndarray
    n_frames: np.ndarray
    n_segments: np.ndarray
    names: tuple = field(default=())

    def __len__(self):
        return len(self.clip_id)

    def __repr__(self):
        shapes = ", ".join(f"{name}{self.features[name].shape}" for name in self.names)
        return (
            f"<FrameTable {len(self)} frames of {len(np.unique(self.position))} clips: {shapes}>"
        )

    @property
    def y(self):
        """Scene labels, shape (n_rows,)."""
        return self.scene

    @property
    def groups(self):
        """Recording locations, shape (n_rows,)."""
        return self.location

    def subset(self, rows):
        """The table of ``rows`` (indices; whole clips, so ``frame`` and ``n_frames`` still hold)."""
        rows = np.asarray(rows, dtype=np.int64)
        columns = {
            name: getattr(self, name)[rows]
            for name in (
                "clip_id",
                "scene",
                "city",
                "location",
                "folds",
                "position",
                "timestamp",
                "frame",
                "n_frames",
                "n_segments",
            )
        }
        return FrameTable(
            features={name: values[rows] for name, values in self.features.items()},
            names=self.names,
            **columns,
        )

    def X(self, names=None):
        """Features side by side, shape (n_rows, sum of dims), in ``names`` order (default all)."""
        names = list(self.names if names is None else [names] if isinstance(names, str) else names)
        unknown = [name for name in names if name not in self.features]
        if unknown:
            raise StoreFormatError(
                f"frames have no feature {unknown[0]!r}; they have {list(self.names)}"
            )
        parts = [self.features[name] for name in names]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def read_frame_table(store, names, *, selection=None):
    """Every frame of the selected clips, with the features joined on (clip, timestamp).

    Parameters
    ----------
    store : featurestore.store.FeatureStore
    names : str or list of str
    selection : array of int, optional
        Clip positions (``store.select(...)``); default all clips.

    Returns
    -------
    FrameTable

    Raises
    ------
    StoreFormatError
        A clip's frames differ in number or timestamps between the features.
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise StoreFormatError("read_frame_table() needs at least one feature name")
    read = {name: store.read(name, selection=selection) for name in names}
    common = read[names[0]].positions
    for name in names[1:]:
        common = np.intersect1d(common, read[name].positions)
    values, stamps, counts = {}, {}, {}
    for name in names:
        frames = read[name]
        keep = np.repeat(np.isin(frames.positions, common), frames.counts)
        rows = _time_order(
            frames.timestamps[keep], np.repeat(frames.positions, frames.counts)[keep]
        )
        values[name] = frames.values[keep][rows]
        stamps[name] = frames.timestamps[keep][rows]
        counts[name] = frames.counts[np.isin(frames.positions, common)]
    _check_joined(store, names, common, counts, stamps)
    first = names[0]
    position = np.repeat(common, counts[first])
    starts = np.cumsum(counts[first]) - counts[first]
    columns = store.clips.columns
    return FrameTable(
        features=values,
        clip_id=columns["clip_id"][position],
        scene=columns["scene"][position],
        city=columns["city"][position],
        location=columns["location"][position],
        folds=columns["folds"][position],
        position=position,
        timestamp=stamps[first],
        frame=np.arange(len(position)) - np.repeat(starts, counts[first]),
        n_frames=np.repeat(counts[first], counts[first]),
        n_segments=n_segments(store.clips.duration[position]),
        names=tuple(names),
    )


def _time_order(timestamps, positions):
    """Row order sorting each clip's rows by time (clips stay in position order)."""
    return np.lexsort((np.arange(len(timestamps)), timestamps, positions))


def _check_joined(store, names, positions, counts, stamps):
    """Refuse (one line) features whose frames of a clip differ in number or timestamps."""
    first = names[0]
    for name in names[1:]:
        differs = np.flatnonzero(counts[name] != counts[first])
        if not differs.size:
            gap = np.abs(stamps[name] - stamps[first]) > TIME_TOLERANCE
            rows = np.flatnonzero(gap)
            if not rows.size:
                continue
            clip_of_row = np.repeat(np.arange(len(positions)), counts[first])
            differs = clip_of_row[rows[:1]]
        k = int(differs[0])
        clip_id = str(store.clips.clip_id[positions[k]])
        shown = {n: _first_times(stamps[n], counts[n], k) for n in (first, name)}
        raise StoreFormatError(
            f"{store.label}: clip {clip_id!r} has {counts[first][k]} {first} frames at "
            f"{shown[first]} but {counts[name][k]} {name} frames at {shown[name]}; frame-level "
            "rows join features on identical timestamps: extract the video with "
            "--video-frames per-audio-window (one frame per audio window)"
        )


def _first_times(stamps, counts, k, shown=3):
    start = int(np.sum(counts[:k]))
    times = stamps[start : start + min(int(counts[k]), shown)]
    return "[" + ", ".join(f"{t:.3f}" for t in times) + (", ...]" if counts[k] > shown else "]")
