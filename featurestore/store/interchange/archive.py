"""One-file zip archives of a store (``avscene pack`` / ``avscene unpack``).

An archive is a zarr v3 store in a zip file: every key of the store is one zip entry of the
same name, **stored** (not compressed again: the chunks are compressed already, and a stored
entry can be read in place with one range request). Chunks are copied byte for byte, so each
keeps its crc32c checksum. The root ``zarr.json`` is written last and carries the consolidated
metadata of the archive's contents, so that a reader over HTTP opens it with a constant number
of requests. Leases and temporary files are not copied. Entries carry a fixed time stamp, so
packing the same store twice gives the same bytes.

``segments_only`` leaves out the frames (every feature's ``values`` and ``timestamps``): the
archive keeps the clip table, each feature's attributes (its provenance) and index, and the
stored segments, which must all be up to date. Its root attribute ``avscene.segments_only`` is
true.

Packing writes a temporary file beside the target and renames it into place after opening the
result as a store; unpacking builds a directory beside the target, verifies it fully and renames
it into place, so neither leaves a half-written result, also when the disk fills.

What is packed and unpacked is what :mod:`~featurestore.store.inventory` calls a store's files:
pack refuses a store holding anything else (in a folder: links, FIFOs, unknown names), and
unpack reads an archive only once its zip directory passed the checks there, drops leases and
temporary files, and refuses an archive whose node documents differ from their copies in the
root's consolidated metadata.
"""

import contextlib
import json
import os
import zipfile
from pathlib import Path

from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, MemoryStore

from featurestore.errors import StoreExistsError, StoreFormatError, StoreNotFoundError
from featurestore.store.chunks import list_keys
from featurestore.store.concurrency.files import (
    build_path,
    remove_stale_builds,
    reporting_write_errors,
)
from featurestore.store.feature_store import FeatureStore
from featurestore.store.interchange.building import build_into_place, new_store_target
from featurestore.store.inventory import (
    METADATA_NAME,
    check_folder,
    chunks_outside,
    classify,
    consolidated_mismatches,
    key_kind,
    refusal,
    shown,
)
from featurestore.store.opening import (
    archive_store,
    consolidate,
    is_archive_name,
    open_existing,
    resolve_location,
)
from featurestore.store.sizes import array_paths, attribute

ROOT_KEY = "zarr.json"
#: The time stamp of every entry (the earliest a zip file can hold): packing is reproducible.
ENTRY_TIME = (1980, 1, 1, 0, 0, 0)
#: The arrays a segments-only archive leaves out of every feature.
FRAME_ARRAYS = ("values", "timestamps")


def pack_store(store, path, *, segments_only=False, overwrite=False):
    """Write ``store`` into the zip archive ``path`` (entries stored, not recompressed).

    Parameters
    ----------
    store : FeatureStore
    path : str or os.PathLike
        The archive; its name must end in ``.zip`` (``tau.zarr.zip``).
    segments_only : bool
        Leave out the frames; keep the clip table, the features' attributes and index, and the
        stored segments (which must exist and be up to date).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    dict
        ``path``, ``entries``, ``bytes`` (of the archive), ``store_bytes`` (of the entries
        copied) and ``segments_only``.
    """
    path = Path(path)
    if not is_archive_name(path.name):
        raise StoreFormatError(
            f"{path}: an archive's name must end in .zip (tau.zarr.zip), "
            f"so that every command opens it as one"
        )
    if path.exists() and not overwrite:
        raise StoreExistsError(f"{path} exists already (pass overwrite to replace it)")
    if segments_only:
        _check_segments(store)
    source, prefix = store.zarr_location()
    keys = [
        key
        for key in _store_keys(source, prefix, store.label)
        if not (segments_only and _is_frame_key(key))
    ]
    remove_stale_builds(path, "pack")
    partial = build_path(path, "pack")
    with reporting_write_errors(path, "the archive"):
        try:
            copied = _write_archive(partial, source, prefix, keys, segments_only=segments_only)
            with (
                contextlib.closing(archive_store(str(partial))) as written,
                FeatureStore.open(written, mode="r") as packed,
            ):
                _ = packed.features  # opens as a store before it takes the name
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return {
        "path": str(path),
        "entries": len(keys),
        "bytes": path.stat().st_size,
        "store_bytes": copied,
        "segments_only": bool(segments_only),
    }


