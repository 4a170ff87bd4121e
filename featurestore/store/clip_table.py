"""The clip table of a feature store: one zarr array per column under ``clips/``."""

import math

import numpy as np

from featurestore.datasets import Clip
from featurestore.errors import StoreFormatError
from featurestore.store.bounded_decoding import member_array
from featurestore.store.chunks import ChunkReader, gather_rows
from featurestore.store.layout import (
    CLIP_CHUNK,
    MAX_CLIP_TABLE_BYTES,
    MAX_STRING_CHARS,
    string_compressors,
)

#: Column name -> kind. Strings are "" when unknown, sizes -1 when unknown.
CLIP_COLUMNS = {
    "clip_id": "str",
    "scene": "str",
    "city": "str",
    "location": "str",
    "folds": "str",  # fold memberships joined by "|", e.g. "evaluate|test"
    "duration": "float64",  # seconds
    "audio": "str",  # path relative to the dataset root, "" if none
    "video": "str",
    "audio_bytes": "int64",  # source file sizes, -1 if not given
    "video_bytes": "int64",
    "audio_sha256": "str",  # source file checksums, "" if not given
    "video_sha256": "str",
}
SOURCE_COLUMNS = ("audio_bytes", "video_bytes", "audio_sha256", "video_sha256")
FOLD_SEPARATOR = "|"


def as_unicode(values):
    """Return a fixed-width unicode numpy array (zarr returns StringDType for string arrays)."""
    values = np.asarray(values)
    if values.dtype.kind == "U":
        return values
    if values.size == 0:
        return np.zeros(values.shape, dtype="U1")
    width = max(1, int(np.strings.str_len(values.astype(np.dtypes.StringDType())).max()))
    return values.astype(f"U{width}")


class ClipTable:
    """Columnar view of the clips of a store, in clip-table (position) order.

    Attributes
    ----------
    clip_id, scene, city, location, folds, audio, video, audio_sha256, video_sha256 : ndarray of str
        shape (n_clips,). ``folds`` joins memberships with ``"|"``; missing paths are ``""``.
    duration : ndarray, shape (n_clips,), float64
    audio_bytes, video_bytes : ndarray, shape (n_clips,), int64 (-1 when not given)
    """

    # One attribute per column of CLIP_COLUMNS (set in __init__), declared for type checkers.
    clip_id: np.ndarray
    scene: np.ndarray
    city: np.ndarray
    location: np.ndarray
    folds: np.ndarray
    duration: np.ndarray
    audio: np.ndarray
    video: np.ndarray
    audio_bytes: np.ndarray
    video_bytes: np.ndarray
    audio_sha256: np.ndarray
    video_sha256: np.ndarray

    def __init__(self, columns):
        self.columns = {name: columns[name] for name in CLIP_COLUMNS}
        for name, values in self.columns.items():
            setattr(self, name, values)
        self._order = None

    def __len__(self):
        return len(self.clip_id)

    def __repr__(self):
        return f"<ClipTable {len(self)} clips>"

    def positions(self, ids):
        """Positions of clip ids (str or iterable of str), as an int64 array in the given order."""
        ids = as_unicode([ids] if isinstance(ids, str) else list(ids))
        if self._order is None:
            self._order = np.argsort(self.clip_id, kind="stable")
        sorted_ids = self.clip_id[self._order]
        where = np.minimum(np.searchsorted(sorted_ids, ids), max(len(self) - 1, 0))
        found = sorted_ids[where] == ids if len(self) else np.zeros(len(ids), bool)
        if not np.all(found):
            missing = ids[~found][0]
            raise StoreFormatError(f"clip {str(missing)!r} is not in the store")
        return self._order[where].astype(np.int64)

    def fold_mask(self, folds):
        """Boolean mask of clips that belong to any of ``folds`` (a clip may be in several)."""
        wanted = {folds} if isinstance(folds, str) else set(folds)
        unique, inverse = np.unique(self.folds, return_inverse=True)
        hit = np.array([bool(wanted & set(text.split(FOLD_SEPARATOR))) for text in unique], bool)
        return hit[inverse] if len(unique) else np.zeros(len(self), bool)

    def record(self, position):
        """The :class:`~featurestore.datasets.clips.Clip` at ``position``."""
        text = {
            name: str(self.columns[name][position])
            for name in ("clip_id", "scene", "city", "location", "audio", "video", "folds")
        }
        return Clip(
            clip_id=text["clip_id"],
            audio=text["audio"] or None,
            video=text["video"] or None,
            scene=text["scene"],
            city=text["city"],
            location=text["location"],
            folds=tuple(fold for fold in text["folds"].split(FOLD_SEPARATOR) if fold),
            duration=float(self.duration[position]),
        )

    def records(self, positions=None):
        """List of :class:`~featurestore.datasets.clips.Clip` (all clips, or those at ``positions``)."""
        positions = range(len(self)) if positions is None else positions
        return [self.record(int(p)) for p in positions]


