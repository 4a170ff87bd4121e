"""Building blocks of the manifest readers: delimited tables, safe paths, TAU names, media checks.

Row numbers are line numbers in the file as a spreadsheet shows them: the header is row 1,
the first data row is row 2. Every problem is one line ``<file> row <n>: <what is wrong>``
with ``<file>`` relative to the dataset root.
"""

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from featurestore.datasets.labels import SCENES
from featurestore.errors import ManifestError

_INTEGER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Table:
    """A delimited text file read whole: header names and data rows with their row numbers.

    Attributes
    ----------
    name : str
        The file's path relative to the dataset root (used in messages).
    columns : tuple of str
        Header names, stripped and lower-cased.
    rows : list of (int, list of str)
        ``(row_number, fields)`` for every non-blank data row; fields are stripped.
    delimiter : str
        ``"\\t"`` or ``","``.
    """

    name: str
    columns: tuple
    rows: list
    delimiter: str

    def index(self, *aliases):
        """Return the position of the first column named by one of ``aliases``, or None.

        Raises ManifestError when two aliases of the same field are both present.
        """
        found = [name for name in aliases if name in self.columns]
        if len(found) > 1:
            raise ManifestError(f"{self.name}: header has both {found[0]!r} and {found[1]!r}")
        return self.columns.index(found[0]) if found else None


def read_table(path, *, name):
    """Read a tab- or comma-separated file with a header line.

    The delimiter is a tab if the header line holds one, else a comma.

    Raises
    ------
    ManifestError
        The file cannot be read or decoded, is empty, or its header repeats a column name
        or has an empty one.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ManifestError(f"{name}: cannot be read ({reason})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ManifestError(f"{name}: empty file or blank header line")
    delimiter = "\t" if "\t" in lines[0] else ","
    records = csv.reader(lines, delimiter=delimiter)
    columns = tuple(field.strip().lower() for field in next(records))
    if "" in columns:
        raise ManifestError(f"{name}: header has an empty column name: {lines[0]!r}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ManifestError(f"{name}: header repeats column {repeated[0]!r}")
    rows = []
    for number, fields in enumerate(records, start=2):
        if any(field.strip() for field in fields):
            rows.append((number, [field.strip() for field in fields]))
    return Table(name=name, columns=columns, rows=rows, delimiter=delimiter)


def unsafe_path_reason(path):
    """Return why ``path`` may not appear in a manifest (absolute, ``..``), or None if it may."""
    if path.startswith(("/", "\\")) or PureWindowsPath(path).drive:
        return f"absolute path {path!r} (paths must be relative to the dataset root)"
    if ".." in re.split(r"[/\\]", path):
        return f"path {path!r} leaves the dataset root ('..')"
    return None


def posix(path):
    """Return a manifest path with POSIX separators and no ``./`` prefix."""
    return str(PurePosixPath(path.replace("\\", "/")))


def stem(path):
    """Return the file name of a POSIX path without its last suffix."""
    return PurePosixPath(path).stem


@dataclass(frozen=True)
class TauName:
    """The fields of a development file name ``<scene>-<city>-<location_id>-<segment_id>``."""

    scene: str
    city: str
    location_id: str
    segment_id: str

    @property
    def identifier(self):
        """``<city>-<location_id>``, as in meta.csv (``'-'.join(stem.split('-')[1:3])``)."""
        return f"{self.city}-{self.location_id}"


def parse_tau_name(clip_id):
    """Parse a development clip id; return (TauName, None) or (None, reason).

    The identifier is ``'-'.join(stem.split('-')[1:3])``; dcase_util's fallback
    (``[1:-2]``, which yields only the city for these names) is never used.
    """
    parts = clip_id.split("-")
    if len(parts) != 4 or not all(parts):
        return None, f"file name {clip_id!r} is not <scene>-<city>-<location>-<segment>"
    scene, city, location_id, segment_id = parts
    if scene not in SCENES:
        return None, f"file name {clip_id!r} starts with unknown scene {scene!r}"
    if not (_INTEGER.fullmatch(location_id) and _INTEGER.fullmatch(segment_id)):
        return None, f"file name {clip_id!r}: location and segment must be integers"
    return TauName(scene, city.lower(), location_id, segment_id), None


def is_integer_id(clip_id):
    """Whether ``clip_id`` is an evaluation-set id (a non-negative integer)."""
    return bool(_INTEGER.fullmatch(clip_id))


class MediaIndex:
    """Cheap existence checks: each directory under the root is listed once."""

    def __init__(self, root):
        self.root = Path(root)
        self._listings = {}

    def exists(self, relative):
        """Whether the file ``root/relative`` exists (no decoding, no stat per file)."""
        parent, _, name = relative.rpartition("/")
        if parent not in self._listings:
            try:
                with os.scandir(self.root / parent) as entries:
                    self._listings[parent] = {e.name for e in entries if not e.is_dir()}
            except OSError:
                self._listings[parent] = set()
        return name in self._listings[parent]

    def files(self, folder, suffix):
        """Sorted names of the files ``root/folder/*<suffix>``."""
        self.exists(f"{folder}/")
        return sorted(name for name in self._listings[folder] if name.endswith(suffix))


def check_media(clips, media, problems):
    """Report every media file the manifest names but the disk lacks; return ``clips`` as given.

    One line per missing file (``audio/x.wav: missing``), or one line per folder when the whole
    folder is absent (``audio/: folder missing (120 files listed)``). A missing file keeps its
    path in the clip, so that the extractor reports it as a failure of that clip (and a rerun
    with ``--retry-failed`` finds it once restored); a modality the manifest names no file for
    is None, which the extractor records as not applicable.
    """
    absent_folders = {}
    for clip in clips:
        for modality in ("audio", "video"):
            path = getattr(clip, modality)
            if path is not None and not media.exists(path):
                folder = path.rpartition("/")[0]
                if folder and not (media.root / folder).is_dir():
                    absent_folders[folder] = absent_folders.get(folder, 0) + 1
                else:
                    problems.append(f"{path}: missing")
    problems += [
        f"{folder}/: folder missing ({count} files listed)"
        for folder, count in absent_folders.items()
    ]
    return list(clips)
