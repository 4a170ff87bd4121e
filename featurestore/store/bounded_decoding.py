"""Decoding one stored chunk, with every size checked before anything is decompressed.

A store from a stranger may declare small chunks and store compressed data that decodes to
gigabytes, or strings of any length. avscene therefore never hands a chunk to a decompressor
before it knows what the output will hold: :func:`chunk_codecs` reads an array's metadata once
(zarr v3, only the codecs avscene writes, in the order it writes them, a chunk of at most
:data:`~featurestore.store.layout.MAX_CHUNK_BYTES`), and :func:`decode_chunk` checks the
checksum, reads the decoded size from the blosc header or from every zstd frame header and
refuses it unless it fits the chunk's shape and data type, then decompresses into a buffer of
that size. A string chunk must hold exactly its number of entries, each at most
:data:`~featurestore.store.layout.MAX_STRING_CHARS` characters long.
"""

import math
from dataclasses import dataclass

import numcodecs.blosc
import numcodecs.zstd
import numpy as np
import zarr
from crc32c import crc32c  # an install requirement of avscene (setup.cfg)
from numcodecs.vlen import VLenUTF8
from zarr.core.sync import sync

from featurestore.errors import StoreFormatError
from featurestore.store.layout import CODECS, MAX_CHUNK_BYTES, MAX_STRING_CHARS

#: Codecs that may sit between the serializer and the checksum (at most one of them).
COMPRESSORS = ("blosc", "zstd")
BLOSC_HEADER = 16
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_VLEN = VLenUTF8()


@dataclass(frozen=True)
class ChunkCodecs:
    """How the chunks of one array are stored, checked against what avscene writes.

    Attributes
    ----------
    shape : tuple of int
        Shape of one chunk.
    dtype : numpy dtype
        The stored data type (byte order included); ``object`` for strings.
    strings : bool
        True for ``vlen-utf8`` arrays.
    compressor : {"blosc", "zstd", None}
    checksum : bool
        True when the chain ends with ``crc32c``.
    """

    shape: tuple
    dtype: np.dtype
    strings: bool
    compressor: object
    checksum: bool

    @property
    def items(self):
        """Entries of one chunk."""
        return math.prod(self.shape)

    @property
    def max_bytes(self):
        """The most bytes one chunk may decode to, before the serializer: exactly the chunk's
        bytes for numbers; for strings, a 4-byte length per entry plus at most
        :data:`MAX_CHUNK_BYTES` of UTF-8 text."""
        if self.strings:
            return 4 + 4 * self.items + min(4 * self.items * MAX_STRING_CHARS, MAX_CHUNK_BYTES)
        return self.items * self.dtype.itemsize

    @property
    def max_stored(self):
        """The most bytes a stored chunk may hold (the compressors' worst-case growth)."""
        return self.max_bytes + self.max_bytes // 64 + 4096


def chunk_codecs(array, label):
    """Check an array's metadata before any of its chunks is read.

    Parameters
    ----------
    array : zarr.Array
    label : str
        The array's path in the store, for messages.

    Returns
    -------
    ChunkCodecs

    Raises
    ------
    StoreFormatError
        Not zarr v3; a codec outside :data:`CODECS` or a chain avscene does not write
        (serializer, at most one of blosc and zstd, then optionally crc32c); a data type that
        is neither a number nor a string; chunks larger than :data:`MAX_CHUNK_BYTES`.
    """
    if not isinstance(array, zarr.Array):
        raise StoreFormatError(f"{label} is a group, not an array")
    metadata = array.metadata
    if getattr(metadata, "zarr_format", None) != 3:
        raise StoreFormatError(f"{label} is not a zarr v3 array")
    names = [codec.to_dict().get("name") for codec in metadata.codecs]
    unknown = [name for name in names if name not in CODECS]
    if unknown:
        raise StoreFormatError(
            f"{label} uses codec {unknown[0]!r}; avscene reads only {', '.join(CODECS)}"
        )
    checksum = names[-1:] == ["crc32c"]
    middle = names[1:-1] if checksum else names[1:]
    if (
        names[:1] not in (["bytes"], ["vlen-utf8"])
        or len(middle) > 1
        or any(name not in COMPRESSORS for name in middle)
    ):
        raise StoreFormatError(
            f"{label} has the codec chain {' -> '.join(names)}; avscene "
            f"reads bytes or vlen-utf8, then blosc or zstd, then crc32c"
        )
    strings = names[0] == "vlen-utf8"
    dtype = _stored_dtype(array, metadata.codecs[0], strings, label)
    codecs = ChunkCodecs(
        shape=tuple(int(n) for n in array.chunks),
        dtype=dtype,
        strings=strings,
        compressor=middle[0] if middle else None,
        checksum=checksum,
    )
    size = codecs.items * (4 if strings else dtype.itemsize)
    if size > MAX_CHUNK_BYTES or any(n < 1 for n in codecs.shape):
        raise StoreFormatError(
            f"{label} has chunks {array.chunks} of {dtype} larger than {MAX_CHUNK_BYTES >> 20} MiB"
        )
    return codecs


