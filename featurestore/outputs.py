"""Files avscene writes outside zarr stores: never through a symbolic link, never half-written.

A run directory, an output folder or a file name may come from someone else (a shared run, an
unpacked archive), so every file avscene writes outside a zarr store (a run's model and record,
plots, split and output files, reports, synthetic corpora) goes through :func:`atomic_output` or
a helper built on it:

1. the folder is opened once. Below ``within`` (the run or output directory the command was
   given) every folder component is opened without following a symbolic link, and ``..`` is
   refused;
2. the final name must be absent or a regular file: a symbolic link, a folder, a FIFO or a
   device there is refused with :class:`~featurestore.errors.UnsafeOutputError`;
3. the data is written to a fresh temporary name in the same folder
   (``.<name>.<16 hex digits>.partial``), created exclusively (``O_CREAT | O_EXCL |
   O_NOFOLLOW``), flushed to the disk and renamed over the final name; the folder is flushed
   after the rename.

A link planted at the final name or at any temporary name is therefore never written through,
and a reader sees the old file or the new one. :func:`create_new` writes a file progressively
(a log) where nothing may exist yet. :func:`check_writable` is the check a command makes before
its work, so that an output it cannot write stops it at once.

The paths a user types are taken as given (their folders may be links); only what lies below
``within`` must be real folders. POSIX only (``dir_fd``, ``O_NOFOLLOW``).
"""

import contextlib
import csv
import errno
import io
import json
import os
import secrets
import stat
from pathlib import Path

from featurestore.errors import AvsceneError, OutputError, OutputExistsError, UnsafeOutputError

#: Every temporary name ends so (zarr's ``LocalStore`` names its own the same way).
TEMP_SUFFIX = ".partial"
#: URL schemes that name a local path.
LOCAL_SCHEMES = ("file://", "local://")

_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE_FLAGS = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


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
        descriptor = os.open(path, _FOLDER_FLAGS)
    except OSError:
        return
    try:
        _fsync_folder(descriptor)
    finally:
        os.close(descriptor)


def local_path(where):
    """The local Path of a path or ``file://`` URL; None for other URLs and store objects."""
    if not isinstance(where, (str, os.PathLike)):
        return None
    text = os.fspath(where)
    scheme = next((s for s in LOCAL_SCHEMES if text.startswith(s)), None)
    if scheme:
        return Path(text[len(scheme) :])
    return None if "://" in text or "::" in text else Path(text)


# -- writing --------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output(path, *, within=None):
    """Open a binary handle whose bytes replace ``path`` when the block ends without error.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder must exist.
    within : str or path-like, optional
        A folder above ``path`` (the run or output directory): no folder between it and
        ``path`` may be a symbolic link.

    Yields
    ------
    file object
        Open for reading and writing (``w+b``) on a new temporary file beside ``path``.

    Raises
    ------
    UnsafeOutputError
        ``path`` is a symbolic link or not a regular file, or a folder below ``within`` is a
        link (nothing is written).
    OutputError
        The file cannot be written (permissions, a full disk); ``path`` is left as it was.
    """
    with _replacement(Path(path), within) as (_, handle):
        yield handle


@contextlib.contextmanager
def atomic_path(path, *, within=None):
    """As :func:`atomic_output`, for a library that writes only to a file name (HDF5, torch):
    yields the Path of the new, empty temporary file, which the library opens and fills."""
    with _replacement(Path(path), within) as (temporary, _):
        yield temporary


@contextlib.contextmanager
def _replacement(path, within):
    """``(temporary path, handle)`` of a new temporary file beside ``path``, flushed and renamed
    over ``path`` when the block ends without error, removed otherwise."""
    with _output_folder(path, within) as folder:
        _check_target(folder, path)
        temporary = temp_path(path).name
        try:
            descriptor = os.open(temporary, _NEW_FILE_FLAGS, 0o666, dir_fd=folder)
        except OSError as error:
            raise _write_error(path, error) from None
        try:
            with os.fdopen(descriptor, "w+b") as handle:
                yield path.with_name(temporary), handle
                handle.flush()
                os.fsync(handle.fileno())  # the file's data, however it was written
            _check_target(folder, path)  # nothing appeared there meanwhile
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            if isinstance(error, OSError) and not isinstance(error, AvsceneError):
                raise _write_error(path, error) from None
            raise
        _fsync_folder(folder)


