"""Opening a feature store: where it lives, zarr's open modes, store-level attributes.

A local directory, also when named by a ``file://`` URL, is opened with zarr's ``LocalStore``,
which writes every chunk and metadata document to a temporary file and renames it into place
(zarr >= 3.1.3): a kill or a full disk never leaves a half-written chunk. A new local store is
built in a temporary directory beside its target and renamed into place, so two processes
creating it at once end up sharing one complete store.

A path or URL ending in ``.zip`` is a one-file archive written by ``avscene pack``
(:mod:`~featurestore.store.interchange.archive`): it is opened in place, read-only, with zarr's ``ZipStore``
(a local file) or fsspec's zip file system over the URL's own file system (``http://``,
``s3://``...), once its zip directory passed
:func:`~featurestore.store.inventory.check_zip_directory`. A local store folder is walked
without following links before zarr opens it, and refused if it holds anything but the files of
a store (:func:`~featurestore.store.inventory.check_folder`).

A finished store carries zarr's consolidated metadata: the metadata of every group and array,
inline in the root ``zarr.json``, rewritten after every change of the store's structure
(:func:`consolidate`) together with the stored bytes of every array
(:mod:`~featurestore.store.sizes`). Read-only opens of a URL or an archive use it, so that opening
a store over HTTP or from object storage costs one request instead of one per array; local
directories and writable opens read every document.

``http://`` and ``https://`` URLs (stores and archives) are read with avscene's own bounded
client (:mod:`~featurestore.store.remote`): read-only, never listed, so only through the
consolidated metadata.
"""

import contextlib
import copy
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import MutableMapping
from pathlib import Path

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning
from zarr.storage import FsspecStore, LocalStore, ZipStore

from featurestore import __version__
from featurestore.errors import StoreExistsError, StoreFormatError
from featurestore.outputs import LOCAL_SCHEMES
from featurestore.provenance import package_versions, utc_now
from featurestore.store.chunks import zip_directory
from featurestore.store.clip_table import create_clip_arrays
from featurestore.store.concurrency.files import build_path, remove_stale_builds
from featurestore.store.inventory import check_folder, check_zip_directory
from featurestore.store.layout import FORMAT, FORMAT_VERSION, normalise_params
from featurestore.store.remote import (
    HttpStore,
    http_options,
    is_http_url,
    open_http_archive,
    refuse_chained_http,
    require_consolidated,
)
from featurestore.store.sizes import measure, record
from featurestore.store.zarr_compat import zip_file

MODES = ("r", "r+", "a", "w", "w-")
#: A store location ending in this (any case) is a one-file zip archive, opened read-only.
ARCHIVE_SUFFIX = ".zip"


class StoreAttrs(MutableMapping):
    """Store-level attributes (JSON values), saved in the root group's attributes.

    ``avscene`` is reserved: it holds the format, block size, clip count, creation time and
    versions recorded when the store was made. Setting or deleting an attribute takes the
    store's setup lease and re-reads the attributes first, so that concurrent processes never
    write back a stale copy of the others' attributes.

    Parameters
    ----------
    group : zarr.Group
        The store's root group, read from.
    check_writable : callable
        Called before every change; raises if the store may not be changed.
    changing : callable
        Returns a context manager that holds the store's setup lease and gives the root group
        as re-read under it; the change is made there, and that group is read from afterwards.
    """

    def __init__(self, group, *, check_writable, changing):
        self._root = group
        self._check_writable = check_writable
        self._changing = changing

    def __getitem__(self, key):
        return copy.deepcopy(self._root.attrs[key])

    def __setitem__(self, key, value):
        self._check_writable()
        if key == "avscene":
            raise StoreFormatError("store attribute 'avscene' is reserved")
        value = normalise_params(value, name=f"attrs[{key!r}]")
        with self._changing() as group:
            group.attrs[key] = value
            self._root = group

    def __delitem__(self, key):
        self._check_writable()
        if key == "avscene":
            raise StoreFormatError("store attribute 'avscene' is reserved")
        with self._changing() as group:
            del group.attrs[key]
            self._root = group

    def __iter__(self):
        return iter(list(self._root.attrs))

    def __len__(self):
        return len(self._root.attrs)

    def __repr__(self):
        return repr(dict(self))


