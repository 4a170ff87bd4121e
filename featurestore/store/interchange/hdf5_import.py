"""Importing a store from an HDF5 file written by :func:`~featurestore.store.interchange.hdf5_export.export_hdf5`.

The file may come from anyone, so nothing in it is followed or trusted before it is checked:

- links are inspected before anything is opened: soft links, external links and user-defined
  links are refused, and so are groups nested deeper than a store's;
- a dataset with HDF5 external storage (raw data in another file), a virtual dataset (data
  mapped from other files) or a filter other than gzip, shuffle, fletcher32 and lzf is refused;
- every dataset must match the zarr metadata recorded beside it (``_zarr``): the same shape and
  data type, codecs that avscene writes, chunks split along rows only and of bounded size, and a
  list of stored chunks inside the array;
- names must be plain path components (letters, digits, ``_ - .``; not starting with ``.``).

Each refusal is one line naming the file and the dataset or link. Data is copied one chunk at a
time. The store is built in a temporary directory beside the target (for fsspec URLs and store
objects: in a local temporary directory), checked with a full verify, and only then renamed
into place (or, for other stores, copied with the root metadata last): an import that fails or
is killed leaves no store at the target, and the next import removes what a killed one left.
Every file of a local import is flushed to the disk before the rename, so a power loss leaves
either no store or the complete one.
"""

import json
from pathlib import Path

import numpy as np
import zarr
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec
from zarr.core.metadata.v3 import ArrayV3Metadata

from featurestore.errors import StoreFormatError, StoreNotFoundError
from featurestore.store.feature_store import FeatureStore
from featurestore.store.interchange.building import build_into_place, new_store_target
from featurestore.store.interchange.hdf5_export import CHUNKS_ATTR, META_ATTR
from featurestore.store.layout import CODECS, MAX_CHUNK_BYTES
from featurestore.store.opening import (
    consolidate,
)

#: Groups below the root in a store: features/<name>/ and segments/<name>/<pooling>/ (arrays
#: sit one level deeper).
MAX_DEPTH = 3
#: HDF5 filters an export may use: deflate (gzip), shuffle, fletcher32, lzf.
FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
#: zarr data types avscene stores.
DATA_TYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "string",
)


