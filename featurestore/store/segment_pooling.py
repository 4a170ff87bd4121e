"""The per-second segment view: frames grouped by (clip, second) and pooled at read time.

Segment k of a clip holds the frames whose timestamp t satisfies ``floor(t + 1e-6) == k``; a
clip of duration D has ``floor(D + 1e-6)`` segments (at least 1) and frames past the last
segment are left out. All functions work on whole row batches with numpy reductions (no
per-clip Python loops).
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from featurestore.errors import StoreFormatError
from featurestore.store.layout import COMMITTED, POOLINGS, SEGMENT_EPS, n_segments

#: Rows of one feature decoded and pooled at a time.
BATCH_BYTES = 256 << 20


class SegmentTable:
    """What every segment table shares, in memory (:class:`Segments`) or lazy (Dask): its
    length, labels and groups, and the checked list of feature names to put side by side.
    Subclasses are dataclasses with ``features``, ``clip_id``, ``scene``, ``location``,
    ``pooling`` and ``names``."""

    def __len__(self):
        return len(self.clip_id)

    def __repr__(self):
        shapes = ", ".join(f"{name}{self.features[name].shape}" for name in self.names)
        return f"<{type(self).__name__} {len(self)} segments, pooling {self.pooling!r}: {shapes}>"

    def _feature_names(self, names):
        """``names`` (None: all, in read order; or one name) as a list of known features."""
        if names is None:
            names = self.names
        names = [names] if isinstance(names, str) else list(names)
        unknown = [name for name in names if name not in self.features]
        if unknown:
            raise StoreFormatError(
                f"segments have no feature {unknown[0]!r}; they have {list(self.names)}"
            )
        return names

    @property
    def y(self):
        """Scene labels, shape (n_segments,)."""
        return self.scene

    @property
    def groups(self):
        """Recording locations (for grouped cross-validation), shape (n_segments,)."""
        return self.location


@dataclass(repr=False)
class Segments(SegmentTable):
    """Pooled segments of one or more features, joined on (clip, second).

    Attributes
    ----------
    features : dict of str -> ndarray
        shape (n_segments, dim) for mean, max and center pooling; (n_segments, 2 * dim) for
        meanstd (means then standard deviations); (n_segments, max_frames, dim) for none, short
        segments padded by repeating their last frame.
    counts : dict of str -> ndarray, shape (n_segments,)
        Frames that went into each segment, per feature.
    clip_id, scene, city, location, folds : ndarray of str, shape (n_segments,)
    second : ndarray of int, shape (n_segments,)
        Segment index k within its clip (frames in [k, k + 1) seconds).
    position : ndarray of int, shape (n_segments,)
        Clip position in the store's clip table.
    pooling : str
    """

    features: dict
    counts: dict
    clip_id: np.ndarray
    second: np.ndarray
    scene: np.ndarray
    city: np.ndarray
    location: np.ndarray
    folds: np.ndarray
    position: np.ndarray
    pooling: str = "mean"
    names: tuple = field(default=())

    def X(self, names=None):
        """Features concatenated along the last axis.

        Parameters
        ----------
        names : list of str, optional
            Features to concatenate, in order (default: all, in the order they were read).

        Returns
        -------
        ndarray, shape (n_segments, sum of dims) (or (n_segments, max_frames, sum of dims) for
        pooling none, each feature padded to the longest by repeating its last frame).
        """
        parts = [self.features[name] for name in self._feature_names(names)]
        if self.pooling == "none":
            longest = max(part.shape[1] for part in parts)
            parts = [pad_to(part, longest) for part in parts]
        return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def _coordinates(self):
        """{name: (n_segments,) array} of what describes each segment."""
        return {
            "clip_id": self.clip_id,
            "second": self.second,
            "scene": self.scene,
            "city": self.city,
            "location": self.location,
            "folds": self.folds,
            "position": self.position,
        }

    def to_xarray(self):
        """The segments as an ``xarray.Dataset`` (xarray is an optional dependency).

        Returns
        -------
        xarray.Dataset
            One variable per feature, dims ``("segment", "dim")`` (``("segment", "frame",
            "dim")`` for pooling none; each feature has its own ``dim`` coordinate length, so
            a feature's dimension is named ``dim`` when all share one width and
            ``dim_<feature>`` otherwise), ``count_<feature>`` (segment,) frames per segment,
            and the coordinates ``clip_id``, ``second``, ``scene``, ``city``, ``location``,
            ``folds`` and ``position`` along ``segment``. Attributes: ``pooling``, ``names``.
        """
        import xarray as xr

        widths = {self.features[name].shape[-1] for name in self.names}
        variables = {}
        for name in self.names:
            dim = "dim" if len(widths) == 1 else f"dim_{name}"
            dims = ("segment", "frame", dim) if self.pooling == "none" else ("segment", dim)
            if self.pooling == "none" and len(self.names) > 1:
                dims = ("segment", f"frame_{name}", dim)
            variables[name] = (dims, self.features[name])
            variables[f"count_{name}"] = ("segment", np.asarray(self.counts[name]))
        coords = {
            key: ("segment", np.asarray(value)) for key, value in self._coordinates().items()
        }
        return xr.Dataset(
            variables, coords=coords, attrs={"pooling": self.pooling, "names": list(self.names)}
        )

    def to_pandas(self, *, wide=False):
        """The segments as a ``pandas.DataFrame``, one row per segment.

        Parameters
        ----------
        wide : bool
            False: one column per feature whose cells are the segment's vector (an ndarray of
            shape (dim,), or (frames, dim) for pooling none). True: one float column per value,
            named ``<feature>_<i>`` (``i`` from 0; not for pooling none).

        Returns
        -------
        pandas.DataFrame
            Columns ``clip_id``, ``second``, ``scene``, ``city``, ``location``, ``folds``,
            ``position``, ``count_<feature>`` per feature, then the feature columns.
        """
        import pandas as pd

        frame = pd.DataFrame(
            {key: np.asarray(value) for key, value in self._coordinates().items()}
        )
        for name in self.names:
            frame[f"count_{name}"] = np.asarray(self.counts[name])
        parts = [frame]
        for name in self.names:
            values = self.features[name]
            if wide:
                if values.ndim != 2:
                    raise StoreFormatError("wide columns need pooled segments, not pooling none")
                parts.append(
                    pd.DataFrame(values, columns=[f"{name}_{i}" for i in range(values.shape[1])])
                )
            else:
                column = np.empty(len(values), dtype=object)
                column[:] = list(values)
                parts.append(pd.DataFrame({name: column}))
        return pd.concat(parts, axis=1)


def pool_feature(feature, index, positions, durations, stride, pooling):
    """Segments of one feature for the clips at ``positions``, read and pooled in row batches.

    Parameters
    ----------
    feature : featurestore.store.feature.Feature
    index : (offset, count, status), each shape (n,)
        The checked index entries of ``positions`` (:meth:`Feature.checked_index`).
    positions : ndarray, shape (n,)
        Sorted clip positions; clips not committed for this feature are skipped.
    durations : ndarray, shape (n_clips,)
        Durations of all clips of the store.
    stride : int
        More than the largest number of segments of any clip (keys are position * stride + k).

    Returns
    -------
    keys : ndarray, shape (n_segments,), sorted
    pooled : ndarray, shape (n_segments, ...)
    counts : ndarray, shape (n_segments,)
    """
    offset, count, status = index
    keep = status == COMMITTED
    positions, offset, count = positions[keep], offset[keep], count[keep]
    segments_of_clip = n_segments(durations)
    batch_rows = max(feature.chunk_rows, BATCH_BYTES // (4 * feature.dim))
    cuts = np.flatnonzero(np.diff(np.cumsum(count) // batch_rows)) + 1
    batches = np.split(np.arange(positions.size), cuts)
    parts = []
    with ThreadPoolExecutor(1) as reader:  # read batch i + 1 while pooling batch i
        ahead = reader.submit(feature.rows, offset[batches[0]], count[batches[0]])
        for i, clips in enumerate(batches):
            values, timestamps = ahead.result()
            if i + 1 < len(batches):
                ahead = reader.submit(feature.rows, offset[batches[i + 1]], count[batches[i + 1]])
            row_position = np.repeat(positions[clips], count[clips])
            keys = segment_keys(timestamps, row_position, segments_of_clip[row_position], stride)
            parts.append(pool_rows(values, timestamps, keys, pooling))
            del values, timestamps
    keys = np.concatenate([part[0] for part in parts])
    counts = np.concatenate([part[2] for part in parts])
    if pooling == "none":
        return keys, pad_frames([part[1] for part in parts], feature.dim), counts
    return keys, np.concatenate([part[1] for part in parts]), counts


def segment_keys(timestamps, row_position, n_segments_of_row, stride):
    """Sort key ``position * stride + second`` of every row; -1 for rows outside every segment."""
    second = np.floor(timestamps + SEGMENT_EPS)
    inside = np.isfinite(second) & (second >= 0) & (second < n_segments_of_row)
    keys = row_position.astype(np.int64) * stride + np.where(inside, second, 0).astype(np.int64)
    keys[~inside] = -1
    return keys


def pool_rows(values, timestamps, keys, pooling):
    """Pool rows that share a key.

    Parameters
    ----------
    values : ndarray, shape (n_rows, dim), float32
    timestamps : ndarray, shape (n_rows,)
    keys : ndarray, shape (n_rows,)
        From :func:`segment_keys`; rows with key -1 are ignored.
    pooling : {"mean", "max", "meanstd", "center", "none"}

    Returns
    -------
    keys : ndarray, shape (n_segments,), sorted
    pooled : ndarray, shape (n_segments, ...) (see :class:`Segments`)
    counts : ndarray, shape (n_segments,)
    """
    if pooling not in POOLINGS:
        raise StoreFormatError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    valid = keys >= 0
    if not np.all(valid):
        values, timestamps, keys = values[valid], timestamps[valid], keys[valid]
    if keys.size and np.any(keys[1:] < keys[:-1]):
        order = np.argsort(keys, kind="stable")
        values, timestamps, keys = values[order], timestamps[order], keys[order]
    dim = values.shape[1]
    if keys.size == 0:
        width = {"meanstd": (2 * dim,), "none": (0, dim)}.get(pooling, (dim,))
        return keys, np.zeros((0,) + width, np.float32), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    counts = np.diff(np.append(starts, keys.size))
    return keys[starts], _pool(values, timestamps, starts, counts, pooling), counts


def _pool(values, timestamps, starts, counts, pooling):
    if pooling in ("mean", "meanstd"):
        mean = _frame_reduce(values, starts, counts, np.add) / counts[:, None].astype(np.float32)
        if pooling == "mean":
            return mean
        variance = _frame_reduce(values, starts, counts, np.add, centre=mean)
        std = np.sqrt(variance / counts[:, None].astype(np.float32))
        return np.concatenate([mean, std], axis=1)
    if pooling == "max":
        return _frame_reduce(values, starts, counts, np.maximum)
    if pooling == "center":
        segment = np.repeat(np.arange(starts.size), counts)
        distance = np.abs(timestamps - (np.floor(timestamps + SEGMENT_EPS) + 0.5))
        order = np.lexsort((np.arange(timestamps.size), distance, segment))
        return values[order[starts]]
    longest = int(counts.max())  # "none"
    frame = np.minimum(np.arange(longest)[None, :], (counts - 1)[:, None])
    return values[starts[:, None] + frame]


def _frame_reduce(values, starts, counts, op, *, centre=None):
    """Reduce the rows of each segment with ``op``, one frame position at a time.

    Segment s holds rows ``starts[s] ... starts[s] + counts[s] - 1``. Pass j combines the j-th
    frame of every segment that has one, so the work is one gather per frame position (fast,
    unlike ``ufunc.reduceat`` along axis 0). With ``centre``, squared deviations are reduced.
    """

    def frame(j, segments=None):
        rows = values[starts + j] if segments is None else values[starts[segments] + j]
        if centre is not None:
            rows -= centre if segments is None else centre[segments]
            rows *= rows
        return rows

    out = frame(0)
    for j in range(1, int(counts.max())):
        live = counts > j
        if live.all():
            op(out, frame(j), out=out)
        else:
            segments = np.flatnonzero(live)
            out[segments] = op(out[segments], frame(j, segments))
    return out


def join_keys(per_feature):
    """Keys present in every feature and, per feature, where they sit.

    Parameters
    ----------
    per_feature : dict of str -> ndarray
        Sorted unique keys of each feature.

    Returns
    -------
    keys : ndarray, shape (n_common,)
    where : dict of str -> ndarray, shape (n_common,)
    """
    names = list(per_feature)
    common = per_feature[names[0]]
    for name in names[1:]:
        common = np.intersect1d(common, per_feature[name], assume_unique=True)
    where = {name: np.searchsorted(per_feature[name], common) for name in names}
    return common, where


def pad_to(frames, longest):
    """Pad (n, m, dim) frames to (n, longest, dim) by repeating each segment's last frame."""
    if frames.shape[1] >= longest or frames.shape[0] == 0:
        return frames if frames.shape[0] else np.zeros((0, longest, frames.shape[2]), frames.dtype)
    extra = np.repeat(frames[:, -1:], longest - frames.shape[1], axis=1)
    return np.concatenate([frames, extra], axis=1)


def pad_frames(parts, dim):
    """Stack (n_i, m_i, dim) batches of pooling "none" into (sum n_i, max m_i, dim)."""
    longest = max((part.shape[1] for part in parts if part.shape[0]), default=0)
    parts = [pad_to(part, longest) for part in parts if part.shape[0]]
    return np.concatenate(parts) if parts else np.zeros((0, longest, dim), np.float32)
