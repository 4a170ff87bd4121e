"""HDF5 interchange: a store's groups, arrays, chunk layout and attributes, losslessly.

Every zarr group becomes an HDF5 group and every array a dataset of the same shape and dtype
(strings as UTF-8 variable-length strings). Each zarr attribute is stored as an HDF5 attribute
holding its JSON text; the reserved attribute ``_zarr`` holds the JSON of the zarr metadata
(chunking, codecs, fill value, dimension names), which import uses to rebuild identical arrays.
Chunks that zarr never stored are not written either way (``_zarr_stored_chunks`` lists the
stored ones). Export is here; import, which checks everything it reads, is
:mod:`featurestore.store.interchange.hdf5_import`.

Export writes a temporary file beside the target, flushes it to the disk and renames it into
place: the target is either the previous file or the complete new one, also after a kill, a
full disk or a power loss. A temporary file left by a killed export is removed by the next one.
The HDF5 library writes through :class:`GuardedFile`, which keeps a failed write (a full disk)
from the library: told of one, it crashes the process at exit.
"""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import zarr
from zarr.errors import ZarrUserWarning

from featurestore import __version__
from featurestore.errors import StoreExistsError, StoreFormatError
from featurestore.provenance import utc_now
from featurestore.store.chunks import ChunkReader, list_keys, read_span
from featurestore.store.concurrency.files import (
    build_path,
    fsync_directory,
    remove_stale_builds,
    reporting_write_errors,
)
from featurestore.store.layout import FORMAT, chunk_prefix

META_ATTR = "_zarr"
#: JSON list of the chunk indices (along rows) that zarr had stored; import writes exactly these.
CHUNKS_ATTR = "_zarr_stored_chunks"
EXPORT_COMPRESSIONS = ("gzip", "lzf", "none")
#: Chunks decoded ahead of the (single-threaded) HDF5 writer.
WINDOW = 8


def export_hdf5(store, path, *, compression="gzip", overwrite=False):
    """Write every group, array and attribute of ``store`` to the HDF5 file ``path``.

    Parameters
    ----------
    store : FeatureStore
    path : str or os.PathLike
    compression : {"gzip", "lzf", "none"}
        HDF5 filter for the datasets (gzip level 1 with shuffle is readable everywhere).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    dict
        ``arrays``, ``groups``, ``chunks`` written and ``bytes`` of the file.

    Raises
    ------
    StoreWriteError
        The disk filled (or a file-size limit was reached); no file was left, and a previous
        one at ``path`` is untouched.
    """
    import h5py

    if compression not in EXPORT_COMPRESSIONS:
        raise StoreFormatError(f"HDF5 compression must be one of {EXPORT_COMPRESSIONS}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreExistsError(f"{path} exists already (pass overwrite to replace it)")
    remove_stale_builds(path, "export")
    partial = build_path(path, "export")
    job = _Export(compression)
    with reporting_write_errors(path, "the HDF5 export"):
        try:
            with open(partial, "w+b", buffering=0) as handle:
                job.file = GuardedFile(handle)
                with h5py.File(job.file, "w") as h5:
                    h5.attrs["avscene_export"] = json.dumps(
                        {
                            "format": FORMAT,
                            "source": store.label,
                            "exported": utc_now(),
                            "avscene_version": __version__,
                        }
                    )
                    _export_group(store.zarr_group, h5, job)
                    h5.flush()
                job.check()
                os.fsync(handle.fileno())  # on the disk before it takes the name
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    fsync_directory(path.parent)
    return {**job.counts, "bytes": path.stat().st_size, "path": str(path)}


class GuardedFile:
    """The export file as the HDF5 library sees it (h5py's ``fileobj`` driver).

    Once a write of the HDF5 library has failed, closing the file fails too and the library
    crashes the process at exit (it closes a dataset again whose first close failed). So a
    write that fails here (a full disk, a file-size limit) is kept in :attr:`error` and not
    reported to the library: later writes are dropped, reads of what was dropped give zeros,
    and the export stops at its next chunk (:meth:`_Export.check`) and removes the file.

    Parameters
    ----------
    handle : io.FileIO
        The file, opened ``w+b`` without buffering.
    """

    def __init__(self, handle):
        self._handle = handle
        self._position = 0
        self._end = 0
        #: The first OSError of a write, or None.
        self.error = None

    def seek(self, offset, whence=os.SEEK_SET):
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._end}[whence]
        self._position = base + offset
        return self._position

    def tell(self):
        return self._position

    def read(self, size=-1):
        size = self._end - self._position if size is None or size < 0 else size
        self._handle.seek(self._position)
        pieces, wanted = [], size
        while wanted:
            piece = self._handle.read(wanted)
            if not piece:
                break
            pieces.append(piece)
            wanted -= len(piece)
        data = b"".join(pieces) + bytes(wanted)
        self._position += size
        return data

    def write(self, data):
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                self._handle.seek(self._position)
                done = 0
                while done < len(view):
                    done += self._handle.write(view[done:])
            except OSError as error:
                self.error = error
        self._position += len(view)
        self._end = max(self._end, self._position)
        return len(view)

    def truncate(self, size=None):
        self._end = self._position if size is None else size
        if self.error is None:
            try:
                self._handle.truncate(self._end)
            except OSError as error:
                self.error = error
        return self._end

    def flush(self):
        pass


