"""One feature of a store: its arrays, attributes and row layout."""

from typing import Any

import numpy as np

from featurestore import __version__
from featurestore.errors import StoreFormatError
from featurestore.provenance import package_versions, utc_now
from featurestore.store.bounded_decoding import check_array, member_array
from featurestore.store.chunks import ChunkReader, gather_rows
from featurestore.store.layout import (
    COMMITTED,
    INDEX_ARRAYS,
    ROW_MARGIN,
    STATUS_NAMES,
    STORAGE_DTYPES,
    block_regions,
    check_durations,
    chunk_rows_for,
    compressors,
    fingerprint,
    reserved_rows,
    string_compressors,
)

#: Feature attributes every reader can rely on.
REQUIRED_ATTRS = (
    "name",
    "dim",
    "frame_rate",
    "storage_dtype",
    "params",
    "fingerprint",
    "chunk_rows",
    "row_margin",
    "compression",
)


def create_feature_group(
    features_group, name, definition, *, compression, chunk_mib, block_clips, n_clips, durations
):
    """Create ``features/<name>`` with empty arrays sized for the current clips."""
    storage_dtype = definition["storage_dtype"]
    dim = definition["dim"]
    chunk_rows = chunk_rows_for(dim, storage_dtype, chunk_mib)
    attrs = {
        "name": name,
        **definition,
        "fingerprint": fingerprint(definition),
        "compression": compression,
        "chunk_rows": chunk_rows,
        "row_margin": ROW_MARGIN,
        "created": utc_now(),
        "avscene_version": __version__,
        "package_versions": package_versions(),
        "status_codes": {str(code): name for code, name in STATUS_NAMES.items()},
    }
    group = features_group.create_group(name, attributes=attrs)
    itemsize = np.dtype(storage_dtype).itemsize
    group.create_array(
        "values",
        shape=(0, dim),
        chunks=(chunk_rows, dim),
        dtype=storage_dtype,
        fill_value=0,
        compressors=compressors(compression, itemsize),
        dimension_names=("row", "dim"),
    )
    group.create_array(
        "timestamps",
        shape=(0,),
        chunks=(chunk_rows,),
        dtype="float64",
        fill_value=np.nan,
        compressors=compressors("zstd", 8),
        dimension_names=("row",),
    )
    for array_name, dtype in (("offset", "int64"), ("count", "int32"), ("status", "int8")):
        group.create_array(
            array_name,
            shape=(0,),
            chunks=(block_clips,),
            dtype=dtype,
            fill_value=0,
            compressors=compressors("zstd", np.dtype(dtype).itemsize),
            dimension_names=("clip",),
        )
    group.create_array(
        "reason",
        shape=(0,),
        chunks=(block_clips,),
        dtype=str,
        compressors=string_compressors(),
        dimension_names=("clip",),
    )
    feature = Feature(group, block_clips=block_clips)
    feature.extend(n_clips, durations)
    return feature


def _check_attrs(attrs, path):
    """Refuse feature attributes of the wrong type or range, with one line naming the first."""

    def positive_int(value, least=1):
        return type(value) is int and value >= least

    checks = {
        "name": lambda v: isinstance(v, str) and v == path.rsplit("/", 1)[-1],
        "dim": positive_int,
        "chunk_rows": positive_int,
        "row_margin": lambda v: positive_int(v, 0),
        "frame_rate": lambda v: type(v) in (int, float) and 0 < v < float("inf"),
        "storage_dtype": lambda v: v in STORAGE_DTYPES,
        "fingerprint": lambda v: isinstance(v, str),
        "params": lambda v: isinstance(v, dict),
        "compression": lambda v: isinstance(v, str),
    }
    for key, valid in checks.items():
        if not valid(attrs[key]):
            raise StoreFormatError(
                f"{path}: attribute {key} is {str(attrs[key])[:80]!r}; the "
                f"feature's attributes are corrupt"
            )


