"""Chunk-level reading: decode each needed row-chunk once, in threads, straight into the output.

Every chunk avscene reads goes through :class:`ChunkReader`, which checks the array's metadata
and bounds every decode (:mod:`~featurestore.store.bounded_decoding`): a chunk is never
decompressed before its declared decoded size is known to fit its shape and data type.

zarr's own read path costs several times np.load even for uncompressed data (docs/benchmarks.md),
so for the arrays of a local store whose codec chain is one this module decodes fastest (bytes,
optional blosc, crc32c) chunks are read from their files, checksummed and decompressed straight
into the output, several at a time. Chunks of other arrays and stores are fetched through the
zarr store and decoded by :func:`~featurestore.store.bounded_decoding.decode_chunk`.
"""

import os
import sys
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numcodecs.blosc
import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, ZipStore

from featurestore.errors import StoreFormatError
from featurestore.store.bounded_decoding import chunk_codecs, crc32c, decode_chunk
from featurestore.store.layout import chunk_prefix
from featurestore.store.zarr_compat import zip_file


def default_workers():
    """Threads used to decode chunks: enough to keep every core and the disk busy."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


class ChunkReader:
    """Decode whole chunks along axis 0 of a zarr array chunked as ``(rows, *full_rest)``.

    Parameters
    ----------
    array : zarr.Array
        Chunked only along its first axis (every other axis in one chunk).
    required : bool
        True when every chunk must be stored: an absent one is refused rather than read as the
        fill value.

    Raises
    ------
    StoreFormatError
        The array's metadata is not one avscene reads (see
        :func:`~featurestore.store.bounded_decoding.chunk_codecs`).
    """

    def __init__(self, array, *, required=False):
        self.codecs = chunk_codecs(array, array.path)
        if any(c != s for c, s in zip(array.chunks[1:], array.shape[1:])):
            raise StoreFormatError(f"{array.path}: chunks {array.chunks} split more than rows")
        self.array = array
        self.required = required
        self.rows = array.chunks[0]
        self.shape = array.shape
        self.dtype = self.codecs.dtype.newbyteorder("=")
        self.fill_value = "" if self.codecs.strings else array.fill_value
        self.nchunks = -(-self.shape[0] // self.rows) if self.shape[0] else 0
        self._directory, self._blosc = _fast_path(array, self.codecs)

    @property
    def fast(self):
        """True when chunks are read from their files and decoded straight into the output."""
        return self._directory is not None

    def _coords(self, index):
        return (int(index),) + (0,) * (len(self.shape) - 1)

    def key(self, index):
        """Store key of chunk ``index`` (``features/x/values/c/3/0``)."""
        return f"{self.array.path}/{self.array.metadata.encode_chunk_key(self._coords(index))}"

    def chunk_rows(self, index):
        """Number of rows of chunk ``index`` inside the array."""
        return min(self.rows, self.shape[0] - index * self.rows)

    def load(self, index):
        """Chunk ``index`` as an ndarray of shape (chunk_rows(index), *rest); fill if unwritten."""
        if self.fast:
            full = np.empty((self.rows,) + self.shape[1:], self.dtype)
            self.load_into(index, full)
            return full[: self.chunk_rows(index)]
        data = self._fetch(index)
        if data is None:
            return np.full((self.chunk_rows(index),) + self.shape[1:], self.fill_value, self.dtype)
        return decode_chunk(data, self.codecs, self.key(index))[: self.chunk_rows(index)]

    def _fetch(self, index):
        """The stored bytes of chunk ``index`` through the zarr store, or None if absent."""
        encoded = self.array.metadata.encode_chunk_key(self._coords(index))
        self._check_archive_entry(index, f"{self.array.store_path.path}/{encoded}".lstrip("/"))
        try:
            buffer = sync(
                (self.array.store_path / encoded).get(prototype=default_buffer_prototype())
            )
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise StoreFormatError(f"{self.key(index)}: {error} (corrupt chunk)") from None
        if buffer is None:
            self._absent(index)
            return None
        return buffer.as_numpy_array()

    def _check_archive_entry(self, index, name):
        """Refuse a zip archive's entry whose size, read from the archive's directory, is more
        than the chunk can need (before the entry is read or inflated)."""
        directory = zip_directory(self.array.store_path.store)
        try:
            entry = directory.getinfo(name) if directory is not None else None
        except KeyError:
            return
        if entry is not None and entry.file_size > self.codecs.max_stored:
            raise StoreFormatError(
                f"{self.key(index)}: {entry.file_size} bytes stored, more "
                f"than a chunk of {self.codecs.shape} can need (corrupt chunk)"
            )

    def _absent(self, index):
        if self.required:
            raise StoreFormatError(
                f"missing chunk {self.key(index)}: every chunk of {self.array.path} must be stored"
            )

    def load_into(self, index, out):
        """Decode the whole stored chunk ``index`` into ``out`` (shape (rows, *rest), C order).

        Only for the fast path; reads the file straight into ``out`` (uncompressed) or into a
        per-thread scratch buffer that blosc decompresses into ``out``.
        """
        path = self._directory.joinpath(
            *self.array.metadata.encode_chunk_key(self._coords(index)).split("/")
        )
        target = out.reshape(-1).view(np.uint8)
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:
            self._absent(index)
            out[...] = self.fill_value
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 4 or size > self.codecs.max_stored:
                raise StoreFormatError(
                    f"{self.key(index)}: {size} bytes stored, a chunk of "
                    f"{self.codecs.shape} needs 4 to "
                    f"{self.codecs.max_stored} (corrupt chunk)"
                )
            if self._blosc:
                data = _scratch(size)
                _read_exactly(handle, data, path)
                payload, stored = data[:-4], data[-4:]
            else:
                if size != target.nbytes + 4:
                    raise StoreFormatError(
                        f"{self.key(index)}: {size} bytes, expected "
                        f"{target.nbytes + 4} (corrupt chunk)"
                    )
                stored = bytearray(4)
                _read_exactly(handle, memoryview(target), path)
                _read_exactly(handle, memoryview(stored), path)
                payload = memoryview(target)
        if crc32c(payload) != int.from_bytes(stored, "little"):
            raise StoreFormatError(f"{self.key(index)}: crc32c checksum mismatch (corrupt chunk)")
        if self._blosc:
            try:
                header = bytes(payload[:16])  # blosc: nbytes at 4:8, cbytes at 12:16
                if (
                    len(header) < 16
                    or int.from_bytes(header[4:8], "little") != target.nbytes
                    or int.from_bytes(header[12:16], "little") != len(payload)
                ):
                    raise ValueError("blosc header does not match the chunk shape")
                numcodecs.blosc.decompress(payload, memoryview(target))
            except (RuntimeError, ValueError) as error:
                raise StoreFormatError(f"{self.key(index)}: {error} (corrupt chunk)") from None


_local = threading.local()


def _scratch(size):
    """A per-thread reusable buffer of at least ``size`` bytes (avoids page faults per chunk)."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.buffer = bytearray(max(size, 1 << 20))
    return memoryview(buffer)[:size]


