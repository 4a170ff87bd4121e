"""The clip table of a feature store: one zarr array per column under ``clips/``."""

import math

import numpy as np

from featurestore.datasets import Clip
from featurestore.errors import StoreFormatError
from featurestore.store.layout import CLIP_CHUNK, check_array, string_compressors

#: Column name -> kind. Strings are "" when unknown, sizes -1 when unknown.
CLIP_COLUMNS = {
    "clip_id": "str",
    "scene": "str",
    "city": "str",
    "location": "str",
    "folds": "str",          # fold memberships joined by "|", e.g. "evaluate|test"
    "duration": "float64",   # seconds
    "audio": "str",          # path relative to the dataset root, "" if none
    "video": "str",
    "audio_bytes": "int64",  # source file sizes, -1 if not given
    "video_bytes": "int64",
    "audio_sha256": "str",   # source file checksums, "" if not given
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
        text = {name: str(self.columns[name][position]) for name in
                ("clip_id", "scene", "city", "location", "audio", "video", "folds")}
        return Clip(
            clip_id=text["clip_id"], audio=text["audio"] or None, video=text["video"] or None,
            scene=text["scene"], city=text["city"], location=text["location"],
            folds=tuple(fold for fold in text["folds"].split(FOLD_SEPARATOR) if fold),
            duration=float(self.duration[position]),
        )

    def records(self, positions=None):
        """List of :class:`~featurestore.datasets.clips.Clip` (all clips, or those at ``positions``)."""
        positions = range(len(self)) if positions is None else positions
        return [self.record(int(p)) for p in positions]


def empty_columns():
    """Zero-length columns of the right dtypes."""
    return {name: np.zeros(0, dtype="U1" if kind == "str" else kind)
            for name, kind in CLIP_COLUMNS.items()}


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
            raise StoreFormatError(f"clip {clip.clip_id!r} has no positive duration "
                                   f"({clip.duration!r}); probe the media first")
        if any(FOLD_SEPARATOR in fold or not fold for fold in clip.folds):
            raise StoreFormatError(f"clip {clip.clip_id!r} has an invalid fold in {clip.folds!r}")
        extra = sources.get(clip.clip_id, {})
        unknown = set(extra) - set(SOURCE_COLUMNS)
        if unknown:
            raise StoreFormatError(f"sources of clip {clip.clip_id!r} have unknown keys "
                                   f"{sorted(unknown)}; expected {list(SOURCE_COLUMNS)}")
        rows.append({
            "clip_id": clip.clip_id, "scene": clip.scene, "city": clip.city,
            "location": clip.location, "folds": FOLD_SEPARATOR.join(clip.folds),
            "duration": float(clip.duration), "audio": clip.audio or "", "video": clip.video or "",
            "audio_bytes": int(extra.get("audio_bytes", -1)),
            "video_bytes": int(extra.get("video_bytes", -1)),
            "audio_sha256": str(extra.get("audio_sha256", "")),
            "video_sha256": str(extra.get("video_sha256", "")),
        })
    columns = empty_columns()
    if rows:
        for name, kind in CLIP_COLUMNS.items():
            values = [row[name] for row in rows]
            columns[name] = as_unicode(values) if kind == "str" else np.asarray(values, kind)
    return columns


def create_clip_arrays(group):
    """Create the empty ``clips/`` arrays."""
    clips = group.require_group("clips")
    for name, kind in CLIP_COLUMNS.items():
        options = {"fill_value": -1} if kind == "int64" else {}
        clips.create_array(
            name, shape=(0,), chunks=(CLIP_CHUNK,), dtype=str if kind == "str" else kind,
            compressors=string_compressors(), dimension_names=("clip",), **options,
        )


def read_clip_table(group, n_clips):
    """Read the first ``n_clips`` rows of every clip column."""
    clips = group["clips"]
    columns = {}
    for name, kind in CLIP_COLUMNS.items():
        array = check_array(clips[name], f"clips/{name}")
        if array.ndim != 1 or array.shape[0] < n_clips:
            raise StoreFormatError(f"clips/{name} has shape {array.shape}, the store has "
                                   f"{n_clips} clips")
        values = np.asarray(array[:n_clips])
        columns[name] = as_unicode(values) if kind == "str" else values
    return ClipTable(columns)


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
            array[start:start + count] = values


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
    for position in np.flatnonzero(~keep):          # repeated ids in the input must agree
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
            raise StoreFormatError(f"clip {clip_id!r} {what} with a different {name} "
                                   f"({str(a)!r} != {str(b)!r})")
