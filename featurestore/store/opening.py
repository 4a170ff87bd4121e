"""Opening a feature store: where it lives, zarr's open modes, store-level attributes."""

import copy
import os
from collections.abc import MutableMapping
from pathlib import Path

import zarr

from featurestore import __version__
from featurestore.errors import StoreExistsError, StoreFormatError
from featurestore.provenance import package_versions, utc_now
from featurestore.store.clip_table import create_clip_arrays
from featurestore.store.layout import FORMAT, FORMAT_VERSION, normalise_params

MODES = ("r", "r+", "a", "w", "w-")


class StoreAttrs(MutableMapping):
    """Store-level attributes (JSON values), saved in the root group's attributes.

    ``avscene`` is reserved: it holds the format, block size, clip count, creation time and
    versions recorded when the store was made.
    """

    def __init__(self, store):
        self._store = store

    def __getitem__(self, key):
        return copy.deepcopy(self._store._group.attrs[key])

    def __setitem__(self, key, value):
        self._store._require_writable()
        if key == "avscene":
            raise StoreFormatError("store attribute 'avscene' is reserved")
        self._store._group.attrs[key] = normalise_params(value, name=f"attrs[{key!r}]")

    def __delitem__(self, key):
        self._store._require_writable()
        if key == "avscene":
            raise StoreFormatError("store attribute 'avscene' is reserved")
        del self._store._group.attrs[key]

    def __iter__(self):
        return iter(list(self._store._group.attrs))

    def __len__(self):
        return len(self._store._group.attrs)

    def __repr__(self):
        return repr(dict(self))


def resolve_location(where):
    """(what zarr opens, a label for messages) for a path, URL or store object."""
    if isinstance(where, (str, os.PathLike)):
        text = os.fspath(where)
        if "://" in text:
            return text, text
        path = str(Path(text).expanduser().absolute())
        return path, path
    if hasattr(where, "list_prefix"):
        return where, f"<{type(where).__name__}>"
    raise StoreFormatError(f"cannot open a feature store from a {type(where).__name__}")


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
    """Make an empty store (root attrs, clip table, features group)."""
    if int(block_clips) != block_clips or block_clips < 1:
        raise StoreFormatError(f"block_clips must be a positive integer, not {block_clips!r}")
    try:
        group = zarr.open_group(target, mode="w" if mode == "w" else "w-", **options)
    except FileExistsError:
        raise StoreExistsError(f"{label} exists already and is not a feature store") from None
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