def resolve_location(where, *, storage_options=None):
    """(what zarr opens, a label for messages) for a path, URL or store object.

    A local path comes back as an absolute path string; a ``file://`` URL as the same path; a
    path or URL ending in ``.zip`` as a read-only zarr store over the archive
    (:func:`archive_store`; ``storage_options`` then go to the URL's file system).
    """
    if isinstance(where, (str, os.PathLike)):
        text = os.fspath(where)
        scheme = next((s for s in LOCAL_SCHEMES if text.startswith(s)), None)
        if scheme:
            text = text[len(scheme) :]
        elif "://" in text or "::" in text:
            refuse_chained_http(text)
            if is_archive_name(text):
                return archive_store(text, storage_options=storage_options), text
            if is_http_url(text):
                return HttpStore(text, http_options(storage_options)), text
            return text, text
        path = str(Path(text).expanduser().absolute())
        if is_archive_name(path):
            if storage_options:
                raise StoreFormatError(
                    f"storage_options apply to fsspec URLs, not to the local file {path}"
                )
            return archive_store(path), path
        return path, path
    if hasattr(where, "list_prefix"):
        return where, f"<{type(where).__name__}>"
    raise StoreFormatError(f"cannot open a feature store from a {type(where).__name__}")


def is_archive_name(text):
    """True for a path or URL naming a zip archive (it ends in ``.zip``)."""
    return str(text).rstrip("/").lower().endswith(ARCHIVE_SUFFIX)


def is_archive(target):
    """True when ``target`` (from :func:`resolve_location`) is a zip archive."""
    if isinstance(target, (ZipStore, _MissingArchive)):
        return True
    return isinstance(target, FsspecStore) and target.fs.protocol in ("zip", ("zip",))


def archive_store(location, *, storage_options=None):
    """A read-only zarr store over the zip archive at a local path or an fsspec URL.

    A local file is read with zarr's ``ZipStore``; a URL with fsspec's ``zip`` file system
    layered on the URL's file system, which reads the archive's directory and then each entry
    with range requests, never the whole file.
    """
    if "://" not in location and "::" not in location:
        store = ZipStore(location, mode="r")
        try:
            zip_file(store)  # zarr opens it lazily; list_keys needs it open
        except FileNotFoundError:
            return _MissingArchive(location)
        except (OSError, zipfile.BadZipFile) as error:
            raise StoreFormatError(f"{location} is not a readable zip archive: {error}") from None
        _checked_archive(store, location, local_headers=True)
        return store
    if is_http_url(location):
        try:
            return open_http_archive(location, storage_options)
        except FileNotFoundError:
            return _MissingArchive(location)
    import fsspec
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    try:
        fs = fsspec.filesystem("zip", fo=location, target_options=storage_options or {})
    except FileNotFoundError:
        return _MissingArchive(location)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise StoreFormatError(f"{location} is not a readable zip archive: {error}") from None
    store = FsspecStore(AsyncFileSystemWrapper(fs, asynchronous=True), read_only=True, path="")
    return _checked_archive(store, location, local_headers=False)


def _checked_archive(store, location, *, local_headers):
    """``store`` once its zip directory passed the checks of
    :func:`~featurestore.store.inventory.check_zip_directory` (closed and refused otherwise)."""
    try:
        check_zip_directory(zip_directory(store), location, local_headers=local_headers)
    except (OSError, zipfile.BadZipFile) as error:
        store.close()
        raise StoreFormatError(f"{location} is not a readable zip archive: {error}") from None
    except BaseException:
        store.close()
        raise
    return store


class _MissingArchive(zarr.storage.MemoryStore):
    """Stands for an archive URL that does not exist: an empty, read-only store."""

    def __init__(self, location):
        super().__init__(read_only=True)
        self.location = location


def local_directory(target):
    """The Path of a target from :func:`resolve_location` that is a local directory, else None."""
    return (
        Path(target)
        if isinstance(target, str) and "://" not in target and "::" not in target
        else None
    )


def zarr_options(target, storage_options, label):
    """Keyword arguments of ``zarr.open_group`` for ``target``."""
    if not storage_options or not isinstance(target, str):
        return {}
    if local_directory(target) is not None:
        raise StoreFormatError(
            f"storage_options apply to fsspec URLs, not to the local directory {label}"
        )
    return {"storage_options": storage_options}


def group_exists(target, options, label):
    """True if ``target`` holds a zarr group."""
    return open_existing(target, options, label, writable=False) is not None


