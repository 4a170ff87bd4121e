"""Stored per-second segments: the pooled 1-s segments of a feature, kept in the store.

Pooling the frames of a TAU-sized store into seconds takes seconds of every training run, and a
colleague who trains on seconds only needs a tenth of the bytes. ``avscene segments`` therefore
writes, per feature and pooling, a self-describing group::

    segments/<feature>/<pooling>/   attrs: feature, pooling, dim, frames_fingerprint, ...
        values      (segment, dim)  float32   the pooled segments, in (position, second) order
        position    (segment,)      int64     clip position in the clip table
        second      (segment,)      int32     segment index k within the clip
        count       (segment,)      int32     frames pooled into the segment

A stored copy is used only while its ``frames_fingerprint`` equals that of the frames it would
replace (:func:`frames_fingerprint`): appending clips or committing, failing or rewriting any clip
changes the index and so the fingerprint, and the reader pools the frames instead. Writing
first removes the fingerprint and writes it back last, so a copy whose writer died is never used.
"""

import hashlib
import json

import numpy as np

from featurestore import __version__
from featurestore.errors import StoreFormatError
from featurestore.provenance import package_versions, utc_now
from featurestore.store.bounded_decoding import member_array
from featurestore.store.chunks import ChunkReader, gather_rows
from featurestore.store.layout import COMMITTED, chunk_rows_for, compressors, n_segments
from featurestore.store.segment_pooling import pool_feature

SEGMENTS_GROUP = "segments"
#: Poolings that can be stored (``none`` keeps every frame: nothing to gain).
STORED_POOLINGS = ("mean", "max", "meanstd", "center")
#: Entries per chunk of ``position``, ``second`` and ``count`` (one chunk for TAU's 122,920).
INDEX_CHUNK = 1 << 17
SEGMENT_ARRAYS = ("values", "position", "second", "count")
#: Approximate MiB per chunk of ``values`` (as for the frames).
CHUNK_MIB = 4


def frames_fingerprint(feature_fingerprint, clips, offset, count, status):
    """sha256 (hex) identifying the committed frames of one feature.

    Hashes, in order: the feature's definition fingerprint, the number of clips, the clip ids
    and durations, and the feature's ``offset``, ``count`` and ``status`` of every clip. Under
    the store's writing rules committed rows are never rewritten in place, so any change of the
    committed frames (a clip committed, failed or added) changes the index and this value.

    Parameters
    ----------
    feature_fingerprint : str
    clips : ClipTable
    offset, count, status : ndarray, shape (n_clips,)
    """
    digest = hashlib.sha256()
    digest.update(feature_fingerprint.encode())
    digest.update(np.int64(len(clips)).tobytes())
    digest.update(json.dumps([str(c) for c in clips.clip_id]).encode())
    digest.update(np.asarray(clips.duration, "<f8").tobytes())
    for array, dtype in ((offset, "<i8"), (count, "<i8"), (status, "i1")):
        digest.update(np.asarray(array).astype(dtype).tobytes())
    return digest.hexdigest()


def width_of(dim, pooling):
    """Values per stored segment: ``2 * dim`` for meanstd, else ``dim``."""
    return 2 * dim if pooling == "meanstd" else dim


def group_path(name, pooling):
    """``segments/<name>/<pooling>``."""
    return f"{SEGMENTS_GROUP}/{name}/{pooling}"


def stored_groups(root):
    """{(feature, pooling): zarr group} of every stored segment group under ``root``."""
    if SEGMENTS_GROUP not in root.group_keys():
        return {}
    found = {}
    top = root[SEGMENTS_GROUP]
    for name in sorted(top.group_keys()):
        for pooling in sorted(top[name].group_keys()):
            found[(name, pooling)] = top[name][pooling]
    return found


def open_group(root, name, pooling):
    """The group ``segments/<name>/<pooling>`` of ``root``, or None."""
    if pooling not in STORED_POOLINGS:
        return None
    try:
        return root[group_path(name, pooling)]
    except (KeyError, FileNotFoundError):
        return None


