"""Leases: at most one writer per block of a feature, enforced through the store itself.

A lease is a small JSON file inside the store's root group, under ``leases/`` (not a zarr node:
zarr and xarray never open it): ``leases/features/<feature>/<block>.json`` for a block writer,
``leases/store.json`` while clips are appended or features declared. It records a random token,
the holder's host, boot id, pid namespace, pid and process start time, and when it started.

- **Taking** a lease creates the file atomically. On a local store (a directory or a
  ``file://`` URL) the record is written to a temporary file that is then hard-linked to the
  lease name, which fails if the name exists, so exactly one of two writers gets it and a
  reader never sees a half-written lease. On other stores (fsspec URLs, in-memory stores) there
  is no such primitive: the record is written if the key is absent and read back, which two
  writers starting within the same moment can both pass; the check before every write (below)
  then stops the one whose token was overwritten, before it writes anything.
- **Holding**: the holder checks that the lease still holds its token before every write of
  rows, index or tail deletion, and renews it (at most every :data:`RENEW_SECONDS`): a local
  lease by touching the file, another by rewriting it.
- **A held lease** of a process of this machine (same host, boot and pid namespace) is live
  while that process runs; one of another machine is live until :data:`LEASE_EXPIRY_SECONDS`
  pass without a renewal. A lease that is not live is taken over.
- **Releasing** removes the file if it still holds the token.
"""

import errno
import json
import logging
import os
import secrets
import time
from pathlib import Path

from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from featurestore.errors import BlockLeasedError, LeaseLostError, StoreError
from featurestore.provenance import utc_now
from featurestore.store.chunks import list_keys
from featurestore.store.concurrency.files import is_temporary, temp_path
from featurestore.store.concurrency.host import identity, process_running, same_machine

LOG = logging.getLogger(__name__)

#: Folder of the leases inside the store's root group.
LEASE_DIR = "leases"
#: A lease of another machine not renewed for this long is taken over (10 minutes).
LEASE_EXPIRY_SECONDS = 600
#: A holder renews its lease at most this often (on its next write).
RENEW_SECONDS = 30
#: How often a waiting acquirer looks again.
POLL_SECONDS = 0.2
#: Takeovers or vanished leases in a row before giving up (something keeps interfering).
MAX_RETRIES = 50


def block_key(feature, block):
    """Lease key of one block of one feature."""
    return f"features/{feature}/{int(block)}.json"


STORE_KEY = "store.json"


def _parse(data):
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_new(path, data):
    """Create the file ``path`` holding ``data``: FileExistsError if anything (a symbolic link
    included) is there; nothing is followed."""
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


class LocalLeaseFiles:
    """Leases as files of a local directory (see the module docstring)."""

    def __init__(self, root):
        self.root = Path(root) / LEASE_DIR

    def _path(self, key):
        return self.root.joinpath(*key.split("/"))

    def create(self, key, data):
        """Create the lease file holding ``data``; False if it exists already."""
        path = self._path(key)
        for _ in range(MAX_RETRIES):
            temporary = temp_path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_new(temporary, data)
                os.link(temporary, path)
                return True
            except FileExistsError:
                return False
            except FileNotFoundError:  # a release pruned the folder meanwhile: again
                continue
            except OSError as error:  # no hard links on this file system, or a full disk
                if error.errno not in (
                    errno.EPERM,
                    errno.ENOTSUP,
                    errno.EOPNOTSUPP,
                    errno.EMLINK,
                    errno.EXDEV,
                ):
                    temporary.unlink(missing_ok=True)
                    self._prune(path.parent)
                    raise
                return self._create_exclusive(path, data)
            finally:
                temporary.unlink(missing_ok=True)
        raise StoreError(f"cannot create the lease {path}: its folder keeps vanishing")

    @staticmethod
    def _create_exclusive(path, data):
        try:
            _write_new(path, data)
        except FileExistsError:
            return False
        return True

    def read(self, key):
        """(record, seconds since its last renewal), or (None, None) if there is no lease."""
        path = self._path(key)
        try:
            renewed = os.stat(path).st_mtime
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None
        return _parse(data), time.time() - renewed

    def renew(self, key, record):
        try:
            os.utime(self._path(key))
        except FileNotFoundError:  # lost: the holder's next check says so
            pass

    def remove(self, key, token):
        """Remove the lease if it holds ``token`` (moved aside first, so a lease that replaced
        it meanwhile is put back rather than deleted); True if removed."""
        path = self._path(key)
        aside = temp_path(path)
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        try:
            if _parse(aside.read_bytes()).get("token") != token:
                try:
                    os.link(aside, path)
                except FileExistsError:  # a newer lease is in place already
                    pass
                return False
        finally:
            aside.unlink(missing_ok=True)
        self._prune(path.parent)
        return True

    def _prune(self, folder):
        """Remove empty lease folders, up to ``leases/`` itself (plain zarr listings then see
        nothing of the leases once every writer is done)."""
        while folder != self.root.parent:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def keys(self):
        """Keys of the lease files present (temporary files aside)."""
        if not self.root.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*.json")
            if path.is_file() and not is_temporary(path.name)
        )

    def remove_temporary(self):
        """Delete leftover temporary files of leases; return their paths."""
        found = (
            [path for path in self.root.rglob("*") if path.is_file() and is_temporary(path.name)]
            if self.root.is_dir()
            else []
        )
        for path in found:
            path.unlink(missing_ok=True)
        return found


