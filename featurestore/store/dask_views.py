"""Lazy dask.array views of a feature store: frame rows and pooled 1-s segments.

>>> segments = dask_segments("features.zarr", ["openl3_audio", "openl3_video"], fold="train")
>>> segments.X()                     # dask array (n_segments, 1024) float32, nothing read yet
>>> segments.y, segments.groups      # numpy (n_segments,), known on the client

Reads go through one dask chunk per store block region, each read by a task with the store's
own bounded chunk reader (:mod:`featurestore.store.chunks`): a region starts on a zarr chunk
boundary and holds whole clips (:mod:`featurestore.store.layout`), so every task reads whole
zarr chunks and sees every frame of its clips (clip-aligned chunks).
Only regions holding selected, committed clips are read.

What stays on the client: the clip table, each feature's per-clip index (offset, count, status)
and one int64 key per segment, found by a first pass over the timestamps (8 bytes per frame,
read by the workers). Feature values never pass through the client. Segment values equal
:meth:`FeatureStore.segments` exactly (the same pooling functions, the same row order).
dask is imported here; torch never is.
"""

from dataclasses import dataclass, field

import numpy as np

from featurestore.errors import StoreFormatError
from featurestore.store.chunks import ChunkReader, gather_rows
from featurestore.store.feature import Feature
from featurestore.store.feature_store import FeatureStore
from featurestore.store.layout import COMMITTED, n_segments
from featurestore.store.opening import open_existing, resolve_location, zarr_options
from featurestore.store.segment_pooling import SegmentTable, pool_rows, segment_keys

#: Poolings with one row per segment (``none`` gives 3-D arrays: in-memory reads only).
DASK_POOLINGS = ("mean", "max", "meanstd", "center")


@dataclass
class DaskFrames:
    """Frame rows of the committed clips of a selection, lazily, in clip-table order.

    values : dask array, shape (n_rows, dim), float32 -- one chunk per store block read
    timestamps : dask array, shape (n_rows,), float64
    positions : ndarray, shape (n_clips,) -- clip positions read (committed clips only)
    counts : ndarray, shape (n_clips,) -- rows of each of those clips
    """

    values: object
    timestamps: object
    positions: np.ndarray
    counts: np.ndarray


@dataclass(repr=False)
class DaskSegments(SegmentTable):
    """Pooled segments of one or more features joined on (clip, second); values are lazy.

    Attributes
    ----------
    features : dict of str -> dask array, shape (n_segments, dim) (2 * dim for meanstd)
    clip_id, scene, city, location, folds : ndarray of str, shape (n_segments,)
    second, position : ndarray of int, shape (n_segments,)
    pooling : str
    names : tuple of str
    """

    features: dict
    clip_id: np.ndarray
    second: np.ndarray
    scene: np.ndarray
    city: np.ndarray
    location: np.ndarray
    folds: np.ndarray
    position: np.ndarray
    pooling: str = "mean"
    names: tuple = field(default=())
    combined: object = None  # all features side by side, in ``names`` order

    def X(self, names=None):
        """Features side by side: dask array, shape (n_segments, sum of dims), float32."""
        import dask.array as da

        names = self._feature_names(names)
        if names == list(self.names):
            return self.combined
        parts = [self.features[name] for name in names]
        return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=1)


@dataclass
class _Feature:
    """One feature's lazy arrays (one chunk per block region) and its per-clip index."""

    name: str
    dim: int
    values: object
    timestamps: object
    region_start: np.ndarray
    offset: np.ndarray
    count: np.ndarray
    status: np.ndarray


def open_views(where, names, *, storage_options=None):
    """Open a store read-only: ``(store, {name: _Feature})`` with lazy arrays per feature."""
    store = FeatureStore.open(where, mode="r", storage_options=storage_options)
    target, label = resolve_location(where, storage_options=storage_options)
    group = open_existing(
        target, zarr_options(target, storage_options, label), label, writable=False
    )
    missing = [name for name in names if name not in store.features]
    if missing:
        raise StoreFormatError(
            f"{store.label} has no feature {missing[0]!r} "
            f"(it has {', '.join(store.features) or 'none'})"
        )
    views = {}
    for name in names:
        feature = Feature(group["features"][name], block_clips=store.block_clips)
        offset, count, status = feature.checked_index(store.clips)
        starts, stops = feature.regions(store.clips.duration)
        views[name] = _Feature(
            name=name,
            dim=feature.dim,
            values=_regions(feature.values, starts, stops),
            timestamps=_regions(feature.timestamps, starts, stops),
            region_start=starts,
            offset=offset,
            count=count,
            status=status,
        )
    return store, views


