"""Exceptions raised by avscene.

Every error subclasses :class:`AvsceneError` and the matching built-in, so callers can catch
either (``except FileNotFoundError`` works for a missing store or weight file). Messages are
one line and name the file, clip or row concerned.

:func:`full_disk` recognises a full disk (or quota, or file-size limit) in any error's chain.
"""

import errno

#: What the errno of an OSError says about a full disk.
FULL_DISK = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file-size limit reached",
}


def full_disk(error):
    """The OSError of a full disk (:data:`FULL_DISK`) in ``error`` or its causes, or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FULL_DISK:
            return error
        error = error.__cause__ or error.__context__
    return None


class AvsceneError(Exception):
    """Root of all avscene errors."""


class UsageError(AvsceneError, ValueError):
    """Bad command-line or option values, found before the job did anything (exit status 2)."""


class ManifestError(AvsceneError, ValueError):
    """A dataset manifest (meta.csv, fold file, CSV manifest) is malformed."""


class DatasetNotFoundError(AvsceneError, FileNotFoundError):
    """No dataset layout was found under the given root."""


class MediaError(AvsceneError, ValueError):
    """A media file cannot be decoded or does not meet the extractor's needs."""


class StoreError(AvsceneError):
    """Generic feature-store failure."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store does not exist (mode 'r' or 'r+')."""


class StoreExistsError(StoreError, FileExistsError):
    """The store exists already (mode 'w-')."""


class StoreFormatError(StoreError, ValueError):
    """The store's contents are inconsistent or not an avscene store."""


class RemoteStoreError(StoreError, OSError):
    """A store or archive read over HTTP(S) could not be read safely: the server timed out,
    answered too much or too little, or redirected elsewhere."""


class StoreWriteError(StoreError, OSError):
    """Writing a store, an archive or an export failed (a full disk, a file-size limit); its
    ``errno`` is the system's. Nothing half-written was left at the target."""


class LeaseError(StoreError):
    """A block of a store is, or was meanwhile, written by another writer."""


class BlockLeasedError(LeaseError):
    """Another live writer holds the lease of the block (its message names the holder)."""


class LeaseLostError(LeaseError):
    """A writer's lease was taken over; it stopped before writing or committing anything more."""


class ProvenanceMismatchError(StoreError, ValueError):
    """Features, parameters or weights differ from what the store or model was made with."""


class WeightsNotFoundError(AvsceneError, FileNotFoundError):
    """No OpenL3 weight file was found."""


class WeightsFormatError(AvsceneError, ValueError):
    """A weight file does not have the expected layout or shapes."""


class DatasetMismatchError(AvsceneError, ValueError):
    """A worker reads a different manifest at the dataset root than the client did."""


class ShardSetupError(AvsceneError, ValueError):
    """A sharded run found clips or features it must not create itself (exit status 2)."""


class TorchMissingError(AvsceneError, ImportError):
    """A torch network was asked for but PyTorch is not installed."""


class ModelFormatError(AvsceneError, ValueError):
    """A saved model does not describe an estimator avscene writes (unknown class, missing array)."""


class RunNotFoundError(AvsceneError, FileNotFoundError):
    """The run directory or its files do not exist."""


class RunFormatError(AvsceneError, ValueError):
    """A run directory's files are not what ``avscene train`` writes, or its options are invalid."""


class CheckpointError(AvsceneError, ValueError):
    """A network checkpoint (a PyTorch state dict) does not fit the architecture it is loaded into."""


class SplitFileError(AvsceneError, ValueError):
    """A split file (``clip_id,role`` or the baseline's ``val.csv``) is malformed or names
    clips the store does not hold."""


class OutputError(AvsceneError, OSError):
    """An output file cannot be written (its folder is missing or unwritable, the disk is full);
    whatever was at its path is left as it was."""


class UnsafeOutputError(OutputError, PermissionError):
    """An output would be written through a symbolic link, over something that is not a regular
    file, or where this process cannot write: refused before anything is written."""


class OutputExistsError(OutputError, FileExistsError):
    """An output exists already and the command was not told to replace it (``--overwrite``)."""
