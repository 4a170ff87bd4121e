"""Local files avscene writes beside zarr's: temporary names, atomic replacement, leftovers.

Whatever avscene writes to a local file system beside zarr (leases, HDF5 exports, a new store
or an import being built) is first written under a temporary name ending in ``.partial`` and
renamed into place once complete, as zarr's ``LocalStore`` does for chunks and metadata
(``<key>.<32 hex digits>.partial``). A name ending in ``.partial`` is therefore always the
leftover of a write that did not finish (a kill, a full disk), never part of a store.

A file or directory being built beside a target (``.<name>.<purpose>@<host>@<pid>@<hex>.partial``)
names the process building it, so a later run can remove the leftovers of a killed one.
The temporary names and the flushes are those of :mod:`featurestore.outputs`, which writes every
other file avscene makes.
"""

import contextlib
import os
import secrets
import shutil
import socket
from pathlib import Path

from featurestore.errors import AvsceneError, StoreWriteError
from featurestore.outputs import TEMP_SUFFIX, fsync_directory, fsync_file, temp_path
from featurestore.store.concurrency.host import process_running

__all__ = [
    "TEMP_SUFFIX",
    "build_path",
    "fsync_directory",
    "fsync_file",
    "fsync_tree",
    "is_temporary",
    "remove_stale_builds",
    "reporting_write_errors",
    "temp_path",
]


def is_temporary(name):
    """True for the name (or key) of a temporary file: it ends in ``.partial``."""
    return str(name).endswith(TEMP_SUFFIX)


def fsync_tree(root):
    """Flush every file and directory under ``root`` to the disk (before renaming it into
    place, so that the rename never publishes data the disk does not hold yet)."""
    for folder, _, names in os.walk(root):
        for name in names:
            fsync_file(os.path.join(folder, name))
        fsync_directory(folder)


@contextlib.contextmanager
def reporting_write_errors(label, what):
    """Turn an ``OSError`` of the writes inside (a full disk, a file-size limit, a permission)
    into one :class:`~featurestore.errors.StoreWriteError` line naming ``label``; the caller has
    removed what it wrote by then."""
    try:
        yield
    except AvsceneError:
        raise
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        failure = StoreWriteError(
            f"{label}: cannot write {what}: {reason}; nothing was left "
            f"half-written (a previous one is untouched)"
        )
        failure.errno = error.errno
        raise failure from None


def build_path(target, purpose):
    """A fresh name beside ``target`` for building it (``purpose``: a word)."""
    target = Path(target)
    return target.with_name(
        f".{target.name}.{purpose}@{socket.gethostname()}@{os.getpid()}@"
        f"{secrets.token_hex(6)}{TEMP_SUFFIX}"
    )


def remove_stale_builds(target, purpose):
    """Remove what builds of ``target`` left, if their processes (of this host) are gone.

    Returns
    -------
    list of Path
        The files and directories removed.
    """
    target = Path(target)
    prefix = f".{target.name}.{purpose}@"
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and is_temporary(name)):
            continue
        parts = name[len(prefix) : -len(TEMP_SUFFIX)].rsplit("@", 2)
        if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
            continue
        if process_running(int(parts[1])) is False:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