def empty_columns():
    """Zero-length columns of the right dtypes."""
    return {
        name: np.zeros(0, dtype="U1" if kind == "str" else kind)
        for name, kind in CLIP_COLUMNS.items()
    }


def encode_clips(clips, sources=None):
    """Columns for new clips; ``sources`` maps clip id -> {audio_bytes, ..., video_sha256}."""
    sources = sources or {}
    rows = []
    for clip in clips:
        if not isinstance(clip, Clip):
            raise StoreFormatError(f"add_clips needs Clip records, got {type(clip).__name__}")
        if not clip.clip_id:
            raise StoreFormatError("a clip has an empty clip_id")
        if clip.duration is None or not math.isfinite(clip.duration) or clip.duration <= 0:
            raise StoreFormatError(
                f"clip {clip.clip_id!r} has no positive duration "
                f"({clip.duration!r}); probe the media first"
            )
        if any(FOLD_SEPARATOR in fold or not fold for fold in clip.folds):
            raise StoreFormatError(f"clip {clip.clip_id!r} has an invalid fold in {clip.folds!r}")
        extra = sources.get(clip.clip_id, {})
        unknown = set(extra) - set(SOURCE_COLUMNS)
        if unknown:
            raise StoreFormatError(
                f"sources of clip {clip.clip_id!r} have unknown keys "
                f"{sorted(unknown)}; expected {list(SOURCE_COLUMNS)}"
            )
        rows.append(
            {
                "clip_id": clip.clip_id,
                "scene": clip.scene,
                "city": clip.city,
                "location": clip.location,
                "folds": FOLD_SEPARATOR.join(clip.folds),
                "duration": float(clip.duration),
                "audio": clip.audio or "",
                "video": clip.video or "",
                "audio_bytes": int(extra.get("audio_bytes", -1)),
                "video_bytes": int(extra.get("video_bytes", -1)),
                "audio_sha256": str(extra.get("audio_sha256", "")),
                "video_sha256": str(extra.get("video_sha256", "")),
            }
        )
    columns = empty_columns()
    if rows:
        for name, kind in CLIP_COLUMNS.items():
            values = [row[name] for row in rows]
            if kind == "str":
                _check_lengths(name, values, rows)
            columns[name] = as_unicode(values) if kind == "str" else np.asarray(values, kind)
    return columns


def _check_lengths(name, values, rows):
    """Refuse a string longer than avscene reads back (:data:`MAX_STRING_CHARS`)."""
    lengths = [len(value) for value in values]
    if max(lengths) > MAX_STRING_CHARS:
        i = int(np.argmax(lengths))
        raise StoreFormatError(
            f"clip {rows[i]['clip_id'][:80]!r}: its {name} has {lengths[i]} "
            f"characters; a store holds strings of at most "
            f"{MAX_STRING_CHARS}"
        )


def create_clip_arrays(group):
    """Create the empty ``clips/`` arrays."""
    clips = group.require_group("clips")
    for name, kind in CLIP_COLUMNS.items():
        options = {"fill_value": -1} if kind == "int64" else {}
        clips.create_array(
            name,
            shape=(0,),
            chunks=(CLIP_CHUNK,),
            dtype=str if kind == "str" else kind,
            compressors=string_compressors(),
            dimension_names=("clip",),
            **options,
        )


def read_clip_table(group, n_clips):
    """Read the first ``n_clips`` rows of every clip column.

    Every column is checked before it is read (a 1-D array of the column's data type, codecs
    avscene reads, at least ``n_clips`` entries), and the table must fit
    :data:`~featurestore.store.layout.MAX_CLIP_TABLE_BYTES` in memory: string columns are read
    chunk by chunk and refused as soon as their longest entry would make it larger.

    Raises
    ------
    StoreFormatError
        One line naming the column.
    """
    readers = {
        name: _column_reader(group, name, kind, n_clips) for name, kind in CLIP_COLUMNS.items()
    }
    budget = _TableBudget(n_clips)
    columns = {}
    for name, kind in CLIP_COLUMNS.items():
        if kind == "str":
            columns[name] = _read_strings(readers[name], n_clips, budget)
        else:
            columns[name] = gather_rows(readers[name], [0], [n_clips])
    empty = np.flatnonzero(columns["clip_id"] == "")
    if empty.size:
        raise StoreFormatError(
            f"clips/clip_id: the clip at position {empty[0]} has an empty id "
            f"({empty.size} such clips; a chunk of clip ids is missing)"
        )
    return ClipTable(columns)