class Feature:
    """Arrays and layout of ``features/<name>``.

    Parameters
    ----------
    group : zarr.Group
        The feature's group.
    block_clips : int
        Clips per block of the store.
    frames : bool
        False for a store that holds segments only: its features keep their attributes and
        index, but no ``values`` or ``timestamps``.
    """

    # The arrays (set in __init__ from ``arrays``), declared for type checkers; ``values`` and
    # ``timestamps`` are None in a store that holds segments only.
    values: Any
    timestamps: Any
    offset: Any
    count: Any
    status: Any
    reason: Any

    def __init__(self, group, *, block_clips, frames=True):
        self.group = group
        self.attrs = dict(group.attrs)
        missing = [key for key in REQUIRED_ATTRS if key not in self.attrs]
        if missing:
            raise StoreFormatError(f"feature group {group.path!r} lacks attributes {missing}")
        _check_attrs(self.attrs, group.path)
        self.name = self.attrs["name"]
        self.dim = self.attrs["dim"]
        self.frame_rate = float(self.attrs["frame_rate"])
        self.storage_dtype = np.dtype(self.attrs["storage_dtype"])
        self.chunk_rows = self.attrs["chunk_rows"]
        self.margin = self.attrs["row_margin"]
        self.block_clips = block_clips
        self.has_frames = bool(frames)
        row_arrays = ("values", "timestamps") if frames else ()
        self.arrays = {
            name: check_array(
                member_array(group, name, f"{group.path}/{name}"), f"features/{self.name}/{name}"
            )
            for name in row_arrays + INDEX_ARRAYS
        }
        self.values = self.timestamps = None
        self._check_shapes()
        for name in row_arrays:  # every chunk holding rows is stored, even all-0
            self.arrays[name] = self.arrays[name].with_config({"write_empty_chunks": True})
        for key, value in self.arrays.items():
            setattr(self, key, value)

    def _check_shapes(self):
        """The row arrays are 2-D / 1-D with the attributes' dim and chunk rows; the index 1-D
        with integer entries (or strings, for ``reason``)."""
        label = f"features/{self.name}"
        for name in ("offset", "count", "status"):
            array = self.arrays[name]
            if array.ndim != 1 or np.dtype(array.dtype).kind not in "iu":
                raise StoreFormatError(
                    f"{label}/{name}: shape {array.shape} dtype {array.dtype}; "
                    f"the index needs 1-D integer arrays"
                )
        reason = self.arrays["reason"]
        if reason.ndim != 1 or type(reason.metadata.data_type).__name__ != "VariableLengthUTF8":
            raise StoreFormatError(
                f"{label}/reason: shape {reason.shape} dtype {reason.dtype}; "
                f"the index needs a 1-D string array"
            )
        if not self.has_frames:
            return
        values, timestamps = self.arrays["values"], self.arrays["timestamps"]
        if (
            values.ndim != 2
            or values.shape[1] != self.dim
            or timestamps.ndim != 1
            or values.chunks[0] != self.chunk_rows
            or timestamps.chunks[0] != self.chunk_rows
        ):
            raise StoreFormatError(
                f"{label}: values {values.shape} chunks {values.chunks} and "
                f"timestamps {timestamps.shape} disagree with dim {self.dim} "
                f"and chunk_rows {self.chunk_rows}"
            )
        if (
            np.dtype(values.dtype) != self.storage_dtype
            or np.dtype(timestamps.dtype) != np.float64
        ):
            raise StoreFormatError(
                f"{label}: values of {values.dtype} and timestamps of "
                f"{timestamps.dtype}; the feature stores {self.storage_dtype} "
                f"and float64"
            )

    def definition(self):
        """The stored definition (dim, frame_rate, storage_dtype, params)."""
        return {key: self.attrs[key] for key in ("dim", "frame_rate", "storage_dtype", "params")}

    def regions(self, durations):
        """(starts, stops) of every block's row region; see :func:`block_regions`."""
        return block_regions(
            durations,
            frame_rate=self.frame_rate,
            chunk_rows=self.chunk_rows,
            block_clips=self.block_clips,
            margin=self.margin,
        )

    def reserved(self, durations):
        """Rows reserved per clip."""
        return reserved_rows(durations, self.frame_rate, self.margin)

    def extend(self, n_clips, durations):
        """Size the index for ``n_clips`` and the row arrays for the regions of all blocks.

        Arrays only grow, except after an interrupted :meth:`FeatureStore.add_clips`, whose
        uncommitted growth is undone here.
        """
        _, stops = self.regions(durations)
        total = int(stops[-1]) if stops.size else 0
        for name in INDEX_ARRAYS:
            if self.arrays[name].shape[0] != n_clips:
                self.arrays[name].resize((n_clips,))
        if self.values.shape[0] != total:
            self.values.resize((total, self.dim))
            self.timestamps.resize((total,))

    def index(self, positions=None, *, n_clips=None):
        """offset, count, status of all clips (or of ``positions``), read chunk by chunk, as
        stored (:meth:`checked_index` is the one for reading rows).

        Parameters
        ----------
        n_clips : int, optional
            Read the first ``n_clips`` entries (default: all of them).

        Returns
        -------
        offset : ndarray, shape (n,), int64
        count : ndarray, shape (n,), int64
        status : ndarray, shape (n,), int8
        """
        if n_clips is None:
            n_clips = self.status.shape[0]
        columns = []
        for name in ("offset", "count", "status"):
            reader = ChunkReader(self.arrays[name])
            columns.append(gather_rows(reader, [0], [n_clips]))
        offset, count, status = columns
        offset, count = offset.astype(np.int64), count.astype(np.int64)
        if positions is not None:
            offset, count, status = offset[positions], count[positions], status[positions]
        return offset, count, status

    def checked_index(self, clips, positions=None):
        """:meth:`index` of the store's clips, after checking every committed entry.

        Every committed clip's rows must lie inside its block's region and within its
        reservation (so no read can ask for more rows than the array holds), which is checked
        before anything is read from ``values``.

        Parameters
        ----------
        clips : ClipTable
            The store's clip table (its durations give the block regions).
        positions : ndarray of int, optional

        Raises
        ------
        StoreFormatError
            Naming the feature and the first clip whose entry is impossible.
        """
        n_clips = len(clips)
        label = f"features/{self.name}"
        for name in ("offset", "count", "status"):
            if self.arrays[name].shape[0] < n_clips:
                raise StoreFormatError(
                    f"{label}/{name} has {self.arrays[name].shape[0]} entries for {n_clips} clips"
                )
        durations = check_durations(clips.duration, clips.clip_id)
        starts, stops = self.regions(durations)
        total = int(stops[-1]) if stops.size else 0
        if self.has_frames and (self.values.shape[0] < total or self.timestamps.shape[0] < total):
            raise StoreFormatError(
                f"{label}: values hold {self.values.shape[0]} rows, the block "
                f"layout of {n_clips} clips needs {total}"
            )
        offset, count, status = self.index(n_clips=n_clips)
        block = np.arange(n_clips) // self.block_clips
        self.check_committed(
            offset,
            count,
            status,
            low=starts[block],
            high=stops[block],
            reserved=self.reserved(durations),
            clip_ids=clips.clip_id,
        )
        if positions is not None:
            offset, count, status = offset[positions], count[positions], status[positions]
        return offset, count, status

    def check_committed(self, offset, count, status, *, low, high, reserved, clip_ids):
        """Refuse committed entries whose rows ``[offset, offset + count)`` leave the region
        ``[low, high)`` of their block or exceed their ``reserved`` rows (all shape (n,))."""
        bad = (status == COMMITTED) & (
            (count < 0) | (count > reserved) | (offset < low) | (offset > high - count)
        )
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise StoreFormatError(
                f"features/{self.name}: clip {str(clip_ids[i])!r} is committed with {count[i]} "
                f"rows from row {offset[i]}, outside its block's rows [{low[i]}, {high[i]}) or "
                f"its {reserved[i]} reserved rows: the index is corrupt ({int(bad.sum())} "
                f"such clips; avscene verify lists them)"
            )

    def rows(self, offset, count):
        """Rows ``[offset[i], offset[i] + count[i])`` for every i, concatenated.

        Returns
        -------
        values : ndarray, shape (sum(count), dim), float32
        timestamps : ndarray, shape (sum(count),), float64
        """
        if not self.has_frames:
            raise StoreFormatError(
                f"features/{self.name}: this store holds segments only, its frames were left out"
            )
        values = gather_rows(ChunkReader(self.values), offset, count, dtype=np.float32)
        timestamps = gather_rows(ChunkReader(self.timestamps), offset, count)
        return values, timestamps