def _write_archive(partial, source, prefix, keys, *, segments_only):
    """Write the entries ``keys`` of ``source`` into the new zip file ``partial``, the root
    ``zarr.json`` (with consolidated metadata) last, and flush it to the disk; return the bytes
    copied."""
    copied = 0
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        documents, key_sizes = {}, {}
        for key in keys:
            data = _get(source, _join(prefix, key))
            copied += len(data)
            key_sizes[key] = len(data)
            if key.endswith(ROOT_KEY):
                documents[key] = data
            if key != ROOT_KEY:
                archive.writestr(_entry(key), data)
        root = _consolidated_root(documents, key_sizes, segments_only=segments_only)
        archive.writestr(_entry(ROOT_KEY), root)
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    return copied


def _check_segments(store):
    """A segments-only archive needs stored segments, all made from the current frames."""
    stored = store.stored_segments()
    if not stored:
        raise StoreFormatError(
            f"{store.label} has no stored segments; write them first "
            f"(avscene segments STORE --pooling mean)"
        )
    stale = [f"{entry['feature']} {entry['pooling']}" for entry in stored if not entry["fresh"]]
    if stale:
        raise StoreFormatError(
            f"{store.label}: the stored segments {', '.join(stale)} were made "
            f"from other frames; rewrite them first (avscene segments)"
        )


def _store_keys(source, prefix, label):
    """Metadata and chunk keys of the store below ``prefix``, relative to it; leases and
    temporary files are left out, and anything else (or, in a local folder, a link or a file
    that is not a regular one) is refused with one line."""
    if isinstance(source, LocalStore):
        folder = Path(source.root).joinpath(*prefix.split("/")) if prefix else Path(source.root)
        kinds = check_folder(folder, label)
    else:
        sizes = {
            (key[len(prefix) + 1 :] if prefix else key): 0 for key in list_keys(source, prefix)
        }
        kinds, strangers = classify(sizes)
        if strangers:
            raise refusal(label, strangers)
    return sorted(key for key, kind in kinds.items() if kind in ("metadata", "chunk"))


def _is_frame_key(key):
    """True for a key of a feature's ``values`` or ``timestamps`` array."""
    parts = key.split("/")
    return len(parts) >= 4 and parts[0] == "features" and parts[2] in FRAME_ARRAYS


def _join(prefix, key):
    return f"{prefix}/{key}" if prefix else key


def _get(store, key):
    buffer = sync(store.get(key, prototype=default_buffer_prototype()))
    if buffer is None:
        raise StoreFormatError(f"{key} vanished while the store was packed")
    return buffer.to_bytes()


