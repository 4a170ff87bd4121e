"""Making a new store all-or-nothing: built beside its target, then moved or copied into place.

``avscene import`` and ``avscene unpack`` both build a complete store in a folder next to the
target (a scratch folder for remote targets), verify it there, and only then rename it into place
(or copy it, the root metadata last). A failure at any point leaves no store at the target.
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore

from featurestore.errors import StoreError, StoreExistsError
from featurestore.store.chunks import list_keys
from featurestore.store.concurrency.files import (
    build_path,
    fsync_directory,
    fsync_tree,
    remove_stale_builds,
    reporting_write_errors,
)
from featurestore.store.opening import (
    group_exists,
    local_directory,
    resolve_location,
    zarr_options,
)
from featurestore.store.remote import HttpStore


@dataclass(frozen=True)
class NewTarget:
    """Where a new store goes: the zarr target, its label, options, and its local folder."""

    where: object
    target: object
    label: str
    options: dict
    local: Path | None = None


def new_store_target(where, *, overwrite, storage_options=None):
    """Check that a new store may be made at ``where``; return its :class:`NewTarget`.

    Raises
    ------
    StoreExistsError
        A store is there already (without ``overwrite``), or something that is not a zarr group
        (never replaced).
    """
    target, label = resolve_location(where)
    if isinstance(target, HttpStore):
        raise StoreError(f"{label}: a store over HTTP is read-only; write the new store elsewhere")
    options = zarr_options(target, storage_options, label)
    exists = group_exists(target, options, label)
    if exists and not overwrite:
        raise StoreExistsError(f"{label} exists already (pass overwrite to replace it)")
    local = local_directory(target)
    if (
        local is not None
        and not exists
        and local.exists()
        and (not local.is_dir() or any(local.iterdir()))
    ):
        raise StoreExistsError(f"{label} exists already and is not a zarr group; not replacing it")
    return NewTarget(where, target, label, options, local)


def build_into_place(new, build, *, overwrite, kind):
    """Run ``build(folder)`` (it writes and verifies a store there; returns a summary), then put
    the store at ``new`` (a :class:`NewTarget`); return the summary.

    ``kind`` names the temporary folders (``<target>.<kind>-<pid>``) so that a later run can
    remove what a killed one left. A failed write (a full disk) leaves nothing at the target and
    raises :class:`~featurestore.errors.StoreWriteError`.
    """
    with reporting_write_errors(new.label, f"the store ({kind})"):
        if new.local is not None:
            return _build_local(new, build, overwrite=overwrite, kind=kind)
        return _build_elsewhere(new, build, overwrite=overwrite, kind=kind)


def _build_elsewhere(new, build, *, overwrite, kind):
    scratch = Path(tempfile.mkdtemp(prefix=f"avscene-{kind}-"))
    try:
        folder = scratch / "store.zarr"
        summary = build(folder)
        if hasattr(new.where, "list_prefix"):
            destination = new.where
        else:
            destination = FsspecStore.from_url(
                new.target, read_only=False, storage_options=new.options.get("storage_options")
            )
        copy_store(LocalStore(folder), destination, overwrite=overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summary


def _build_local(new, build, *, overwrite, kind):
    remove_stale_builds(new.local, kind)
    if overwrite:  # a store a killed overwrite had moved aside
        remove_stale_builds(new.local, "replaced")
    folder = build_path(new.local, kind)
    try:
        summary = build(folder)
        fsync_tree(folder)
        move_into_place(folder, new.local, new.label, overwrite=overwrite)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return summary


def move_into_place(build, local, label, *, overwrite):
    """Rename ``build`` to ``local``; with ``overwrite``, the old store is moved aside first
    and deleted after (put back if the second rename fails)."""
    try:
        build.rename(local)  # nothing there, or an empty directory
    except OSError:
        if not overwrite or not group_exists(str(local), {}, label):
            raise StoreExistsError(f"{label} exists already") from None
        old = build_path(local, "replaced")
        local.rename(old)
        try:
            build.rename(local)
        except BaseException:
            old.rename(local)
            raise
        shutil.rmtree(old, ignore_errors=True)
    fsync_directory(local.parent)


def copy_store(source, destination, *, overwrite):
    """Copy every key, the root ``zarr.json`` last (until then there is no group at the
    destination); on failure delete what was copied."""
    if overwrite:
        for key in list_keys(destination, ""):
            sync(destination.delete(key))
    keys = sorted(list_keys(source, ""), key=lambda key: (key == "zarr.json", key))
    written = []
    try:
        for key in keys:
            value = sync(source.get(key, prototype=default_buffer_prototype()))
            sync(destination.set(key, value))
            written.append(key)
    except BaseException:
        for key in reversed(written):
            sync(destination.delete(key))
        raise