def _scratch_chunk(reader):
    """A per-thread reusable array shaped like one full chunk of ``reader``."""
    shape = (reader.rows,) + reader.shape[1:]
    chunks = getattr(_local, "chunks", None)
    if chunks is None:
        chunks = _local.chunks = {}
    key = (shape, reader.dtype.str)
    if key not in chunks:
        if len(chunks) > 4:
            chunks.clear()
        chunks[key] = np.empty(shape, reader.dtype)
    return chunks[key]


def _read_exactly(handle, view, path):
    done = 0
    while done < len(view):
        got = handle.readinto(view[done:])
        if not got:
            raise StoreFormatError(f"{path}: file ended early (corrupt chunk)")
        done += got


def _fast_path(array, codecs):
    """(chunk directory, uses blosc) if the chunks can be read from their files and decoded
    straight into the output (a local store; bytes, optional blosc, crc32c; native byte
    order), else (None, _)."""
    store = array.store_path.store
    encoding = array.metadata.chunk_key_encoding
    if (
        not isinstance(store, LocalStore)
        or codecs.strings
        or not codecs.checksum
        or codecs.compressor == "zstd"
        or codecs.dtype != codecs.dtype.newbyteorder("=")
        or getattr(encoding, "name", "") != "default"
        or sys.byteorder != "little"
    ):
        return None, False
    return Path(store.root).joinpath(
        *array.store_path.path.split("/")
    ), codecs.compressor == "blosc"


def plan_pieces(starts, counts, chunk_rows):
    """Split row ranges at chunk boundaries.

    Parameters
    ----------
    starts, counts : ndarray, shape (n,)
        Source row ranges, written one after the other into the output.

    Returns
    -------
    chunk, offset, length, dest : ndarray, shape (n_pieces,)
        Piece i copies ``length`` rows from row ``offset`` of chunk ``chunk`` to output row
        ``dest``.
    """
    starts = np.asarray(starts, np.int64)
    counts = np.asarray(counts, np.int64)
    dest = np.cumsum(counts) - counts
    keep = counts > 0
    starts, counts, dest = starts[keep], counts[keep], dest[keep]
    if starts.size:  # merge ranges adjacent both on disk and in the output
        joined = (starts[1:] == starts[:-1] + counts[:-1]) & (dest[1:] == dest[:-1] + counts[:-1])
        heads = np.flatnonzero(np.concatenate([[True], ~joined]))
        ends = np.append(heads[1:], starts.size) - 1
        counts = starts[ends] + counts[ends] - starts[heads]
        starts, dest = starts[heads], dest[heads]
    first = starts // chunk_rows
    last = (starts + counts - 1) // chunk_rows
    n_sub = last - first + 1
    owner = np.repeat(np.arange(starts.size), n_sub)
    within = np.arange(owner.size) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)
    chunk = np.repeat(first, n_sub) + within
    sub_start = np.maximum(starts[owner], chunk * chunk_rows)
    sub_stop = np.minimum(starts[owner] + counts[owner], (chunk + 1) * chunk_rows)
    piece_dest = dest[owner] + (sub_start - starts[owner])
    return chunk, sub_start - chunk * chunk_rows, sub_stop - sub_start, piece_dest