def member_array(group, name, label):
    """The array ``name`` of a zarr group, or a one-line refusal: missing, a group, or a zarr
    v2 node (which a v3 group does not see)."""
    try:
        array = group[name]
    except KeyError:
        path = f"{group.store_path.path}/{name}".lstrip("/")
        for document, kind in ((".zarray", "array"), (".zgroup", "group")):
            if sync(group.store.exists(f"{path}/{document}")):
                raise StoreFormatError(
                    f"{label} is a zarr v2 {kind}; avscene reads zarr v3 stores only"
                ) from None
        raise StoreFormatError(f"{label} is missing") from None
    if not isinstance(array, zarr.Array):
        raise StoreFormatError(f"{label} is a group, not an array")
    return array


def check_array(array, label):
    """``array``, after :func:`chunk_codecs` found nothing to refuse in its metadata."""
    chunk_codecs(array, label)
    return array


def _stored_dtype(array, serializer, strings, label):
    """The numpy data type of the stored bytes, or ``object`` for strings."""
    kind = type(array.metadata.data_type).__name__
    if strings:
        if kind != "VariableLengthUTF8":
            raise StoreFormatError(
                f"{label} has data type {array.dtype} with the vlen-utf8 "
                f"codec; avscene stores strings there"
            )
        return np.dtype(object)
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biuf":
        raise StoreFormatError(
            f"{label} has data type {array.dtype}; avscene stores numbers and strings only"
        )
    endian = getattr(serializer.endian, "value", serializer.endian)
    return dtype.newbyteorder("<" if endian in (None, "little") else ">")


def decode_chunk(data, codecs, key):
    """One stored chunk as an ndarray of the chunk's shape.

    Parameters
    ----------
    data : bytes-like
        The stored object.
    codecs : ChunkCodecs
    key : str
        The chunk's key, for messages (``features/x/values/c/3/0``).

    Returns
    -------
    ndarray, shape ``codecs.shape``
        Of ``codecs.dtype`` (``object`` holding ``str`` for strings).

    Raises
    ------
    StoreFormatError
        One line ending in ``(corrupt chunk)``: a checksum mismatch, a decoded size the chunk
        cannot hold, a string longer than :data:`MAX_STRING_CHARS`, data that does not decode.
    """
    payload = memoryview(data).cast("B")
    if len(payload) > codecs.max_stored:
        _corrupt(key, f"{len(payload)} bytes stored, more than a chunk of {codecs.shape} can need")
    if codecs.checksum:
        if len(payload) < 4:
            _corrupt(key, f"{len(payload)} bytes")
        payload, stored = payload[:-4], payload[-4:]
        if crc32c(payload) != int.from_bytes(stored, "little"):
            _corrupt(key, "crc32c checksum mismatch")
    if codecs.compressor == "blosc":
        payload = _blosc(payload, codecs, key)
    elif codecs.compressor == "zstd":
        payload = _zstd(payload, codecs, key)
    if codecs.strings:
        return vlen_strings(payload, codecs.items, key).reshape(codecs.shape)
    if len(payload) != codecs.max_bytes:
        _corrupt(key, f"decodes to {len(payload)} bytes, the chunk holds {codecs.max_bytes}")
    return np.frombuffer(payload, codecs.dtype).reshape(codecs.shape)


def _check_size(size, codecs, key, what):
    """Refuse a decoded size the chunk cannot hold, before decompressing."""
    exact = not codecs.strings
    if (exact and size != codecs.max_bytes) or size > codecs.max_bytes:
        _corrupt(
            key,
            f"its {what} declares {size} bytes, the chunk holds "
            f"{'' if exact else 'at most '}{codecs.max_bytes}",
        )