@contextlib.contextmanager
def create_new(path, *, within=None, text=False):
    """Create ``path``, which must not exist, and write it progressively (a log, a media file in
    a folder avscene has just made). Never follows or replaces anything at ``path``.

    Yields a binary handle, or a UTF-8 text handle with ``text``. Raises OutputExistsError when
    anything (a link included) is at ``path``, UnsafeOutputError when a folder below ``within``
    is a symbolic link.
    """
    path = Path(path)
    with _output_folder(path, within) as folder:
        try:
            descriptor = os.open(path.name, _NEW_FILE_FLAGS, 0o666, dir_fd=folder)
        except FileExistsError:
            raise OutputExistsError(f"{path} exists already; not writing over it") from None
        except OSError as error:
            raise _write_error(path, error) from None
        with os.fdopen(
            descriptor, "w" if text else "w+b", **({"encoding": "utf-8"} if text else {})
        ) as handle:
            yield handle


def write_bytes(path, data, *, within=None):
    """Replace ``path`` by ``data`` (bytes), as :func:`atomic_output` says."""
    with atomic_output(path, within=within) as handle:
        handle.write(data)


def write_text(path, text, *, within=None):
    """Replace ``path`` by ``text`` encoded as UTF-8, as :func:`atomic_output` says."""
    write_bytes(path, text.encode("utf-8"), within=within)


def write_json(path, document, *, within=None, indent=2, sort_keys=False, default=None):
    """Replace ``path`` by ``document`` as JSON (a final newline), as :func:`atomic_output`
    says."""
    text = json.dumps(document, indent=indent, sort_keys=sort_keys, default=default)
    write_text(path, text + "\n", within=within)


def write_npz(path, arrays, *, within=None):
    """Replace ``path`` by an uncompressed ``.npz`` of ``arrays`` (dict of name -> ndarray)."""
    import numpy as np

    with atomic_output(path, within=within) as handle:
        np.savez(handle, **arrays)


def write_figure(path, figure, *, format="png", within=None, **options):
    """Replace ``path`` by a matplotlib ``figure`` saved in ``format`` (``options`` go to
    ``savefig``)."""
    with atomic_output(path, within=within) as handle:
        figure.savefig(handle, format=format, **options)


def write_csv(path, rows, *, within=None, delimiter=","):
    """Replace ``path`` by CSV ``rows`` (sequences of values; the header is the first row),
    UTF-8 with ``\\n`` line ends."""
    with atomic_output(path, within=within) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(rows)
        text.flush()
        text.detach()


# -- checking before the work ---------------------------------------------------------------


def check_writable(path, *, overwrite, folder=False, within=None):
    """Refuse, before a command's work, an output it could not or must not write.

    Parameters
    ----------
    path : str or path-like
        The output: a file, or with ``folder`` a directory.
    overwrite : bool
        Whether an existing output may be replaced (else OutputExistsError).
    folder : bool
        The output is a directory (it may exist; its contents are the command's business). A
        folder named through a symbolic link is followed, as the user named it; a file never.
    within : str or path-like, optional
        A folder above ``path``; every folder between them must exist and none may be a
        symbolic link.

    Raises
    ------
    UnsafeOutputError
        ``path`` is a symbolic link, not a regular file (not a folder, with ``folder``), lies
        below a link inside ``within``, or its folder cannot be created or written.
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    OutputError
        A folder between ``within`` and ``path`` is missing.
    """
    path = Path(path)
    if within is not None:
        _check_components(path, Path(within))
    info = _lstat(path)
    if info is not None and folder and stat.S_ISLNK(info.st_mode):
        info = _stat_followed(path)
    if info is not None:
        _check_existing(path, info, folder=folder, overwrite=overwrite)
    _check_folder_writable(path if folder and info is not None else path.parent, path)


