"""Opening a feature store: where it lives, zarr's open modes, store-level attributes.

A local directory, also when named by a ``file://`` URL, is opened with zarr's ``LocalStore``,
which writes every chunk and metadata document to a temporary file and renames it into place
(zarr >= 3.1.3): a kill or a full disk never leaves a half-written chunk. A new local store is
built in a temporary directory beside its target and renamed into place, so two processes
creating it at once end up sharing one complete store.
"""

import copy
import os
import shutil
from collections.abc import MutableMapping
from pathlib import Path

import zarr

from featurestore import __version__
from featurestore.errors import StoreExistsError, StoreFormatError
from featurestore.provenance import package_versions, utc_now
from featurestore.store.clip_table import create_clip_arrays
from featurestore.store.files import build_path, remove_stale_builds
from featurestore.store.layout import FORMAT, FORMAT_VERSION, normalise_params

MODES = ("r", "r+", "a", "w", "w-")
#: URL schemes that name a local directory (opened with zarr's LocalStore, not through fsspec).
LOCAL_SCHEMES = ("file://", "local://")


class StoreAttrs(MutableMapping):
    """Store-level attributes (JSON values), saved in the root group's attributes.

    ``avscene`` is reserved: it holds the format, block size, clip count, creation time and
    versions recorded when the store was made. Setting or deleting an attribute takes the
    store's setup lease and re-reads the attributes first, so that concurrent processes never
    write back a stale copy of the others' attributes.
    """

    def __init__(self, store):
        self._store = store

    def __getitem__(self, key):
        return copy.deepcopy(self._store._group.attrs[key])

    def __setitem__(self, key, value):
        self._store._require_writable()
        if key == "avscene":
            raise StoreFormatError("store attribute 'avscene' is reserved")
        value = normalise_params(value, name=f"attrs[{key!r}]")
        with self._store._setup():
            self._store._group.attrs[key] = value

    def __delitem__(self, key):
        self._store._require_writable()
        if key == "avscene":
            raise StoreFormatError("store attribute 'avscene' is reserved")
        with self._store._setup():
            del self._store._group.attrs[key]

    def __iter__(self):
        return iter(list(self._store._group.attrs))

    def __len__(self):
        return len(self._store._group.attrs)

    def __repr__(self):
        return repr(dict(self))


def resolve_location(where):
    """(what zarr opens, a label for messages) for a path, URL or store object.

    A local path comes back as an absolute path string; a ``file://`` URL as the same path.
    """
    if isinstance(where, (str, os.PathLike)):
        text = os.fspath(where)
        scheme = next((s for s in LOCAL_SCHEMES if text.startswith(s)), None)
        if scheme:
            text = text[len(scheme):]
        elif "://" in text or "::" in text:
            return text, text
        path = str(Path(text).expanduser().absolute())
        return path, path
    if hasattr(where, "list_prefix"):
        return where, f"<{type(where).__name__}>"
    raise StoreFormatError(f"cannot open a feature store from a {type(where).__name__}")


def local_directory(target):
    """The Path of a target from :func:`resolve_location` that is a local directory, else None."""
    return Path(target) if isinstance(target, str) and "://" not in target and \
        "::" not in target else None


def zarr_options(target, storage_options, label):
    """Keyword arguments of ``zarr.open_group`` for ``target``."""
    if not storage_options:
        return {}
    if local_directory(target) is not None:
        raise StoreFormatError(f"storage_options apply to fsspec URLs, not to the local "
                               f"directory {label}")
    return {"storage_options": storage_options}


def group_exists(target, options, label):
    """True if ``target`` holds a zarr group."""
    try:
        zarr.open_group(target, mode="r", **options)
    except FileNotFoundError:
        return False
    except (ValueError, TypeError) as error:
        raise StoreFormatError(f"{label} is not a zarr v3 group: {error}") from None
    return True


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
        except OSError:                    # something is there now
            if not group_exists(str(local), {}, label):
                raise StoreExistsError(f"{label} exists already and is not a feature "
                                       f"store") from None
            if mode == "w-":
                raise StoreExistsError(f"{label} exists already (mode 'w-')") from None
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return zarr.open_group(str(local), mode="r+")


def _initialise(group, block_clips):
    create_clip_arrays(group)
    group.create_group("features")
    group.attrs["avscene"] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "block_clips": int(block_clips),
        "n_clips": 0, "created": utc_now(), "avscene_version": __version__,
        "package_versions": package_versions(),
        "layout": "see docs/store-format.md: clips/<column> (clip,); features/<name>/{values (row, dim), "
                  "timestamps (row,), offset|count|status|reason (clip,)}",
    }
    return group