def _regions(array, starts, stops):
    """A dask array of the block regions ``[starts[b], stops[b])`` of a row array, one dask
    chunk per region, each read by a task through a :class:`ChunkReader` (every chunk decode
    bounded, as for in-memory reads)."""
    import dask
    import dask.array as da

    reader = ChunkReader(array)  # checks the metadata on the client
    rest = tuple(array.shape[1:])
    parts = [
        da.from_delayed(
            dask.delayed(_read_region)(array, int(start), int(stop)),
            shape=(int(stop - start),) + rest,
            dtype=reader.dtype,
        )
        for start, stop in zip(starts, stops)
    ]
    return da.concatenate(parts) if parts else da.zeros((0,) + rest, reader.dtype)


def _read_region(array, start, stop):
    return gather_rows(ChunkReader(array), [start], [stop - start])


def _selected(store, selection, fold):
    """Sorted unique clip positions of ``selection`` (positions or mask) and ``fold``."""
    positions = np.arange(len(store.clips), dtype=np.int64)
    if selection is not None:
        chosen = np.asarray(selection)
        chosen = np.flatnonzero(chosen) if chosen.dtype == bool else chosen.astype(np.int64)
        if chosen.size and (chosen.min() < 0 or chosen.max() >= len(store.clips)):
            raise StoreFormatError(f"selection holds positions outside 0..{len(store.clips) - 1}")
        positions = np.unique(chosen)
    if fold is not None:
        positions = np.intersect1d(positions, store.select(fold=fold))
    return positions


