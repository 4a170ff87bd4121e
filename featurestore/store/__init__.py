"""The feature store: frame-level features of clips in one self-describing zarr v3 group.

>>> from featurestore.store import FeatureStore
>>> with FeatureStore.open("features.zarr", mode="r") as store:
...     train = store.segments(["openl3_audio"], selection=store.select(fold="train"))

Modules: :mod:`~featurestore.store.feature_store` (the :class:`FeatureStore` API),
:mod:`~featurestore.store.layout` (names, codecs, row reservation, block regions),
:mod:`~featurestore.store.clip_table`, :mod:`~featurestore.store.feature` (one feature's arrays),
:mod:`~featurestore.store.writer` (block writers), :mod:`~featurestore.store.concurrency.leases` (one writer
per block), :mod:`~featurestore.store.chunks` (chunk-level reading),
:mod:`~featurestore.store.segment_pooling` (the per-second view), :mod:`~featurestore.store.integrity`
(``info``, ``verify``, repair), :mod:`~featurestore.store.inventory` (the files a store may
hold, checked in folders and zip archives), :mod:`~featurestore.store.opening` (locations,
open modes, attributes), :mod:`~featurestore.store.concurrency.files` and :mod:`~featurestore.store.concurrency.host` (temporary
files, processes), :mod:`~featurestore.store.interchange.hdf5_export` and :mod:`~featurestore.store.interchange.hdf5_import`
(HDF5 interchange), :mod:`~featurestore.store.dask_views` (lazy dask arrays) and
:mod:`~featurestore.store.zarr_compat` (the one use of zarr's private attributes). The format
itself is specified in the documentation (``docs/store-format.md``).
"""

from featurestore.store.clip_table import ClipTable
from featurestore.store.feature_store import Block, FeatureStore, Frames
from featurestore.store.frame_table import FrameTable, read_frame_table
from featurestore.store.interchange.hdf5_export import export_hdf5
from featurestore.store.interchange.hdf5_import import import_hdf5
from featurestore.store.layout import COMMITTED, FAILED, NOT_APPLICABLE, PENDING
from featurestore.store.segment_pooling import Segments

__all__ = [
    "COMMITTED",
    "FAILED",
    "NOT_APPLICABLE",
    "PENDING",
    "Block",
    "ClipTable",
    "FeatureStore",
    "FrameTable",
    "Frames",
    "Segments",
    "export_hdf5",
    "import_hdf5",
    "read_frame_table",
]