def _check_existing(path, info, *, folder, overwrite):
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeOutputError(
            f"{path} is a symbolic link; avscene does not write through "
            f"links (remove it or choose another path)"
        )
    if folder and not stat.S_ISDIR(info.st_mode):
        raise UnsafeOutputError(f"{path} exists and is not a folder")
    if not folder and not stat.S_ISREG(info.st_mode):
        raise UnsafeOutputError(f"{path} exists and is not a regular file; not replacing it")
    if not overwrite:
        raise OutputExistsError(f"{path} exists already (--overwrite replaces it)")


def _check_folder_writable(where, path):
    """The nearest existing folder of ``where`` must be a folder this process may write in."""
    ancestor = where
    while _lstat(ancestor) is None and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UnsafeOutputError(f"cannot write {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UnsafeOutputError(f"cannot write {path}: {ancestor} is not writable")


def _check_components(path, within):
    """Every folder between ``within`` and ``path`` must exist and be a real folder (the
    writers create no folder there)."""
    for folder in _below(path, within)[:-1]:
        info = _lstat(folder)
        if info is None:
            raise OutputError(f"cannot write {path}: there is no folder {folder}")
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeOutputError(
                f"cannot write {path}: {folder} is a symbolic link or not a folder"
            )


def _below(path, within):
    """The paths from ``within`` down to ``path`` (excluded ``within``, included ``path``)."""
    try:
        parts = path.relative_to(within).parts
    except ValueError:
        raise UnsafeOutputError(f"{path} is not inside {within}") from None
    if not parts or ".." in parts:
        raise UnsafeOutputError(f"{path}: a name with '..' or no name, inside {within}")
    return [within.joinpath(*parts[: i + 1]) for i in range(len(parts))]


def _stat_followed(path):
    try:
        return os.stat(path)
    except OSError:
        raise UnsafeOutputError(f"{path} is a symbolic link to nothing") from None


def _lstat(path):
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


# -- folder descriptors ---------------------------------------------------------------------


@contextlib.contextmanager
def _output_folder(path, within):
    """A descriptor of the folder of ``path``, its components below ``within`` not followed."""
    if path.name in ("", ".", ".."):
        raise UnsafeOutputError(f"{path}: not a file name")
    if within is None:
        start, components = path.parent, []
    else:
        start = Path(within)
        components = [p.name for p in _below(path, start)[:-1]]
    try:
        descriptor = os.open(start, _FOLDER_FLAGS)
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        for name in components:
            inner = _enter(descriptor, name, path)
            os.close(descriptor)
            descriptor = inner
        yield descriptor
    finally:
        os.close(descriptor)


def _enter(descriptor, name, path):
    """A descriptor of folder ``name`` inside ``descriptor``, opened without following a link."""
    try:
        return os.open(name, _FOLDER_FLAGS | getattr(os, "O_NOFOLLOW", 0), dir_fd=descriptor)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeOutputError(
                f"cannot write {path}: its folder {name!r} is a symbolic link or not a folder"
            ) from None
        raise _write_error(path, error) from None


def _check_target(folder, path):
    try:
        info = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeOutputError(
            f"{path} is a symbolic link; avscene does not write through "
            f"links (remove it or choose another path)"
        )
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeOutputError(f"{path} exists and is not a regular file; not replacing it")


def _fsync_folder(descriptor):
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems refuse fsync on a directory
        pass


def _write_error(path, error):
    """A one-line OutputError for an OSError met while writing ``path`` (same errno)."""
    failure = OutputError(f"cannot write {path}: {error.strerror or error}")
    failure.errno = error.errno
    return failure