def _blosc(payload, codecs, key):
    """Decompress a blosc buffer after checking its header's sizes."""
    if len(payload) < BLOSC_HEADER:
        _corrupt(key, f"{len(payload)} bytes, shorter than a blosc header")
    header = bytes(payload[:BLOSC_HEADER])
    size, stored = (int.from_bytes(header[at : at + 4], "little") for at in (4, 12))
    if stored != len(payload):
        _corrupt(key, f"its blosc header says {stored} bytes, {len(payload)} are stored")
    _check_size(size, codecs, key, "blosc header")
    out = np.empty(size, np.uint8)
    try:
        numcodecs.blosc.decompress(payload, out)
    except (RuntimeError, ValueError) as error:
        _corrupt(key, f"blosc: {error}")
    return memoryview(out)


def _zstd(payload, codecs, key):
    """Decompress zstd frames after checking the sizes their headers declare."""
    size = zstd_content_size(payload, key)
    _check_size(size, codecs, key, "zstd frame header")
    try:
        out = numcodecs.zstd.decompress(payload)
    except (RuntimeError, ValueError) as error:
        _corrupt(key, f"zstd: {error}")
    if len(out) != size:
        _corrupt(key, f"zstd decoded {len(out)} bytes, its header declared {size}")
    return memoryview(out).cast("B")


def zstd_content_size(payload, key):
    """Total decoded size declared by the zstd frames of ``payload``, read from the frame
    headers and block headers only (nothing is decompressed).

    Every frame must declare its size; skippable frames and frames that do not end exactly at
    the end of the payload are refused.
    """
    total, at, end = 0, 0, len(payload)
    while at < end or at == 0:
        if bytes(payload[at : at + 4]) != ZSTD_MAGIC:
            _corrupt(key, f"no zstd frame at byte {at}")
        size, at, checksum = _zstd_frame_header(payload, at + 4, key)
        at = _zstd_blocks_end(payload, at, key) + (4 if checksum else 0)
        if at > end:
            _corrupt(key, "a zstd frame runs past the end of the chunk")
        total += size
    return total


def _zstd_frame_header(payload, at, key):
    """(declared content size, offset of the first block, has a checksum) of a frame whose
    header starts at ``at`` (after the magic number)."""
    if at >= len(payload):
        _corrupt(key, "a zstd frame header is cut short")
    descriptor = payload[at]
    fcs_flag, single = descriptor >> 6, (descriptor >> 5) & 1
    dictionary = (0, 1, 2, 4)[descriptor & 3]
    fcs_bytes = (1 if single else 0, 2, 4, 8)[fcs_flag]
    at += 1 + (0 if single else 1) + dictionary
    if descriptor & 0x08 or fcs_bytes == 0 or at + fcs_bytes > len(payload):
        _corrupt(key, "a zstd frame does not declare its decoded size")
    size = int.from_bytes(payload[at : at + fcs_bytes], "little") + (256 if fcs_bytes == 2 else 0)
    return size, at + fcs_bytes, bool(descriptor & 0x04)


def _zstd_blocks_end(payload, at, key):
    """Offset just after the last block of a zstd frame whose blocks start at ``at``."""
    while True:
        if at + 3 > len(payload):
            _corrupt(key, "a zstd block header is cut short")
        header = int.from_bytes(payload[at : at + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            _corrupt(key, "a zstd block of reserved type")
        at += 3 + (1 if kind == 1 else size)
        if last:
            return at


def vlen_strings(payload, items, key):
    """The strings of a ``vlen-utf8`` buffer: an entry count, then a length and the UTF-8
    bytes of each entry (the buffer's size is checked before, so decoding allocates at most
    what it holds).

    Returns
    -------
    ndarray of object (str), shape (items,)
    """
    declared = int.from_bytes(payload[:4], "little") if len(payload) >= 4 else None
    if declared != items:
        _corrupt(key, f"declares {declared} strings, the chunk holds {items}")
    try:
        out = _VLEN.decode(payload)
    except (ValueError, UnicodeDecodeError) as error:
        _corrupt(key, f"vlen-utf8: {(str(error).splitlines() or ['does not decode'])[0]}")
    lengths = np.fromiter(map(len, out), np.int64, items)
    if items and lengths.max() > MAX_STRING_CHARS:
        entry = int(lengths.argmax())
        _corrupt(
            key,
            f"entry {entry} holds a string of {lengths[entry]} characters; avscene "
            f"reads strings of at most {MAX_STRING_CHARS}",
        )
    return out


def _corrupt(key, what):
    raise StoreFormatError(f"{key}: {what} (corrupt chunk)")