def gather_rows(reader, starts, counts, *, dtype=None, workers=None):
    """Read rows ``[starts[i], starts[i] + counts[i])`` for every i, concatenated.

    Every chunk is decoded once, in a thread pool, and copied straight into the output.

    Parameters
    ----------
    reader : ChunkReader
    starts, counts : ndarray, shape (n,)
    dtype : numpy dtype, optional
        Output dtype (default: the array's).

    Returns
    -------
    ndarray, shape (sum(counts), *rest)
    """
    counts = np.asarray(counts, np.int64)
    out = np.empty((int(counts.sum()),) + reader.shape[1:], dtype=dtype or reader.dtype)
    if out.shape[0] == 0:
        return out
    chunk, offset, length, dest = plan_pieces(starts, counts, reader.rows)
    order = np.argsort(chunk, kind="stable")
    chunk, offset, length, dest = chunk[order], offset[order], length[order], dest[order]
    bounds = np.flatnonzero(np.diff(chunk)) + 1
    groups = np.split(np.arange(chunk.size), bounds)
    direct = reader.fast and out.dtype == reader.dtype

    def copy_chunk(members):
        i = members[0]
        index = int(chunk[i])
        if not reader.fast:
            data = reader.load(index)
        elif direct and len(members) == 1 and offset[i] == 0 and length[i] == reader.rows:
            reader.load_into(index, out[dest[i] : dest[i] + length[i]])
            return  # a whole chunk decoded straight into the output
        else:
            data = _scratch_chunk(reader)
            reader.load_into(index, data)
        for i in members:
            out[dest[i] : dest[i] + length[i]] = data[offset[i] : offset[i] + length[i]]

    run_all(copy_chunk, groups, workers=workers)
    return out


def read_span(array, start=0, stop=None):
    """Entries ``start:stop`` of a zarr array along its first axis, through a
    :class:`ChunkReader` (every decode bounded). Strings come back as an object array."""
    stop = array.shape[0] if stop is None else min(stop, array.shape[0])
    return gather_rows(ChunkReader(array), [start], [max(0, stop - start)])


def run_all(function, items, *, workers=None):
    """Call ``function`` on every item in a thread pool; re-raise the first error."""
    items = list(items)
    workers = workers or default_workers()
    if len(items) <= 1 or workers == 1:
        for item in items:
            function(item)
        return
    with ThreadPoolExecutor(min(len(items), workers)) as pool:
        for _ in pool.map(function, items):
            pass


#: Above this many chunks to delete, :func:`delete_chunks` lists the stored ones first.
DELETE_BY_KEY = 64


def delete_chunks(reader, indices):
    """Delete the stored chunks ``indices`` of the reader's array (missing ones are fine).

    A long range (a block's reserved tail) is intersected with the chunks the store holds, so
    the cost follows what was written, not what was reserved.
    """
    store = reader.array.store_path.store
    if len(indices) > DELETE_BY_KEY:
        wanted = indices if isinstance(indices, range) else set(indices)
        indices = sorted(index for index in stored_chunk_indices(reader) if index in wanted)
    for index in indices:
        sync(store.delete(reader.key(index)))


async def _list_dir(store, prefix):
    return [name async for name in store.list_dir(prefix)]


def stored_chunk_indices(reader):
    """Indices along axis 0 of the chunks the store holds for the reader's array (a set)."""
    store = reader.array.store_path.store
    names = sync(_list_dir(store, chunk_prefix(reader.array.path)))
    return {int(name) for name in names if name.isdigit()}


async def _list_prefix(store, prefix):
    return [key async for key in store.list_prefix(prefix)]


def list_keys(store, prefix):
    """Keys of ``store`` under ``prefix`` (a zarr v3 store; '' lists everything)."""
    return sync(_list_prefix(store, prefix))


def zip_directory(store):
    """The ``zipfile.ZipFile`` of a store that is a zip archive (local or over fsspec), else
    None."""
    if isinstance(store, ZipStore):
        return zip_file(store)
    inner = getattr(getattr(store, "fs", None), "sync_fs", None)
    return (
        getattr(inner, "zip", None)
        if getattr(inner, "protocol", None) in ("zip", ("zip",))
        else None
    )
