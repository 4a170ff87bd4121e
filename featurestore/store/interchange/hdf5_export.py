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
from featurestore.store.concurrency.files import build_path, fsync_directory, remove_stale_builds
from featurestore.store.layout import FORMAT

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
    """
    import h5py

    if compression not in EXPORT_COMPRESSIONS:
        raise StoreFormatError(f"HDF5 compression must be one of {EXPORT_COMPRESSIONS}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreExistsError(f"{path} exists already (pass overwrite to replace it)")
    remove_stale_builds(path, "export")
    partial = build_path(path, "export")
    counts = {"groups": 0, "arrays": 0, "chunks": 0}
    try:
        with h5py.File(partial, "w") as h5:
            h5.attrs["avscene_export"] = json.dumps(
                {"format": FORMAT, "source": store.label, "exported": utc_now(),
                 "avscene_version": __version__})
            _export_group(store._group, h5, compression, counts)
            h5.flush()
        with open(partial, "rb+") as handle:      # on the disk before it takes the name
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return {**counts, "bytes": path.stat().st_size, "path": str(path)}


def _members(group):
    """Arrays and groups of ``group`` by name; leases and temporary files are not members."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Object at .* is not recognized",
                                category=ZarrUserWarning)
        return sorted(group.members(), key=lambda item: item[0])


def _export_group(group, h5group, compression, counts):
    counts["groups"] += 1
    _write_attrs(h5group, dict(group.attrs), {"node_type": "group", "zarr_format": 3})
    for name, member in _members(group):
        if isinstance(member, zarr.Group):
            _export_group(member, h5group.create_group(name), compression, counts)
        else:
            _export_array(member, h5group, name, compression, counts)


def _export_array(array, h5group, name, compression, counts):
    import h5py

    counts["arrays"] += 1
    meta = array.metadata.to_dict()
    attributes = meta.pop("attributes", {})
    strings = meta["data_type"] == "string"
    options = {}
    if compression != "none" and array.size:
        options = {"compression": compression, "shuffle": not strings}
        if compression == "gzip":
            options["compression_opts"] = 1
    chunks = tuple(max(1, min(c, s)) for c, s in zip(array.chunks, array.shape))
    dataset = h5group.create_dataset(
        name, shape=array.shape, chunks=chunks if array.size else None,
        dtype=h5py.string_dtype() if strings else np.dtype(array.dtype),
        fillvalue=None if strings else array.fill_value, **options)
    reader = None if strings else ChunkReader(array)
    stored = set(list_keys(array.store_path.store, array.path + "/c"))
    indices = [] if strings else [i for i in range(reader.nchunks) if reader.key(i) in stored]
    _write_attrs(dataset, attributes, meta)
    dataset.attrs[CHUNKS_ATTR] = json.dumps(indices)
    if strings:
        if array.size:
            dataset[...] = read_span(array)         # object array, each chunk bounded
            counts["chunks"] += 1
        return
    for window in range(0, len(indices), WINDOW):
        batch = indices[window:window + WINDOW]
        for index, data in zip(batch, _load_many(reader, batch)):
            start = index * reader.rows
            dataset[start:start + data.shape[0]] = data
            counts["chunks"] += 1


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
