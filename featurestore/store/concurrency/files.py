"""Local files avscene writes beside zarr's: temporary names, atomic replacement, leftovers.

Whatever avscene writes to a local file system outside zarr (leases, HDF5 exports, a new store
or an import being built) is first written under a temporary name ending in ``.partial`` and
renamed into place once complete, as zarr's ``LocalStore`` does for chunks and metadata
(``<key>.<32 hex digits>.partial``). A name ending in ``.partial`` is therefore always the
leftover of a write that did not finish (a kill, a full disk), never part of a store.

A file or directory being built beside a target (``.<name>.<purpose>@<host>@<pid>@<hex>.partial``)
names the process building it, so a later run can remove the leftovers of a killed one.
"""

import contextlib
import os
import secrets
import shutil
import socket
from pathlib import Path

from featurestore.errors import AvsceneError, StoreWriteError
from featurestore.store.concurrency.host import process_running

TEMP_SUFFIX = ".partial"


def is_temporary(name):
    """True for the name (or key) of a temporary file: it ends in ``.partial``."""
    return str(name).endswith(TEMP_SUFFIX)


def temp_path(path):
    """A fresh hidden temporary name in the directory of ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def fsync_file(path):
    """Flush a file's data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(path):
    """Flush a directory's entries (a rename into it) to the disk, where the OS allows it."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:                        # some file systems refuse fsync on a directory
        pass
    finally:
        os.close(descriptor)


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
        failure = StoreWriteError(f"{label}: cannot write {what}: {reason}; nothing was left "
                                  f"half-written (a previous one is untouched)")
        failure.errno = error.errno
        raise failure from None


def build_path(target, purpose):
    """A fresh name beside ``target`` for building it (``purpose``: a word)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{purpose}@{socket.gethostname()}@{os.getpid()}@"
                            f"{secrets.token_hex(6)}{TEMP_SUFFIX}")


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
        parts = name[len(prefix):-len(TEMP_SUFFIX)].rsplit("@", 2)
        if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
            continue
        if process_running(int(parts[1])) is False:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