def _column_reader(group, name, kind, n_clips):
    """A :class:`ChunkReader` of ``clips/<name>``, after checking its shape and data type."""
    label = f"clips/{name}"
    try:
        clips = group["clips"]
    except KeyError:
        raise StoreFormatError("clips is missing: the store has no clip table") from None
    array = member_array(clips, name, label)
    reader = ChunkReader(array)
    wanted = "strings" if kind == "str" else kind
    stored = "strings" if reader.codecs.strings else str(reader.dtype)
    if stored != wanted:
        raise StoreFormatError(f"{label} holds {stored}; the clip table stores {wanted} there")
    if array.ndim != 1 or array.shape[0] < n_clips:
        raise StoreFormatError(f"{label} has shape {array.shape}, the store has {n_clips} clips")
    return reader


class _TableBudget:
    """The memory the clip table will take: ``n_clips`` times four bytes per character of
    each string column's longest entry, plus the numeric columns."""

    def __init__(self, n_clips):
        self.n_clips = n_clips
        self.widths = {name: 1 for name, kind in CLIP_COLUMNS.items() if kind == "str"}
        self.numbers = sum(
            np.dtype(kind).itemsize for kind in CLIP_COLUMNS.values() if kind != "str"
        )
        size = self._size()
        if size > MAX_CLIP_TABLE_BYTES:
            raise StoreFormatError(
                f"the store declares {n_clips} clips, whose table would take "
                f"at least {size >> 20} MiB in memory; avscene reads clip "
                f"tables of at most {MAX_CLIP_TABLE_BYTES >> 20} MiB"
            )

    def _size(self):
        return self.n_clips * (4 * sum(self.widths.values()) + self.numbers)

    def widen(self, name, width):
        """Record that column ``name`` holds an entry of ``width`` characters."""
        if width > self.widths[name]:
            self.widths[name] = width
            self._check(f"clips/{name}")

    def _check(self, label):
        size = self._size()
        if size > MAX_CLIP_TABLE_BYTES:
            longest = max(self.widths, key=self.widths.get)
            raise StoreFormatError(
                f"{label}: a table of {self.n_clips} clips with entries of up to "
                f"{self.widths[longest]} characters (in clips/{longest}) would take "
                f"{size >> 20} MiB in memory; avscene reads clip tables of at most "
                f"{MAX_CLIP_TABLE_BYTES >> 20} MiB"
            )


def _read_strings(reader, n_clips, budget):
    """The first ``n_clips`` entries of a string column as fixed-width unicode, chunk by chunk,
    each chunk checked against the table's budget before it is converted."""
    name = reader.array.path.rsplit("/", 1)[-1]
    parts = []
    for index in range(-(-n_clips // reader.rows)):
        chunk = reader.load(index)[: n_clips - index * reader.rows]
        width = max(map(len, chunk), default=0)
        budget.widen(name, width)
        parts.append(chunk.astype(f"U{max(1, width)}"))
    return np.concatenate(parts) if parts else np.zeros(0, "U1")


def write_clip_rows(group, columns, start):
    """Write ``columns`` at rows ``start...`` of the clip arrays, growing them as needed."""
    clips = group["clips"]
    count = len(columns["clip_id"])
    for name in CLIP_COLUMNS:
        array = clips[name]
        if array.shape[0] != start + count:
            array.resize((start + count,))
        if count:
            values = columns[name]
            if values.dtype.kind == "U":
                values = values.astype(object)
            array[start : start + count] = values


def merge_new_clips(table, columns):
    """Split candidate clips into new ones and check the rest against the stored copies.

    Returns
    -------
    dict of ndarray
        Columns of the clips that are not in ``table`` yet (input order, duplicates removed).
    """
    ids = columns["clip_id"]
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(len(ids), bool)
    keep[first] = True
    for position in np.flatnonzero(~keep):  # repeated ids in the input must agree
        original = first[np.searchsorted(ids[first], ids[position])]
        _check_same(columns, original, columns, position, what="given twice")
    fresh = keep.copy()
    if len(table):
        known = np.isin(ids, table.clip_id) & keep
        if np.any(known):
            stored = table.positions(ids[known])
            for position, old in zip(np.flatnonzero(known), stored):
                _check_same(table.columns, old, columns, position, what="already stored")
        fresh &= ~known
    return {name: values[fresh] for name, values in columns.items()}


def _check_same(old_columns, old, new_columns, new, *, what):
    """Refuse a clip whose Clip fields differ from an earlier copy of it."""
    for name in ("scene", "city", "location", "folds", "duration", "audio", "video"):
        a, b = old_columns[name][old], new_columns[name][new]
        if a != b:
            clip_id = str(new_columns["clip_id"][new])
            raise StoreFormatError(
                f"clip {clip_id!r} {what} with a different {name} ({str(a)!r} != {str(b)!r})"
            )