class StoreLeaseFiles:
    """Leases as keys of a zarr store (fsspec URLs, memory stores): see the module docstring."""

    def __init__(self, store, prefix):
        self.store = store
        self.prefix = f"{prefix}/{LEASE_DIR}/" if prefix else f"{LEASE_DIR}/"

    def _get(self, key):
        value = sync(self.store.get(self.prefix + key, prototype=default_buffer_prototype()))
        return None if value is None else value.to_bytes()

    def _set(self, key, data, *, only_new=False):
        buffer = default_buffer_prototype().buffer.from_bytes(data)
        method = self.store.set_if_not_exists if only_new else self.store.set
        sync(method(self.prefix + key, buffer))

    def create(self, key, data):
        self._set(key, data, only_new=True)
        return self._get(key) == data

    def read(self, key):
        data = self._get(key)
        if data is None:
            return None, None
        record = _parse(data)
        renewed = record.get("renewed")
        age = time.time() - renewed if isinstance(renewed, (int, float)) else float("inf")
        return record, age

    def renew(self, key, record):
        record["renewed"] = time.time()
        self._set(key, json.dumps(record, sort_keys=True).encode())

    def remove(self, key, token):
        data = self._get(key)
        if data is None or _parse(data).get("token") != token:
            return False
        sync(self.store.delete(self.prefix + key))
        return True

    def keys(self):
        found = list_keys(self.store, self.prefix.rstrip("/"))
        return sorted(
            key[len(self.prefix) :]
            for key in found
            if key.endswith(".json") and not is_temporary(key)
        )

    def remove_temporary(self):
        return []


def lease_files(group):
    """The lease files of the store whose root group is ``group``."""
    store = group.store
    if isinstance(store, LocalStore):
        root = Path(store.root)
        return LocalLeaseFiles(root.joinpath(*group.path.split("/")) if group.path else root)
    return StoreLeaseFiles(store, group.path)


def describe(record, age=None):
    """One-line text naming a lease's holder."""
    text = (
        f"pid {record.get('pid', '?')} on host {record.get('host', '?')} "
        f"since {record.get('started', '?')}"
    )
    if age is not None and age != float("inf"):
        text += f" (renewed {age:.0f} s ago)"
    return text


def holder_state(record, age):
    """``live``, ``dead`` (a process of this machine that is gone) or ``expired``."""
    running = (
        process_running(record.get("pid"), record.get("pid_start"))
        if same_machine(record)
        else None
    )
    if running is not None:
        return "live" if running else "dead"
    here = identity()
    if (
        record.get("host") == here["host"]
        and record.get("boot_id")
        and here["boot_id"]
        and record.get("boot_id") != here["boot_id"]
    ):
        return "dead"  # this machine rebooted since
    return "expired" if age is None or age > LEASE_EXPIRY_SECONDS else "live"


