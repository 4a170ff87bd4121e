"""HDF5 interchange: a store's groups, arrays, chunk layout and attributes, losslessly.

Every zarr group becomes an HDF5 group and every array a dataset of the same shape and dtype
(strings as UTF-8 variable-length strings). Each zarr attribute is stored as an HDF5 attribute
holding its JSON text; the reserved attribute ``_zarr`` holds the JSON of the zarr metadata
(chunking, codecs, fill value, dimension names), which import uses to rebuild identical arrays.
Chunks that zarr never stored are not written either way (``_zarr_stored_chunks`` lists the
stored ones).
"""

import json
import os
from pathlib import Path

import numpy as np
import zarr
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec
from zarr.core.metadata.v3 import ArrayV3Metadata

from featurestore import __version__
from featurestore.errors import StoreExistsError, StoreFormatError, StoreNotFoundError
from featurestore.provenance import utc_now
from featurestore.store.chunks import ChunkReader, list_keys
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
    partial = path.with_name(path.name + ".partial")
    counts = {"groups": 0, "arrays": 0, "chunks": 0}
    with h5py.File(partial, "w") as h5:
        h5.attrs["avscene_export"] = json.dumps(
            {"format": FORMAT, "source": store.label, "exported": utc_now(),
             "avscene_version": __version__})
        _export_group(store._group, h5, compression, counts)
    os.replace(partial, path)
    return {**counts, "bytes": path.stat().st_size, "path": str(path)}


def _export_group(group, h5group, compression, counts):
    counts["groups"] += 1
    _write_attrs(h5group, dict(group.attrs), {"node_type": "group", "zarr_format": 3})
    for name, member in sorted(group.members(), key=lambda item: item[0]):
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
            dataset[...] = np.asarray(array[...]).astype(object)
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


def import_hdf5(path, where, *, overwrite=False, storage_options=None):
    """Rebuild a store from a file written by :func:`export_hdf5`.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.
    where : str, os.PathLike or zarr Store
        Where to create the store (see :meth:`FeatureStore.open`).
    overwrite : bool
        Replace an existing store (mode ``w``) instead of refusing (mode ``w-``).

    Returns
    -------
    dict
        ``arrays``, ``groups``, ``chunks`` written.
    """
    import h5py

    from featurestore.store.feature_store import FeatureStore
    from featurestore.store.opening import group_exists, resolve_location

    path = Path(path)
    if not path.is_file():
        raise StoreNotFoundError(f"{path} does not exist")
    target, label = resolve_location(where)
    options = {"storage_options": storage_options} if storage_options else {}
    if not overwrite and group_exists(target, options, label):
        raise StoreExistsError(f"{label} exists already (pass overwrite to replace it)")
    counts = {"groups": 0, "arrays": 0, "chunks": 0}
    with h5py.File(path, "r") as h5:
        if META_ATTR not in h5.attrs or "avscene_export" not in h5.attrs:
            raise StoreFormatError(f"{path} was not written by avscene export")
        try:
            root = zarr.open_group(target, mode="w" if overwrite else "w-", **options)
        except FileExistsError:
            raise StoreExistsError(f"{label} exists already") from None
        _import_group(h5, root, counts, path)
    FeatureStore.open(where, mode="r", storage_options=storage_options).close()   # validates
    return counts


def _read_attrs(h5object, path):
    try:
        attributes = {key: json.loads(value) for key, value in h5object.attrs.items()
                      if key not in (META_ATTR, CHUNKS_ATTR, "avscene_export")}
        return attributes, json.loads(h5object.attrs[META_ATTR])
    except (KeyError, TypeError, ValueError) as error:
        raise StoreFormatError(f"{path}:{h5object.name}: attributes are not avscene JSON "
                               f"({error})") from None


def _import_group(h5group, group, counts, path):
    import h5py

    counts["groups"] += 1
    attributes, _ = _read_attrs(h5group, path)
    if attributes:
        group.attrs.update(attributes)
    for name, member in h5group.items():
        if isinstance(member, h5py.Group):
            _import_group(member, group.create_group(name), counts, path)
        else:
            _import_array(member, group, name, counts, path)


def _import_array(dataset, group, name, counts, path):
    counts["arrays"] += 1
    attributes, meta = _read_attrs(dataset, path)
    metadata = ArrayV3Metadata.from_dict({**meta, "attributes": attributes})
    codecs = list(metadata.codecs)
    array = group.create_array(
        name, shape=metadata.shape, chunks=metadata.chunks, dtype=metadata.data_type,
        fill_value=metadata.fill_value,
        filters=[c for c in codecs if isinstance(c, ArrayArrayCodec)],
        serializer=next(c for c in codecs if isinstance(c, ArrayBytesCodec)),
        compressors=[c for c in codecs if isinstance(c, BytesBytesCodec)],
        dimension_names=metadata.dimension_names, attributes=attributes,
        chunk_key_encoding=metadata.chunk_key_encoding,
    )
    if array.size == 0:
        return
    if meta["data_type"] == "string":
        array[...] = np.asarray(dataset.asstr()[...], dtype=object)
        counts["chunks"] += 1
        return
    rows = array.chunks[0]
    array = array.with_config({"write_empty_chunks": True})    # the same chunks as the export
    for index in json.loads(dataset.attrs.get(CHUNKS_ATTR, "[]")):
        start = int(index) * rows
        data = dataset[start:start + rows]
        array[start:start + data.shape[0]] = data
        counts["chunks"] += 1