class _Export:
    """What one export carries along: the compression, the counts and the guarded file."""

    def __init__(self, compression):
        self.compression = compression
        self.counts = {"groups": 0, "arrays": 0, "chunks": 0}
        self.file = None

    def check(self):
        """Raise the first failed write, if any."""
        if self.file is not None and self.file.error is not None:
            raise self.file.error


def _members(group):
    """Arrays and groups of ``group`` by name; leases and temporary files are not members."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Object at .* is not recognized", category=ZarrUserWarning
        )
        return sorted(group.members(), key=lambda item: item[0])


def _export_group(group, h5group, job):
    job.counts["groups"] += 1
    _write_attrs(h5group, dict(group.attrs), {"node_type": "group", "zarr_format": 3})
    for name, member in _members(group):
        if isinstance(member, zarr.Group):
            _export_group(member, h5group.create_group(name), job)
        else:
            _export_array(member, h5group, name, job)


def _export_array(array, h5group, name, job):
    import h5py

    job.counts["arrays"] += 1
    meta = array.metadata.to_dict()
    attributes = meta.pop("attributes", {})
    strings = meta["data_type"] == "string"
    options = {}
    if job.compression != "none" and array.size:
        options = {"compression": job.compression, "shuffle": not strings}
        if job.compression == "gzip":
            options["compression_opts"] = 1
    chunks = tuple(max(1, min(c, s)) for c, s in zip(array.chunks, array.shape))
    dataset = h5group.create_dataset(
        name,
        shape=array.shape,
        chunks=chunks if array.size else None,
        dtype=h5py.string_dtype() if strings else np.dtype(array.dtype),
        fillvalue=None if strings else array.fill_value,
        **options,
    )
    reader = None if strings else ChunkReader(array)
    stored = set(list_keys(array.store_path.store, chunk_prefix(array.path)))
    indices = [] if strings else [i for i in range(reader.nchunks) if reader.key(i) in stored]
    _write_attrs(dataset, attributes, meta)
    dataset.attrs[CHUNKS_ATTR] = json.dumps(indices)
    if strings:
        if array.size:
            dataset[...] = read_span(array)  # object array, each chunk bounded
            job.counts["chunks"] += 1
        return
    for window in range(0, len(indices), WINDOW):
        batch = indices[window : window + WINDOW]
        for index, data in zip(batch, _load_many(reader, batch)):
            start = index * reader.rows
            dataset[start : start + data.shape[0]] = data
            job.counts["chunks"] += 1
            job.check()


def _load_many(reader, indices):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, min(len(indices), 4))) as pool:
        return list(pool.map(reader.load, indices))


def _write_attrs(h5object, attributes, meta):
    for key, value in attributes.items():
        if key in (META_ATTR, CHUNKS_ATTR):
            raise StoreFormatError(f"attribute name {META_ATTR!r} is reserved for HDF5 export")
        h5object.attrs[key] = json.dumps(value, sort_keys=True)
    h5object.attrs[META_ATTR] = json.dumps(meta, sort_keys=True)