def import_hdf5(path, where, *, overwrite=False, storage_options=None):
    """Rebuild a store from a file written by :func:`~featurestore.store.interchange.hdf5_export.export_hdf5`.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.
    where : str, os.PathLike or zarr Store
        Where to create the store (see :meth:`FeatureStore.open`).
    overwrite : bool
        Replace an existing zarr group at ``where`` (never a directory that is not one).
    storage_options : dict, optional
        For fsspec URLs.

    Returns
    -------
    dict
        ``arrays``, ``groups``, ``chunks`` written.

    Raises
    ------
    StoreFormatError
        The file is not an avscene export, holds something refused (module docstring), or the
        store built from it fails verify. Nothing is left at ``where``.
    StoreExistsError
        Something is at ``where`` already (without ``overwrite``, or not a zarr group).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise StoreNotFoundError(f"{path} does not exist")
    new = new_store_target(where, overwrite=overwrite, storage_options=storage_options)
    try:
        opened = h5py.File(path, "r")
    except OSError as error:  # not HDF5 at all (h5py words it as an OSError)
        raise StoreFormatError(
            f"{path} is not an HDF5 file written by avscene export ({error})"
        ) from None
    with opened as h5:
        if META_ATTR not in h5.attrs or "avscene_export" not in h5.attrs:
            raise StoreFormatError(f"{path} was not written by avscene export")
        return build_into_place(
            new, lambda folder: _build(h5, path, folder), overwrite=overwrite, kind="import"
        )


def _build(h5, path, build):
    """Write the store of ``h5`` at the local directory ``build`` (with consolidated metadata)
    and verify it."""
    counts = {"groups": 0, "arrays": 0, "chunks": 0}
    root = zarr.open_group(str(build), mode="w-")
    _import_group(h5, root, counts, path, depth=0)
    consolidate(root)
    with FeatureStore.open(str(build), mode="r") as store:
        problems = store.verify()
    if problems:
        raise StoreFormatError(
            f"{path}: the store it holds fails verify ({len(problems)} "
            f"problems, e.g. {problems[0]}); nothing was imported"
        )
    return counts


def _read_attrs(h5object, where):
    try:
        attributes = {
            key: json.loads(value)
            for key, value in h5object.attrs.items()
            if key not in (META_ATTR, CHUNKS_ATTR, "avscene_export")
        }
        return attributes, json.loads(h5object.attrs[META_ATTR])
    except (KeyError, TypeError, ValueError) as error:
        raise StoreFormatError(f"{where}: attributes are not avscene JSON ({error})") from None


def _members(h5group, path):
    """(name, member, where) of every member, refusing anything but hard links to groups and
    datasets; no link is followed before it is inspected."""
    import h5py

    for name in h5group:
        where = f"{path}:{h5group.name.rstrip('/')}/{name}"
        link = h5group.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink):
            raise StoreFormatError(f"{where}: a soft link (to {link.path}); refused")
        if isinstance(link, h5py.ExternalLink):
            raise StoreFormatError(
                f"{where}: an external link (to {link.filename}:{link.path}); "
                f"refused: an archive must hold its own data"
            )
        if not isinstance(link, h5py.HardLink):
            raise StoreFormatError(f"{where}: a {type(link).__name__}; refused")
        if not name or name[0] == "." or not all(c.isalnum() or c in "_-." for c in name):
            raise StoreFormatError(f"{where}: the name is not a plain path component; refused")
        member = h5group[name]
        if not isinstance(member, (h5py.Group, h5py.Dataset)):
            raise StoreFormatError(
                f"{where}: a {type(member).__name__}, neither a group nor a dataset; refused"
            )
        yield name, member, where


def _import_group(h5group, group, counts, path, *, depth):
    import h5py

    counts["groups"] += 1
    attributes, _ = _read_attrs(h5group, f"{path}:{h5group.name}")
    if attributes:
        group.attrs.update(attributes)
    for name, member, where in _members(h5group, path):
        if isinstance(member, h5py.Group):
            if depth >= MAX_DEPTH:
                raise StoreFormatError(
                    f"{where}: groups nest deeper than in a feature store; refused"
                )
            _import_group(member, group.create_group(name), counts, path, depth=depth + 1)
        else:
            _import_array(member, group, name, counts, where)


def _check_storage(dataset, where):
    """Refuse datasets whose bytes live outside the file or pass through unknown filters."""
    if dataset.external:
        files = ", ".join(sorted({str(entry[0]) for entry in dataset.external}))
        raise StoreFormatError(
            f"{where}: HDF5 external storage (raw data in {files}); refused: "
            f"an archive must hold its own data"
        )
    if dataset.is_virtual:
        raise StoreFormatError(
            f"{where}: a virtual dataset (data mapped from other files); refused"
        )
    plist = dataset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in FILTERS:
            raise StoreFormatError(
                f"{where}: HDF5 filter {code} is not one avscene exports "
                f"with ({', '.join(FILTERS.values())}); refused"
            )


def _metadata(dataset, meta, attributes, where):
    """The zarr metadata recorded for ``dataset``, checked against the dataset itself."""
    import h5py

    if not isinstance(meta, dict) or not isinstance(meta.get("codecs"), list):
        raise StoreFormatError(f"{where}: the recorded zarr metadata is not an array's; refused")
    names = [codec.get("name") if isinstance(codec, dict) else codec for codec in meta["codecs"]]
    unknown = [name for name in names if name not in CODECS]
    if unknown or not names:
        raise StoreFormatError(
            f"{where}: codec {unknown[0] if unknown else None!r} is not one "
            f"avscene writes ({', '.join(CODECS)}); refused"
        )
    if meta.get("data_type") not in DATA_TYPES:
        raise StoreFormatError(
            f"{where}: zarr data type {meta.get('data_type')!r} is not one avscene stores; refused"
        )
    try:
        metadata = ArrayV3Metadata.from_dict({**meta, "attributes": attributes})
    except Exception as error:  # zarr's own validation: many error types
        raise StoreFormatError(
            f"{where}: the recorded zarr metadata is invalid ({str(error).splitlines()[0]})"
        ) from None
    strings = meta["data_type"] == "string"
    dtype_ok = (
        h5py.check_string_dtype(dataset.dtype) is not None
        if strings
        else dataset.dtype == np.dtype(meta["data_type"])
    )
    if tuple(dataset.shape) != tuple(metadata.shape) or not dtype_ok:
        raise StoreFormatError(
            f"{where}: dataset shape {dataset.shape} and dtype "
            f"{dataset.dtype} disagree with the recorded zarr metadata (shape "
            f"{tuple(metadata.shape)}, data type {meta['data_type']}); refused"
        )
    chunks = tuple(metadata.chunks)
    itemsize = 1 if strings else np.dtype(meta["data_type"]).itemsize
    if (
        len(chunks) != len(metadata.shape)
        or tuple(chunks[1:]) != tuple(metadata.shape[1:])
        or int(np.prod(chunks, dtype=np.float64)) * itemsize > MAX_CHUNK_BYTES
    ):
        raise StoreFormatError(
            f"{where}: chunks {chunks} of shape {tuple(metadata.shape)} are "
            f"not a store's (rows only, at most {MAX_CHUNK_BYTES >> 20} MiB)"
        )
    return metadata


def _stored_chunks(dataset, n_chunks, where):
    """The checked list of stored chunk indices recorded for a numeric dataset."""
    try:
        indices = json.loads(dataset.attrs.get(CHUNKS_ATTR, "[]"))
    except (TypeError, ValueError):
        indices = None
    if (
        not isinstance(indices, list)
        or not all(type(i) is int and 0 <= i < n_chunks for i in indices)
        or len(set(indices)) != len(indices)
    ):
        raise StoreFormatError(
            f"{where}: {CHUNKS_ATTR} is not a list of distinct chunk indices "
            f"below {n_chunks}; refused"
        )
    held = dataset.id.get_num_chunks() if dataset.chunks else (1 if dataset.size else 0)
    if len(indices) > held:
        raise StoreFormatError(
            f"{where}: lists {len(indices)} stored chunks but holds {held}; refused"
        )
    return indices


def _import_array(dataset, group, name, counts, where):
    counts["arrays"] += 1
    _check_storage(dataset, where)
    attributes, meta = _read_attrs(dataset, where)
    metadata = _metadata(dataset, meta, attributes, where)
    rows = int(metadata.chunks[0]) if metadata.shape else 1
    n_chunks = -(-int(metadata.shape[0]) // rows) if metadata.shape else 1
    strings = meta["data_type"] == "string"
    indices = None if strings else _stored_chunks(dataset, n_chunks, where)
    codecs = list(metadata.codecs)
    array = group.create_array(
        name,
        shape=metadata.shape,
        chunks=metadata.chunks,
        dtype=metadata.data_type,
        fill_value=metadata.fill_value,
        filters=[c for c in codecs if isinstance(c, ArrayArrayCodec)],
        serializer=next(c for c in codecs if isinstance(c, ArrayBytesCodec)),
        compressors=[c for c in codecs if isinstance(c, BytesBytesCodec)],
        dimension_names=metadata.dimension_names,
        attributes=attributes,
        chunk_key_encoding=metadata.chunk_key_encoding,
    )
    if array.size == 0:
        return
    if strings:  # every chunk; all-empty ones are not stored
        for index in range(n_chunks):
            start = index * rows
            text = np.asarray(dataset.asstr()[start : start + rows], dtype=object)
            _write_chunk(array, start, text)
            counts["chunks"] += 1
        return
    array = array.with_config({"write_empty_chunks": True})  # the same chunks as the export
    for index in indices:
        start = index * rows
        _write_chunk(array, start, dataset[start : start + rows])
        counts["chunks"] += 1


def _write_chunk(array, start, data):
    """Write one chunk's rows (tests interrupt imports here)."""
    array[start : start + data.shape[0]] = data