class Lease:
    """A lease held by this process; see :func:`acquire`."""

    def __init__(self, files, key, record, what):
        self._files, self.key, self.record, self.what = files, key, record, what
        self.token = record["token"]
        self._renewed = time.monotonic()
        self.lost = self.released = False

    def confirm(self):
        """Raise :class:`LeaseLostError` unless the lease still holds this token; renew if due."""
        if self.lost or self.released:
            raise LeaseLostError(f"{self.what}: this writer no longer holds its lease")
        held, age = self._files.read(self.key)
        if held is None or held.get("token") != self.token:
            self.lost = True
            now = f"taken over by {describe(held, age)}" if held else "removed"
            raise LeaseLostError(
                f"{self.what}: this writer's lease was {now}; it stops without "
                f"writing or committing more (its uncommitted clips stay pending)"
            )
        if time.monotonic() - self._renewed >= RENEW_SECONDS:
            self._files.renew(self.key, self.record)
            self._renewed = time.monotonic()

    def heartbeat(self):
        """Confirm and renew the lease if a renewal is due (cheap to call often)."""
        if time.monotonic() - self._renewed >= RENEW_SECONDS:
            self.confirm()

    def release(self):
        """Give the lease up (nothing happens if it was lost or released already)."""
        if not (self.lost or self.released):
            self._files.remove(self.key, self.token)
        self.released = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def acquire(files, key, what, *, wait=0.0):
    """Take the lease ``key``, taking over one whose holder is dead or expired.

    Parameters
    ----------
    files : LocalLeaseFiles or StoreLeaseFiles
    key : str
        :func:`block_key` or :data:`STORE_KEY`.
    what : str
        What the lease protects, for messages (``features/logmel block 3 of <store>``).
    wait : float
        Seconds to wait for a live holder to release it.

    Raises
    ------
    BlockLeasedError
        A live holder still has it after ``wait`` seconds; the message names the holder.
    """
    record = {
        "token": secrets.token_hex(16),
        **identity(),
        "started": utc_now(),
        "renewed": time.time(),
        "what": what,
    }
    data = json.dumps(record, sort_keys=True).encode()
    deadline = time.monotonic() + wait
    retries = 0
    while True:
        if files.create(key, data):
            return Lease(files, key, record, what)
        held, age = files.read(key)
        if held is not None:
            state = holder_state(held, age)
            if state == "live":
                if time.monotonic() >= deadline:
                    raise BlockLeasedError(
                        f"{what} is leased by {describe(held, age)}: another writer is at work "
                        f"(a lease ends when its writer closes or dies, or after "
                        f"{LEASE_EXPIRY_SECONDS // 60} min without renewal)"
                    )
                time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                continue
            LOG.warning(
                "%s: taking over the lease of %s (holder %s)", what, describe(held, age), state
            )
            files.remove(key, held.get("token"))
        retries += 1
        if retries > MAX_RETRIES:
            raise StoreError(f"{what}: cannot take the lease (it keeps changing)")


def stale_leases(files):
    """Leases whose holder is dead or expired: list of (key, one-line description)."""
    found = []
    for key in files.keys():  # noqa: SIM118 (lease files, not a dict)
        held, age = files.read(key)
        if held is not None and holder_state(held, age) != "live":
            found.append((key, describe(held, age)))
    return found


def live_leases(files):
    """Leases held by live writers: list of (key, one-line description)."""
    found = []
    for key in files.keys():  # noqa: SIM118 (lease files, not a dict)
        held, age = files.read(key)
        if held is not None and holder_state(held, age) == "live":
            found.append((key, describe(held, age)))
    return found


def remove_stale(files, key):
    """Remove the stale lease ``key`` (if it is still the stale one); True if removed."""
    held, age = files.read(key)
    if held is None or holder_state(held, age) == "live":
        return False
    return files.remove(key, held.get("token"))