def _block_plan(store, views, positions):
    """Per block holding selected clips committed for every feature: (block, positions)."""
    committed = np.ones(len(positions), bool)
    for view in views.values():
        committed &= view.status[positions] == COMMITTED
    positions = positions[committed]
    blocks = positions // store.block_clips
    cuts = np.flatnonzero(np.diff(blocks)) + 1
    return [
        (int(group[0] // store.block_clips), group)
        for group in np.split(positions, cuts)
        if group.size
    ]


def gather(region, local_offset, count):
    """Rows ``[local_offset[i], local_offset[i] + count[i])`` of a region, concatenated."""
    count = np.asarray(count, np.int64)
    starts = np.repeat(np.asarray(local_offset, np.int64) - np.cumsum(count) + count, count)
    return region[starts + np.arange(int(count.sum()))]


def _block_args(view, block, positions):
    """(values region, timestamps region, local offsets, counts) of one feature and block."""
    local = view.offset[positions] - view.region_start[block]
    return (view.values.blocks[block], view.timestamps.blocks[block], local, view.count[positions])


def _keys_of_block(features, positions, segments_of_clip, stride):
    """Sorted keys (position * stride + second) of the segments every feature has frames in."""
    joined = None
    for _, times, local, count in features:
        stamps = gather(times, local, count)
        keys = segment_keys(
            stamps, np.repeat(positions, count), np.repeat(segments_of_clip, count), stride
        )
        keys = np.unique(keys[keys >= 0])
        joined = keys if joined is None else np.intersect1d(joined, keys, assume_unique=True)
    return joined


def _segments_of_block(features, positions, segments_of_clip, stride, pooling, keys):
    """Pooled values of the segments ``keys`` of one block, features side by side."""
    parts = []
    for values, times, local, count in features:
        stamps = gather(times, local, count)
        rows = gather(values, local, count).astype(np.float32, copy=False)
        row_keys = segment_keys(
            stamps, np.repeat(positions, count), np.repeat(segments_of_clip, count), stride
        )
        found, pooled, _ = pool_rows(rows, stamps, row_keys, pooling)
        parts.append(pooled[np.searchsorted(found, keys)])
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def dask_frames(where, name, *, selection=None, fold=None, storage_options=None):
    """Frame rows of one feature for the committed clips of a selection, as dask arrays.

    Parameters
    ----------
    where : str, os.PathLike or zarr Store
        The store (path or fsspec URL; workers of a distributed cluster must reach it too).
    name : str
    selection : array of int or bool, optional
        Clip positions (e.g. from :meth:`FeatureStore.select`); default every clip.
    fold : str or list of str, optional
        Further restrict to clips of these folds.
    storage_options : dict, optional
        Passed to fsspec for URLs.

    Returns
    -------
    DaskFrames
    """
    import dask
    import dask.array as da

    store, views = open_views(where, [name], storage_options=storage_options)
    with store:
        view = views[name]
        plan = _block_plan(store, views, _selected(store, selection, fold))
    values, stamps = [], []
    for block, positions in plan:
        region_values, region_times, local, count = _block_args(view, block, positions)
        n_rows = int(count.sum())
        values.append(
            da.from_delayed(
                dask.delayed(gather)(region_values, local, count),
                shape=(n_rows, view.dim),
                dtype=view.values.dtype,
            )
        )
        stamps.append(
            da.from_delayed(
                dask.delayed(gather)(region_times, local, count), shape=(n_rows,), dtype=np.float64
            )
        )
    if not plan:
        values, stamps = [da.zeros((0, view.dim), np.float32)], [da.zeros(0, np.float64)]
    positions = np.concatenate([p for _, p in plan]) if plan else np.zeros(0, np.int64)
    return DaskFrames(
        values=da.concatenate(values).astype(np.float32),
        timestamps=da.concatenate(stamps),
        positions=positions,
        counts=view.count[positions],
    )


def dask_segments(
    where, names, *, selection=None, fold=None, pooling="mean", storage_options=None
):
    """Per-second segments of one or more features, joined on (clip, second), lazily.

    Parameters
    ----------
    where : str, os.PathLike or zarr Store
        The store (path or fsspec URL; workers of a distributed cluster must reach it too).
    names : str or list of str
    selection : array of int or bool, optional
        Clip positions; default every clip.
    fold : str or list of str, optional
        Further restrict to clips of these folds.
    pooling : {"mean", "max", "meanstd", "center"}
    storage_options : dict, optional

    Returns
    -------
    DaskSegments
        Metadata as numpy arrays; ``features`` and ``X()`` as dask arrays with one chunk per
        store block holding selected clips (chunk sizes known).

    Notes
    -----
    Computes the segment keys at once (a pass over the timestamps, on the active dask
    scheduler); the values are read when the returned arrays are computed or persisted.
    """
    import dask
    import dask.array as da

    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise StoreFormatError("dask_segments() needs at least one feature name")
    if pooling not in DASK_POOLINGS:
        raise StoreFormatError(
            f"pooling must be one of {', '.join(DASK_POOLINGS)} for dask reads, not {pooling!r}"
        )
    store, views = open_views(where, names, storage_options=storage_options)
    with store:
        plan = _block_plan(store, views, _selected(store, selection, fold))
        durations = store.clips.duration
        columns = store.clips.columns
    segments_of_clip = n_segments(durations)
    stride = int(segments_of_clip.max()) + 1 if len(durations) else 1
    tasks = []
    for block, positions in plan:
        features = [_block_args(views[name], block, positions) for name in names]
        tasks.append((features, positions, segments_of_clip[positions]))
    keys = dask.compute(
        *[
            dask.delayed(_keys_of_block)(features, positions, segs, stride)
            for features, positions, segs in tasks
        ]
    )
    dim = sum(views[name].dim * (2 if pooling == "meanstd" else 1) for name in names)
    blocks = [
        da.from_delayed(
            dask.delayed(_segments_of_block)(
                features, positions, segs, stride, pooling, block_keys
            ),
            shape=(len(block_keys), dim),
            dtype=np.float32,
        )
        for (features, positions, segs), block_keys in zip(tasks, keys)
        if len(block_keys)
    ]
    combined = da.concatenate(blocks) if blocks else da.zeros((0, dim), np.float32)
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    clip = all_keys // stride
    features, start = {}, 0
    for name in names:
        width = views[name].dim * (2 if pooling == "meanstd" else 1)
        features[name] = combined[:, start : start + width]
        start += width
    return DaskSegments(
        features=features,
        clip_id=columns["clip_id"][clip],
        second=all_keys - clip * stride,
        scene=columns["scene"][clip],
        city=columns["city"][clip],
        location=columns["location"][clip],
        folds=columns["folds"][clip],
        position=clip,
        pooling=pooling,
        names=tuple(names),
        combined=combined,
    )