def _entry(key):
    info = zipfile.ZipInfo(key, date_time=ENTRY_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _consolidated_root(documents, key_sizes, *, segments_only):
    """The archive's root ``zarr.json``: the store's, with the consolidated metadata of the
    metadata ``documents`` ({key: bytes}) that the archive holds, the stored bytes of its arrays
    (from ``key_sizes``, {key: bytes} of every entry) and, for a segments-only archive,
    ``avscene.segments_only`` set."""
    scratch = MemoryStore()
    prototype = default_buffer_prototype()
    for key, data in documents.items():
        if key == ROOT_KEY:
            root = json.loads(data)
            root.pop("consolidated_metadata", None)
            if segments_only:
                root["attributes"]["avscene"]["segments_only"] = True
            data = json.dumps(root, indent=2).encode()
        sync(scratch.set(key, prototype.buffer.from_bytes(data)))
    group = open_existing(scratch, {}, "<archive>", writable=True)
    consolidate(group, sizes=attribute(array_paths(group), key_sizes.items()))
    return _get(scratch, ROOT_KEY)


def unpack_archive(path, where, *, overwrite=False, storage_options=None):
    """Restore a writable store from an archive written by :func:`pack_store`.

    Parameters
    ----------
    path : str or os.PathLike
        The archive: a local file or an fsspec URL (``http://host/tau.zarr.zip``).
    where : str or os.PathLike
        The store to create: a local directory or an fsspec URL.
    overwrite : bool
        Replace an existing zarr group at ``where`` (never a directory that is not one).
    storage_options : dict, optional
        For an archive URL.

    Returns
    -------
    dict
        ``entries``, ``bytes`` written and ``segments_only``.

    Raises
    ------
    StoreFormatError
        The archive is refused by :func:`~featurestore.store.opening.archive_store` (entries
        that are compressed, overlapping, oversized, or named as no store key), a node's
        ``zarr.json`` differs from its copy in the consolidated metadata, or the unpacked store
        fails verify; nothing is left at ``where``.
    StoreWriteError
        The disk filled; nothing is left at ``where``, a previous store is untouched.
    StoreExistsError
        Something is at ``where`` already (without ``overwrite``, or not a zarr group).
    """
    location = os.fspath(path)
    if "://" not in location and not Path(location).is_file():
        raise StoreNotFoundError(f"{location} does not exist")
    _, label = resolve_location(where)
    if is_archive_name(label):
        raise StoreFormatError(f"{label}: unpack writes a store, not another archive")
    new = new_store_target(where, overwrite=overwrite)
    source = archive_store(location, storage_options=storage_options)
    try:
        keys = _unpacked_keys(source)
        _check_consolidated(source, keys, location)
        return build_into_place(
            new,
            lambda folder: _build(source, keys, location, folder),
            overwrite=overwrite,
            kind="unpack",
        )
    finally:
        source.close()


def _unpacked_keys(source):
    """The metadata and chunk keys of an archive (whose names :func:`archive_store` checked);
    folder entries of other zip tools, leases and temporary files are dropped."""
    keys = [key for key in list_keys(source, "") if not key.endswith("/")]
    metadata = {key for key in keys if key_kind(key, ()) == "metadata"}
    return sorted(key for key in keys if key_kind(key, metadata) in ("metadata", "chunk"))


def _check_consolidated(source, keys, location):
    """Refuse an archive whose node documents differ from their copies in the root's
    consolidated metadata (readers of the archive use the copies, the unpacked store the
    documents, so the two would be different stores), or that holds chunks outside their
    arrays (verify of the unpacked store would refuse them after writing them all)."""
    documents = {
        key: _get(source, key)
        for key in keys
        if key == METADATA_NAME or key.endswith("/" + METADATA_NAME)
    }
    problems = consolidated_mismatches(documents)
    if problems:
        raise StoreFormatError(
            f"{location}: {problems[0]} ({len(problems)} differences); "
            f"refused: readers of the archive and of the unpacked store "
            f"would see different stores"
        )
    outside = chunks_outside(keys, documents.get(METADATA_NAME, b"{}"))
    if outside:
        raise StoreFormatError(
            f"{location}: {len(outside)} entries are chunks outside their "
            f"arrays, e.g. '{shown(outside[0])}'; refused before writing"
        )


def _build(source, keys, location, build):
    """Write every entry under the local directory ``build`` and verify the store there."""
    destination = LocalStore(build)
    prototype = default_buffer_prototype()
    written = 0
    for key in keys:
        data = _get(source, key)
        written += len(data)
        sync(destination.set(key, prototype.buffer.from_bytes(data)))
    destination.close()
    with FeatureStore.open(str(build), mode="r") as store:
        problems = store.verify()
        segments_only = store.segments_only
    if problems:
        raise StoreFormatError(
            f"{location}: the unpacked store fails verify ({len(problems)} "
            f"problems), e.g. {problems[0]}"
        )
    return {"entries": len(keys), "bytes": written, "segments_only": segments_only}
