"""Reader of a generic CSV manifest: one row per clip, columns found by header name.

Columns (case-insensitive; aliases in brackets; at least one of audio/video):

- ``audio`` [``filename_audio``, ``audio_path``], ``video`` [``filename_video``, ``video_path``]:
  media paths relative to the dataset root; an empty field means the clip has no such file.
- ``label`` [``scene``, ``scene_label``]: scene class from :data:`featurestore.datasets.labels.SCENES`
  (or any non-empty label with ``labels=None``); empty = unlabelled.
- ``city``; ``location`` [``identifier``, ``location_id``]: a bare location id ``1000`` with city
  ``lisbon`` becomes ``lisbon-1000``.
- ``split`` [``fold``, ``folds``]: ``train``, ``evaluate`` (also ``val``, ``valid``,
  ``validation``), ``test`` or ``eval``; several separated by ``;``.
- ``clip_id`` [``clip``, ``id``]: defaults to the audio (else video) file stem.

Columns a file lacks are taken from the file name when it parses as
``<scene>-<city>-<location>-<segment>``. Comma or tab separated (a tab in the header line
means tab).
"""

from featurestore.datasets.clips import Clip
from featurestore.datasets.labels import SCENES
from featurestore.datasets.manifest_rows import (
    parse_tau_name,
    posix,
    read_table,
    stem,
    unsafe_path_reason,
)
from featurestore.errors import ManifestError

ALIASES = {
    "audio": ("audio", "filename_audio", "audio_path"),
    "video": ("video", "filename_video", "video_path"),
    "label": ("label", "scene", "scene_label"),
    "city": ("city",),
    "location": ("location", "identifier", "location_id"),
    "split": ("split", "fold", "folds"),
    "clip_id": ("clip_id", "clip", "id"),
}
SPLITS = {
    "train": "train",
    "evaluate": "evaluate",
    "val": "evaluate",
    "valid": "evaluate",
    "validation": "evaluate",
    "test": "test",
    "eval": "eval",
}


def read_csv_manifest(path, *, name, labels=SCENES):
    """Read a CSV manifest; return ``(clips, problems)``.

    Parameters
    ----------
    path : Path
        The manifest file.
    name : str
        How messages name the file.
    labels : sequence of str or None
        Accepted scene labels; None accepts any.

    Raises
    ------
    ManifestError
        Unreadable file, or a header without an audio or video column.
    """
    table = read_table(path, name=name)
    at = {field: table.index(*aliases) for field, aliases in ALIASES.items()}
    if at["audio"] is None and at["video"] is None:
        raise ManifestError(
            f"{name}: header has no audio or video column (found {', '.join(table.columns)})"
        )
    clips, problems, first_row = [], [], {}
    for number, fields in table.rows:
        if len(fields) != len(table.columns):
            problems.append(
                f"{name} row {number}: expected {len(table.columns)} fields, found {len(fields)}"
            )
            continue
        values = {field: fields[i] if i is not None else None for field, i in at.items()}
        issues = []
        clip = _row_clip(values, labels, issues)
        if clip and clip.clip_id in first_row:
            first = first_row[clip.clip_id]
            issues.append(f"duplicate clip {clip.clip_id!r} (first at row {first})")
        if issues:
            problems.append(f"{name} row {number}: " + "; ".join(issues))
            continue
        first_row[clip.clip_id] = number
        clips.append(clip)
    return clips, problems


def _row_clip(values, labels, issues):
    """Return the Clip a row describes (None if it names no media); append issues."""
    media = {}
    for modality in ("audio", "video"):
        path = values[modality] or ""
        reason = unsafe_path_reason(path) if path else None
        if reason:
            issues.append(reason)
        media[modality] = posix(path) if path and not reason else None
    if not values["audio"] and not values["video"]:
        issues.append("no audio or video path")
        return None
    clip_id = values["clip_id"] or stem(media["audio"] or media["video"] or "")
    name, _ = parse_tau_name(clip_id)
    label = values["label"]
    if label is None:
        label = name.scene if name else ""
    if label and labels is not None and label not in labels:
        issues.append(f"unknown scene label {label!r}")
    city = (values["city"] if values["city"] is not None else (name.city if name else "")).lower()
    location = values["location"]
    if location is None:
        location = name.identifier if name else ""
    elif location and city and not location.startswith(f"{city}-"):
        location = f"{city}-{location}"
    folds = []
    for split in filter(None, (s.strip().lower() for s in (values["split"] or "").split(";"))):
        if split not in SPLITS:
            issues.append(f"unknown split {split!r} (use {', '.join(sorted(set(SPLITS)))})")
        elif SPLITS[split] not in folds:
            folds.append(SPLITS[split])
    return Clip(
        clip_id,
        media["audio"],
        media["video"],
        scene=label,
        city=city,
        location=location,
        folds=tuple(folds),
    )