def open_existing(target, options, label, *, writable):
    """The root group at ``target``, or None if there is none.

    A read-only open of a store elsewhere than in a local directory (a URL, an archive, a
    store object) uses the consolidated metadata when the store has it. A local directory and
    every writable open read each group's and array's own metadata, which costs nothing
    locally and sees changes made by writers that do not keep the consolidated copy current.
    A local folder holding a root ``zarr.json`` is first checked to hold nothing but a store's
    files (no links, FIFOs or unknown names).
    """
    consolidated = None if not writable and local_directory(target) is None else False
    folder = local_directory(target) if not isinstance(target, LocalStore) else target.root
    if folder is not None and os.path.lexists(os.path.join(folder, "zarr.json")):
        check_folder(folder, label)  # refuses links and files of no store, before zarr
    try:
        with _quiet():
            group = zarr.open_group(
                target,
                mode="r+" if writable else "r",
                zarr_format=3,
                use_consolidated=consolidated,
                **options,
            )
    except (FileNotFoundError, KeyError):
        return None
    except (ValueError, TypeError, RecursionError) as error:  # (deeply nested JSON)
        raise StoreFormatError(
            f"{label} is not a zarr v3 group: "
            f"{str(error).splitlines()[0] if str(error) else 'too deep'}"
        ) from None
    if isinstance(target, HttpStore):
        require_consolidated(group, label)
    return group


@contextlib.contextmanager
def _quiet():
    """Silence zarr's notes that consolidated metadata is not part of the v3 specification
    and that ``leases/`` is not a zarr node."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ZarrUserWarning)
        yield


def consolidate(group, *, sizes=None):
    """Rewrite the consolidated metadata of the store whose root group is ``group``, and record
    the stored bytes of its arrays in the root attribute ``avscene`` (``sizes``, or measured).

    Called after every change of the store's structure (clips appended, a feature declared,
    attributes set, segments written) and at the end of extraction runs
    (:meth:`~featurestore.store.feature_store.FeatureStore.record_sizes`); readers that ignore
    consolidated metadata never see it.
    """
    with _quiet():
        record(group, measure(group) if sizes is None else sizes)
        zarr.consolidate_metadata(group.store, path=group.path or None, zarr_format=3)


def drop_consolidated(group):
    """Remove the consolidated metadata from the root document (before a change that rewrites
    metadata a consolidated reader would trust), so that readers read each document until
    :func:`consolidate` runs again."""
    key = f"{group.path}/zarr.json" if group.path else "zarr.json"
    store = group.store
    buffer = sync(store.get(key, prototype=default_buffer_prototype()))
    if buffer is None:
        return
    document = json.loads(buffer.to_bytes())
    if document.pop("consolidated_metadata", None) is not None:
        data = json.dumps(document, indent=2).encode()
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(data)))


def create_store_group(target, options, label, *, mode, block_clips):
    """Make an empty store (root attrs, clip table, features group); return its root group.

    A new local store (modes ``a`` and ``w-``) is built beside the target and renamed into
    place; if another process created the store meanwhile, mode ``a`` opens that one.
    """
    if int(block_clips) != block_clips or block_clips < 1:
        raise StoreFormatError(f"block_clips must be a positive integer, not {block_clips!r}")
    local = local_directory(target)
    if local is None or mode == "w":
        try:
            group = zarr.open_group(target, mode="w" if mode == "w" else "w-", **options)
        except FileExistsError:
            raise StoreExistsError(f"{label} exists already and is not a feature store") from None
        return _initialise(group, block_clips)
    remove_stale_builds(local, "create")
    build = build_path(local, "create")
    try:
        _initialise(zarr.open_group(str(build), mode="w-"), block_clips)
        try:
            os.rename(build, local)
        except OSError:  # something is there now
            if not group_exists(str(local), {}, label):
                raise StoreExistsError(
                    f"{label} exists already and is not a feature store"
                ) from None
            if mode == "w-":
                raise StoreExistsError(f"{label} exists already (mode 'w-')") from None
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return zarr.open_group(str(local), mode="r+", zarr_format=3, use_consolidated=False)


def _initialise(group, block_clips):
    """Write an empty store's root attributes, clip arrays and features group (consolidated)."""
    create_clip_arrays(group)
    group.create_group("features")
    group.attrs["avscene"] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "block_clips": int(block_clips),
        "n_clips": 0,
        "created": utc_now(),
        "avscene_version": __version__,
        "package_versions": package_versions(),
        "layout": "see docs/store-format.md: clips/<column> (clip,); features/<name>/{values (row, dim), "
        "timestamps (row,), offset|count|status|reason (clip,)}; segments/<feature>/"
        "<pooling>/{values (segment, dim), position|second|count (segment,)}",
    }
    consolidate(group)
    return group
