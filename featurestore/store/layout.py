"""On-disk layout of a feature store: names, codecs, row reservation and block regions.

Everything here is a pure function of the clip table and a feature's definition, so every
process that opens a store (several block writers at once, a reader elsewhere) derives the same
layout without talking to the others.

Layout (zarr v3 group)::

    /                      attrs: avscene (format, block_clips, n_clips, created, versions),
                           plus writer keys (dataset_root, manifest checksum, ...)
    clips/<column>         (clip,)  clip table, one array per column
    features/<name>/       attrs: name, dim, frame_rate, storage_dtype, params, fingerprint, ...
        values             (row, dim)  storage dtype, chunks (chunk_rows, dim)
        timestamps         (row,)      float64 seconds from the clip start, NaN where unwritten
        offset, count      (clip,)     first row and number of rows of each clip
        status             (clip,)     int8: 0 pending, 1 committed, 2 failed, 3 not applicable
        reason             (clip,)     why a clip failed or is not applicable ("" otherwise)

Clips are partitioned, in clip-table order, into blocks of ``block_clips`` clips. For every
feature, block b owns the rows ``[region_start[b], region_stop[b])``: a region that starts on a
chunk boundary and holds ``ceil(duration * frame_rate) + ROW_MARGIN`` rows per clip, rounded up
to whole chunks. Regions follow each other in block order, so adding clips only appends blocks
(or grows the last one), and writers of different blocks never touch the same chunk.
"""

import json
import re

import numpy as np
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from featurestore.errors import StoreFormatError
from featurestore.provenance import sha256_json

FORMAT = "avscene.featurestore"
FORMAT_VERSION = 1

PENDING, COMMITTED, FAILED = 0, 1, 2
#: The clip lacks the feature's modality (its manifest names no such file): done, not failed.
NOT_APPLICABLE = 3
STATUS_NAMES = {
    PENDING: "pending",
    COMMITTED: "committed",
    FAILED: "failed",
    NOT_APPLICABLE: "not applicable",
}

DEFAULT_BLOCK_CLIPS = 256
#: Rows reserved per clip beyond ``ceil(duration * frame_rate)`` (e.g. 480,001-sample clips).
ROW_MARGIN = 2
#: The most rows one clip may reserve (a duration times a frame rate beyond this is refused).
MAX_CLIP_ROWS = 1 << 40
#: Chunk length of the clip-table columns (written by one process only).
CLIP_CHUNK = 16384
#: A frame at time t belongs to segment floor(t + SEGMENT_EPS).
SEGMENT_EPS = 1e-6

COMPRESSIONS = ("zstd", "lz4", "none")
#: lz4+shuffle by default: the store is read many times on a laptop, and lz4 decodes ~3x faster
#: than zstd (the only codec here that reaches half of np.load's speed on a full read); zstd+shuffle
#: is the option for the smallest archives to ship (measured trade-off: docs/benchmarks.md, `make bench`).
DEFAULT_COMPRESSION = "lz4"
STORAGE_DTYPES = ("float32", "float16")
POOLINGS = ("mean", "max", "meanstd", "center", "none")

INDEX_ARRAYS = ("offset", "count", "status", "reason")

#: The folder of an array's chunks under zarr v3's default chunk key encoding (separator "/").
CHUNK_FOLDER = "c"
_CHUNK_KEY = re.compile(rf"(?P<array>.+)/{CHUNK_FOLDER}(?P<coords>(?:/[0-9]+)+)")

#: The only codecs avscene writes, and the only ones it reads (others are refused at open).
CODECS = ("bytes", "blosc", "zstd", "crc32c", "vlen-utf8")
#: A chunk of any array avscene reads decodes to at most this many bytes (string arrays: this
#: many bytes of text, plus 4 bytes per entry); the default chunks hold 4 MiB.
MAX_CHUNK_BYTES = 64 << 20
#: The longest string avscene reads from a store (clip ids, paths, labels, reasons), in characters.
MAX_STRING_CHARS = 4096
#: The most memory the clip table may take once read (fixed-width strings and numbers).
MAX_CLIP_TABLE_BYTES = 256 << 20


def compressors(compression, itemsize):
    """Bytes-to-bytes codecs for numeric arrays: blosc (byte shuffle) then a crc32c checksum.

    ``zstd`` uses level 1 with 256 KiB blosc blocks (higher levels gain little on embeddings and
    encode much slower); ``lz4`` is faster and compresses dense float32 embeddings barely at all.
    """
    if compression == "none":
        return [Crc32cCodec()]
    if compression == "zstd":
        codec = BloscCodec(
            cname="zstd", clevel=1, shuffle="shuffle", typesize=itemsize, blocksize=1 << 18
        )
    elif compression == "lz4":
        codec = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=itemsize)
    else:
        raise StoreFormatError(
            f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}"
        )
    return [codec, Crc32cCodec()]


def string_compressors():
    """Codecs after the vlen-utf8 serializer of string arrays."""
    return [ZstdCodec(level=3), Crc32cCodec()]


