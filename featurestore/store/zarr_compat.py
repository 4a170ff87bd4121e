"""The one place where avscene reaches into zarr's private attributes.

zarr's ``ZipStore`` opens its file lazily, on first use, and keeps the ``zipfile.ZipFile`` in a
private attribute; it has no public way to open an existing instance or to hand out that
``ZipFile``. avscene needs both: an archive's zip directory is checked before any entry is read
(:func:`~featurestore.store.inventory.check_zip_directory`), and a chunk's stored size is read
from it before the chunk is fetched. Everything else avscene does with zarr uses public API.

Checked against zarr 3.1.6, the oldest release setup.cfg allows (``zarr>=3.1.6,<4``):
``ZipStore._is_open``, ``ZipStore._sync_open()`` and ``ZipStore._zf``. Check again when that
range changes; a zarr release that renames them fails here, in this one function.
"""

import zipfile

from zarr.storage import ZipStore


def zip_file(store: ZipStore) -> zipfile.ZipFile:
    """The ``zipfile.ZipFile`` of a zarr ``ZipStore``, opening the store first if zarr has not
    opened it yet.

    Parameters
    ----------
    store : zarr.storage.ZipStore

    Returns
    -------
    zipfile.ZipFile
        The store's own (not a copy): closing the store closes it.

    Raises
    ------
    FileNotFoundError, OSError, zipfile.BadZipFile
        Opening the archive failed.
    """
    if not store._is_open:
        store._sync_open()
    return store._zf
