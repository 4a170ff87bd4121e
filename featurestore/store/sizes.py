"""The stored bytes of every array of a store, for ``avscene info``.

An array's stored bytes are those of every object under its path: its ``zarr.json`` and its
chunks (temporary files left out). A store that is cheap to list (a local directory, a zip
archive, a store in memory) is measured. A store read over a network is never listed: its sizes
are those recorded in the root attribute ``avscene.stored_bytes`` (``{array path: bytes}``),
which :func:`featurestore.store.opening.consolidate` measures and writes with the consolidated
metadata, so after every change of the store's structure and at the end of every extraction run.
"""

import os
import warnings
from pathlib import Path

from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning
from zarr.storage import LocalStore, MemoryStore, ZipStore

from featurestore.errors import StoreFormatError
from featurestore.store.chunks import list_keys, zip_directory
from featurestore.store.concurrency.files import is_temporary
from featurestore.store.concurrency.leases import LEASE_DIR

#: The key of the recorded sizes in the root attribute ``avscene``.
SIZES_KEY = "stored_bytes"


def array_paths(group):
    """Paths (relative to ``group``) of every array below ``group``, sorted."""
    import zarr

    with warnings.catch_warnings():  # leases/ is not a zarr node
        warnings.filterwarnings("ignore", category=ZarrUserWarning)
        members = group.members(max_depth=None)
    return sorted(path for path, node in members if isinstance(node, zarr.Array))


def is_measurable(store):
    """True for a store whose objects are listed without network requests."""
    return (
        isinstance(store, (LocalStore, ZipStore, MemoryStore)) or zip_directory(store) is not None
    )


def measure(group):
    """``{array path: stored bytes}`` of every array below ``group``, from a listing."""
    return attribute(array_paths(group), _object_sizes(group.store, group.path))


def attribute(paths, key_sizes):
    """``{path: bytes}``: the sizes of ``key_sizes`` (``(key, bytes)`` pairs, keys relative to
    the group) summed per array of ``paths``; keys outside every array are left out."""
    sizes = dict.fromkeys(paths, 0)
    for key, size in key_sizes:
        parts = key.split("/")
        owner = next(
            (
                path
                for path in ("/".join(parts[:n]) for n in range(len(parts) - 1, 0, -1))
                if path in sizes
            ),
            None,
        )
        if owner is not None:
            sizes[owner] += int(size)
    return sizes


def _object_sizes(store, prefix):
    """``(key relative to prefix, bytes)`` of every stored object under ``prefix`` except
    leases and temporary files; a local directory is walked without following symlinks."""
    start = f"{prefix}/" if prefix else ""
    directory = zip_directory(store)
    if isinstance(store, LocalStore):
        pairs = _walk(Path(store.root, *prefix.split("/")) if prefix else Path(store.root))
    elif directory is not None:
        pairs = [
            (entry.filename[len(start) :], entry.file_size)
            for entry in directory.infolist()
            if entry.filename.startswith(start)
        ]
    else:
        keys = [key[len(start) :] for key in list_keys(store, prefix)]
        pairs = list(zip(keys, sync(_sizes(store, [start + key for key in keys]))))
    return [
        (key, size)
        for key, size in pairs
        if not is_temporary(key) and key.split("/")[0] != LEASE_DIR
    ]


def _walk(root):
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                yield path.relative_to(root).as_posix(), path.lstat().st_size


async def _sizes(store, keys):
    import asyncio

    return await asyncio.gather(*(store.getsize(key) for key in keys))


def recorded(group, label):
    """The sizes recorded in the root attributes of ``group``, checked, or None."""
    meta = group.attrs.get("avscene")
    sizes = meta.get(SIZES_KEY) if isinstance(meta, dict) else None
    if sizes is None:
        return None
    if not isinstance(sizes, dict) or not all(
        isinstance(path, str) and type(size) is int and 0 <= size < 2**63
        for path, size in sizes.items()
    ):
        raise StoreFormatError(
            f"{label}: avscene.{SIZES_KEY} is not a map of array paths to byte counts"
        )
    return sizes


def record(group, sizes):
    """Write ``sizes`` into the root attribute ``avscene`` of ``group`` (a store's root)."""
    meta = group.attrs.get("avscene")
    if isinstance(meta, dict) and meta.get(SIZES_KEY) != sizes:
        group.attrs["avscene"] = {**meta, SIZES_KEY: sizes}


def array_bytes(group, label):
    """(``{array path: bytes or None}`` for every array below ``group``, how they were found:
    ``"measured"`` or ``"recorded"``). Arrays the recorded sizes do not name get None."""
    if is_measurable(group.store):
        return measure(group), "measured"
    found = recorded(group, label) or {}
    return {path: found.get(path) for path in array_paths(group)}, "recorded"


def bytes_under(sizes, prefix):
    """Stored bytes of the arrays under ``prefix`` ('' for all), or None if any is unknown."""
    chosen = [
        size
        for path, size in sizes.items()
        if not prefix or path == prefix or path.startswith(f"{prefix}/")
    ]
    return None if any(size is None for size in chosen) else sum(chosen)