def write_segments(root, feature, clips, index, pooling):
    """Pool every committed clip of ``feature`` and store the segments under ``root``.

    Parameters
    ----------
    root : zarr.Group
        The store's root group, open for writing.
    feature : featurestore.store.feature.Feature
    clips : ClipTable
    index : (offset, count, status), each shape (n_clips,)
        The feature's checked index.
    pooling : one of :data:`STORED_POOLINGS`

    Returns
    -------
    dict
        ``feature``, ``pooling``, ``segments``, ``dim`` and ``frames_fingerprint``.
    """
    if pooling not in STORED_POOLINGS:
        raise StoreFormatError(
            f"pooling {pooling!r} cannot be stored; choose from {', '.join(STORED_POOLINGS)}"
        )
    durations = clips.duration
    stride = int(n_segments(durations).max()) + 1 if len(durations) else 1
    positions = np.arange(len(clips), dtype=np.int64)
    keys, pooled, counts = pool_feature(feature, index, positions, durations, stride, pooling)
    fingerprint = frames_fingerprint(feature.attrs["fingerprint"], clips, *index)
    width = width_of(feature.dim, pooling)
    group = root.require_group(SEGMENTS_GROUP).require_group(feature.name)
    segment_group = group.create_group(
        pooling,
        overwrite=True,
        attributes={"feature": feature.name, "pooling": pooling, "frames_fingerprint": None},
    )
    rows = chunk_rows_for(width, "float32", CHUNK_MIB)
    columns = {
        "values": (pooled.astype(np.float32, copy=False), (rows, width), "lz4"),
        "position": (keys // stride, (INDEX_CHUNK,), "zstd"),
        "second": ((keys % stride).astype(np.int32), (INDEX_CHUNK,), "zstd"),
        "count": (counts.astype(np.int32), (INDEX_CHUNK,), "zstd"),
    }
    for array_name, (data, chunks, codec) in columns.items():
        array = segment_group.create_array(
            array_name,
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            fill_value=0,
            compressors=compressors(codec, data.dtype.itemsize),
            dimension_names=("segment", "dim")[: data.ndim],
            config={"write_empty_chunks": True},
        )
        if data.shape[0]:
            array[...] = data
    segment_group.attrs.update(
        {
            "feature": feature.name,
            "pooling": pooling,
            "dim": width,
            "frame_dim": feature.dim,
            "feature_fingerprint": feature.attrs["fingerprint"],
            "n_clips": len(clips),
            "n_segments": int(keys.size),
            "created": utc_now(),
            "avscene_version": __version__,
            "package_versions": package_versions(),
            "segment_rule": "segment k of a clip pools the frames with floor(t + 1e-6) == k; "
            "see docs/store-format.md",
            "frames_fingerprint": fingerprint,  # last: the commit point
        }
    )
    return {
        "feature": feature.name,
        "pooling": pooling,
        "segments": int(keys.size),
        "dim": width,
        "frames_fingerprint": fingerprint,
    }


def is_fresh(group, feature, clips, index):
    """True when the stored segments were made from exactly the frames of ``index``."""
    stored = group.attrs.get("frames_fingerprint")
    return isinstance(stored, str) and stored == frames_fingerprint(
        feature.attrs["fingerprint"], clips, *index
    )


def read_segments(group, feature, clips, index, positions, stride, pooling):
    """Stored segments of the clips at ``positions``, or None if the copy is stale.

    Parameters
    ----------
    group : zarr.Group or None
        ``segments/<feature>/<pooling>`` (None: nothing stored).
    index : (offset, count, status), each shape (n_clips,)
        The feature's checked index of all clips.
    positions : ndarray, shape (n,), sorted unique clip positions
    stride : int
        As in :func:`~featurestore.store.segment_pooling.pool_feature`.

    Returns
    -------
    keys, pooled, counts
        As :func:`~featurestore.store.segment_pooling.pool_feature` returns them.
    """
    if group is None or not is_fresh(group, feature, clips, index):
        return None
    readers = checked_arrays(
        group, feature.dim, pooling, most=most_segments(index, clips.duration)
    )
    position, second, count = (
        _read_all(readers[name]) for name in ("position", "second", "count")
    )
    check_entries(group.path, position, second, count, clips.duration)
    wanted = np.zeros(len(clips), bool)
    wanted[positions] = True
    rows = np.flatnonzero(wanted[position])
    values = gather_rows(readers["values"], *_runs(rows), dtype=np.float32)
    keys = position[rows] * stride + second[rows]
    return keys, values, count[rows].astype(np.int64)


def most_segments(index, durations):
    """The most segments the committed frames of ``index`` can make: a clip has at most one
    per second of its duration, and at most one per frame."""
    _, count, status = index
    committed = np.asarray(status) == COMMITTED
    per_clip = np.minimum(np.maximum(np.asarray(count, np.int64), 0), n_segments(durations))
    return int(per_clip[committed].sum())


def checked_arrays(group, dim, pooling, *, most):
    """Readers of the four arrays of a segment group (every chunk must be stored), after
    checking their codecs, shapes and data types against its attributes, and its
    ``n_segments`` against ``most`` (see :func:`most_segments`), before anything is read."""
    label = group.path
    arrays = {name: member_array(group, name, f"{label}/{name}") for name in SEGMENT_ARRAYS}
    n = group.attrs.get("n_segments")
    if type(n) is not int or not 0 <= n <= most:
        raise StoreFormatError(
            f"{label}: n_segments {n!r} is not between 0 and the {most} "
            f"segments the committed frames can make (the stored segments "
            f"are corrupt; avscene segments --overwrite rewrites them)"
        )
    width = width_of(dim, pooling)
    shapes = {name: getattr(arrays[name], "shape", None) for name in SEGMENT_ARRAYS}
    expected = {"values": (n, width), "position": (n,), "second": (n,), "count": (n,)}
    if shapes != expected or group.attrs.get("dim") != width:
        raise StoreFormatError(
            f"{label}: arrays {shapes} disagree with n_segments {n!r} and "
            f"dim {width} (the stored segments are corrupt; avscene "
            f"segments --overwrite rewrites them)"
        )
    readers = {name: ChunkReader(arrays[name], required=True) for name in SEGMENT_ARRAYS}
    for name, kinds in (("values", "f"), ("position", "iu"), ("second", "iu"), ("count", "iu")):
        if readers[name].dtype.kind not in kinds:
            raise StoreFormatError(
                f"{label}/{name} has dtype {arrays[name].dtype}, not "
                f"{'float' if kinds == 'f' else 'integer'}"
            )
    return readers


def check_entries(label, position, second, count, durations):
    """Refuse positions, seconds or counts that no pooling of the store could have made."""
    n_clips = len(durations)
    inside = (position >= 0) & (position < n_clips)
    bad = ~inside
    segments_of = n_segments(durations)
    bad[inside] |= (second[inside] < 0) | (second[inside] >= segments_of[position[inside]])
    bad |= count < 1
    order = (position[1:] > position[:-1]) | (
        (position[1:] == position[:-1]) & (second[1:] > second[:-1])
    )
    if np.any(bad) or not np.all(order):
        where = int(np.flatnonzero(bad)[0]) if np.any(bad) else int(np.flatnonzero(~order)[0]) + 1
        raise StoreFormatError(
            f"{label}: segment {where} (clip position {position[where]}, "
            f"second {second[where]}, {count[where]} frames) is impossible "
            f"or out of order; the stored segments are corrupt"
        )


def _read_all(reader):
    return gather_rows(reader, [0], [reader.shape[0]]).astype(np.int64)


def _runs(rows):
    """(starts, counts) of the runs of consecutive integers in sorted ``rows``."""
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    heads = np.flatnonzero(np.concatenate([[True], np.diff(rows) != 1]))
    ends = np.append(heads[1:], rows.size)
    return rows[heads], ends - heads