def chunk_rows_for(dim, storage_dtype, chunk_mib):
    """Rows per chunk so that one chunk of ``values`` holds about ``chunk_mib`` MiB."""
    row_bytes = dim * np.dtype(storage_dtype).itemsize
    return max(1, int(chunk_mib * (1 << 20)) // row_bytes)


def reserved_rows(durations, frame_rate, margin=ROW_MARGIN):
    """Rows reserved per clip: ``ceil(duration * frame_rate) + margin``.

    Parameters
    ----------
    durations : ndarray, shape (n_clips,)
    frame_rate : float
        Frames per second of the feature.

    Returns
    -------
    ndarray, shape (n_clips,), int64
    """
    durations = np.asarray(durations, dtype=np.float64)
    rows = np.ceil(durations * frame_rate - 1e-6)
    if rows.size and not rows.max() <= MAX_CLIP_ROWS:
        raise StoreFormatError(
            f"a clip of {durations[np.argmax(rows)]!r} s at {frame_rate!r} "
            f"frames per second would reserve more than {MAX_CLIP_ROWS} rows"
        )
    return rows.astype(np.int64) + margin


def block_regions(durations, *, frame_rate, chunk_rows, block_clips, margin=ROW_MARGIN):
    """Row region of every block of a feature.

    Returns
    -------
    starts, stops : ndarray, shape (n_blocks,), int64
        Block b owns rows ``[starts[b], stops[b])``; both are multiples of ``chunk_rows``.
    """
    reserve = reserved_rows(durations, frame_rate, margin)
    if reserve.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    per_block = np.add.reduceat(reserve, np.arange(0, reserve.size, block_clips))
    capacity = -(-per_block // chunk_rows) * chunk_rows
    stops = np.cumsum(capacity)
    return stops - capacity, stops


def n_segments(durations):
    """Segments per clip: ``floor(duration + 1e-6)``, at least 1."""
    durations = np.asarray(durations, dtype=np.float64)
    return np.maximum(1, np.floor(durations + SEGMENT_EPS)).astype(np.int64)


def normalise_params(params, *, name):
    """Return ``params`` as plain JSON types (tuples become lists), or refuse non-JSON values."""
    try:
        return json.loads(json.dumps(params, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise StoreFormatError(f"params of feature {name!r} are not plain JSON: {error}") from None


def definition(*, dim, frame_rate, params, storage_dtype):
    """The parts of a feature that must never change once rows are stored."""
    return {
        "dim": int(dim),
        "frame_rate": float(frame_rate),
        "storage_dtype": str(storage_dtype),
        "params": params,
    }


def fingerprint(definition_):
    """sha256 of a feature definition's params, dim and storage dtype."""
    return sha256_json({key: definition_[key] for key in ("params", "dim", "storage_dtype")})


def definition_diff(old, new, prefix=""):
    """Dotted keys whose values differ between two JSON dicts, with both values.

    Returns
    -------
    list of (key, old_value, new_value)
    """
    differences = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{key}"
        a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            differences.extend(definition_diff(a, b, prefix=path + "."))
        elif a != b:
            differences.append((path, a, b))
    return differences


def describe_diff(differences, *, limit=6):
    """One-line text of :func:`definition_diff` output."""

    def short(value):
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 40 else text[:37] + "..."

    parts = [f"{key} ({short(a)} stored, {short(b)} given)" for key, a, b in differences[:limit]]
    if len(differences) > limit:
        parts.append(f"and {len(differences) - limit} more")
    return ", ".join(parts)


def chunk_key(array_path: str, index: int, *, ndim: int = 1) -> str:
    """Store key of row-chunk ``index`` of an array chunked along its first axis only.

    The one place avscene names a chunk: zarr v3's default chunk key encoding (separator
    ``/``), which every array avscene writes uses: ``<array_path>/c/<index>``, then ``/0`` for
    each further axis (held whole in one chunk), e.g. ``features/x/values/c/3/0``.

    Parameters
    ----------
    array_path : str
        The array's key in the store (``features/x/values``), without a trailing ``/``.
    index : int
        The chunk's index along axis 0.
    ndim : int
        The array's number of dimensions (1 or more).
    """
    if ndim < 1 or int(index) < 0:
        raise ValueError(f"no chunk {index!r} of a {ndim}-dimensional array")
    coords = "/".join([str(int(index))] + ["0"] * (ndim - 1))
    return f"{chunk_prefix(array_path)}/{coords}"


def chunk_prefix(array_path: str) -> str:
    """The key every chunk key of the array at ``array_path`` starts with (``<array_path>/c``;
    list it to find the stored chunks)."""
    return f"{array_path}/{CHUNK_FOLDER}"


def parse_chunk_key(key: str) -> tuple[str, tuple[int, ...]] | None:
    """(array path, chunk coordinates) of a key in zarr v3's default chunk key encoding
    (``<array>/c/<i>[/<j>...]``, digits only), or None for any other key.

    >>> parse_chunk_key("features/x/values/c/3/0")
    ('features/x/values', (3, 0))
    """
    match = _CHUNK_KEY.fullmatch(key)
    if match is None:
        return None
    try:
        coords = tuple(int(part) for part in match.group("coords")[1:].split("/"))
    except ValueError:  # more digits than Python converts (no zarr key)
        return None
    return match.group("array"), coords


def check_durations(durations, clip_ids):
    """Refuse clip durations that are not finite and positive (they size the block regions)."""
    durations = np.asarray(durations, dtype=np.float64)
    bad = ~(np.isfinite(durations) & (durations > 0))
    if np.any(bad):
        position = int(np.flatnonzero(bad)[0])
        raise StoreFormatError(
            f"clips/duration: clip {str(clip_ids[position])!r} has duration "
            f"{durations[position]!r}; the store is corrupt"
        )
    return durations


def check_name(name):
    """Refuse feature names that are not a single path component."""
    if not name or not all(ch.isalnum() or ch in "_-." for ch in name) or name[0] == ".":
        raise StoreFormatError(f"feature name {name!r} must be letters, digits, '_', '-' or '.'")
    return name
