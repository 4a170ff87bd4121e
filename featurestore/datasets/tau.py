"""Readers of the TAU Urban Audio-Visual Scenes 2021 layouts (development and evaluation).

Development: ``meta.csv`` (``filename_audio``, ``filename_video``, ``scene_label``,
``identifier``) and ``evaluation_setup/fold1_{train,evaluate,test}.csv``, tab-separated,
columns found by header name. Evaluation: one-second clips ``audio/<id>.wav``,
``video/<id>.mp4`` named by integer id, no labels (a ``meta.csv`` or
``evaluation_setup/fold1_test.csv`` listing only file names is used when present).

Each reader returns ``(clips, problems, files)``: the accepted clips, one-line problems, and the
manifest files it read (relative to the root, for the checksum).
"""

from featurestore.datasets.clips import Clip
from featurestore.datasets.labels import SCENES
from featurestore.datasets.manifest_rows import (
    is_integer_id,
    parse_tau_name,
    posix,
    read_table,
    stem,
    unsafe_path_reason,
)
from featurestore.errors import ManifestError

META = "meta.csv"
SETUP = "evaluation_setup"
#: (file in evaluation_setup/, fold name) of the one official cross-validation fold.
FOLD_FILES = (
    ("fold1_train.csv", "train"),
    ("fold1_evaluate.csv", "evaluate"),
    ("fold1_test.csv", "test"),
)
#: Header names of the media columns, in the order audio, video.
MEDIA_COLUMNS = ("filename_audio", "filename_video")


def read_development(root):
    """Read a development layout rooted at ``root`` (the folder holding meta.csv).

    Rows with a problem are skipped and reported; a fold file naming a clip that meta.csv
    does not hold is reported; clips shared between train and evaluate/test, and locations
    shared between train and evaluate, are reported (the clips are kept).
    """
    problems = []
    meta = read_table(root / META, name=META)
    clips, named = _development_clips(meta, problems)
    rejected = named - set(clips)
    files = [META]
    folds = {clip_id: [] for clip_id in clips}
    for file_name, fold in FOLD_FILES:
        path = root / SETUP / file_name
        if path.is_file():
            files.append(f"{SETUP}/{file_name}")
            table = read_table(path, name=files[-1])
            _read_fold(table, fold, clips, rejected, folds, problems)
    problems += _leaks(clips, folds)
    records = [Clip(**fields, folds=tuple(folds[clip_id])) for clip_id, fields in clips.items()]
    return records, problems, files


def _media_columns(table):
    """Return the positions of filename_audio and filename_video (None if absent)."""
    positions = tuple(table.index(name) for name in MEDIA_COLUMNS)
    if positions == (None, None):
        raise ManifestError(f"{table.name}: header has neither filename_audio nor filename_video")
    return positions


def _row_media(fields, positions, issues):
    """Return (clip_id, audio, video) of one row, appending what is wrong to ``issues``."""
    paths = []
    for column, position in zip(MEDIA_COLUMNS, positions):
        value = fields[position] if position is not None else ""
        if position is not None and not value:
            issues.append(f"empty {column}")
        reason = unsafe_path_reason(value) if value else None
        if reason:
            issues.append(reason)
        paths.append(posix(value) if value and not reason else None)
    stems = {stem(path) for path in paths if path}
    if len(stems) > 1:
        issues.append(f"filename_audio {paths[0]!r} and filename_video {paths[1]!r} differ")
    clip_id = stem(paths[0] or paths[1]) if any(paths) else None
    return clip_id, paths[0], paths[1]


def _media_rows(table, positions, problems):
    """Yield ``(row number, fields, clip_id, audio, video, issues)`` for each row of ``table``
    with as many fields as the header (the others go to ``problems``); ``issues`` holds what is
    wrong with the row's media paths, for the caller to extend and report."""
    for number, fields in table.rows:
        if len(fields) != len(table.columns):
            problems.append(
                f"{table.name} row {number}: expected {len(table.columns)} fields, "
                f"found {len(fields)}"
            )
            continue
        issues = []
        clip_id, audio, video = _row_media(fields, positions, issues)
        yield number, fields, clip_id, audio, video, issues


def _development_clips(meta, problems):
    """Return ``{clip_id: Clip fields}`` of the accepted rows and the set of all ids named."""
    positions = _media_columns(meta)
    label_at = meta.index("scene_label")
    if label_at is None:
        raise ManifestError(f"{META}: header has no scene_label column")
    identifier_at = meta.index("identifier")
    clips, first_row, named = {}, {}, set()
    for number, fields, clip_id, audio, video, issues in _media_rows(meta, positions, problems):
        named.add(clip_id)
        label = fields[label_at]
        if label not in SCENES:
            issues.append(f"unknown scene label {label!r}")
        name = None
        if clip_id:
            name, reason = parse_tau_name(clip_id)
            if reason:
                issues.append(reason)
        if name and label in SCENES and name.scene != label:
            issues.append(f"scene label {label!r} does not match file name {clip_id!r}")
        identifier = fields[identifier_at] if identifier_at is not None else ""
        if name and identifier and identifier != name.identifier:
            issues.append(
                f"identifier {identifier!r} does not match file name "
                f"{clip_id!r} (expected {name.identifier!r})"
            )
        if clip_id in first_row:
            issues.append(f"duplicate clip {clip_id!r} (first at row {first_row[clip_id]})")
        if issues:
            problems.append(f"{META} row {number}: " + "; ".join(issues))
            continue
        first_row[clip_id] = number
        clips[clip_id] = dict(
            clip_id=clip_id,
            audio=audio,
            video=video,
            scene=label,
            city=name.city,
            location=name.identifier,
        )
    return clips, named


def _read_fold(table, fold, clips, rejected, folds, problems):
    """Add ``fold`` to the clips a fold file names; report rows that do not fit meta.csv."""
    positions = _media_columns(table)
    label_at = table.index("scene_label")
    first_row = {}
    for number, fields, clip_id, audio, video, issues in _media_rows(table, positions, problems):
        if not issues and clip_id in rejected:
            continue  # its meta.csv row is reported already
        if clip_id is not None:
            label = fields[label_at] if label_at is not None else ""
            issues += _against_meta(clips.get(clip_id), clip_id, audio, video, label)
        if clip_id in first_row:
            issues.append(f"duplicate clip {clip_id!r} (first at row {first_row[clip_id]})")
        if issues:
            problems.append(f"{table.name} row {number}: " + "; ".join(issues))
            continue
        first_row[clip_id] = number
        folds[clip_id].append(fold)


def _against_meta(known, clip_id, audio, video, label):
    """How a fold-file row disagrees with the meta.csv record ``known`` (None: absent)."""
    if known is None:
        return [f"clip {clip_id!r} is not in {META}"]
    issues = []
    for column, path, expected in (
        ("filename_audio", audio, known["audio"]),
        ("filename_video", video, known["video"]),
    ):
        if path is not None and path != expected:
            issues.append(f"{column} {path!r} differs from {META} ({expected!r})")
    if label and label != known["scene"]:
        issues.append(f"scene label {label!r} differs from {META} ({known['scene']!r})")
    return issues


def _leaks(clips, folds):
    """Problems for clips in train and evaluate/test, and locations in train and evaluate."""
    problems = []
    by_fold = {fold: set() for _, fold in FOLD_FILES}
    for clip_id, memberships in folds.items():
        for fold in memberships:
            by_fold[fold].add(clip_id)
        if "train" in memberships and len(memberships) > 1:
            others = " and ".join(f"fold1_{f}.csv" for f in memberships if f != "train")
            problems.append(f"{SETUP}: clip {clip_id!r} is in both fold1_train.csv and {others}")
    train_locations = {clips[c]["location"] for c in by_fold["train"]}
    shared = train_locations & {clips[c]["location"] for c in by_fold["evaluate"]}
    problems += [
        f"{SETUP}: location {location!r} is in both fold1_train.csv and fold1_evaluate.csv"
        for location in sorted(shared)
    ]
    return problems


def read_evaluation(root, media):
    """Read an evaluation layout: integer-named one-second clips, no labels, fold ``eval``.

    The clip list comes from meta.csv if present, else from evaluation_setup/fold1_test.csv,
    else from the files in audio/ and video/.
    """
    problems = []
    for name in (META, f"{SETUP}/fold1_test.csv"):
        if (root / name).is_file():
            table = read_table(root / name, name=name)
            return _evaluation_rows(table, problems), problems, [name]
    audio = {stem(name): f"audio/{name}" for name in media.files("audio", ".wav")}
    video = {stem(name): f"video/{name}" for name in media.files("video", ".mp4")}
    clips = []
    for clip_id in sorted(set(audio) | set(video), key=_id_order):
        if not is_integer_id(clip_id):
            problems.append(
                f"{audio.get(clip_id) or video[clip_id]}: file name "
                f"{clip_id!r} is not an integer evaluation id"
            )
            continue
        # every evaluation clip has both files: one absent is missing (check_media reports it)
        clips.append(
            Clip(
                clip_id,
                audio.get(clip_id, f"audio/{clip_id}.wav"),
                video.get(clip_id, f"video/{clip_id}.mp4"),
                folds=("eval",),
            )
        )
    return clips, problems, []


def _id_order(clip_id):
    return (0, int(clip_id), "") if is_integer_id(clip_id) else (1, 0, clip_id)


def _evaluation_rows(table, problems):
    positions = _media_columns(table)
    clips, first_row = [], {}
    for number, _, clip_id, audio, video, issues in _media_rows(table, positions, problems):
        if clip_id and not is_integer_id(clip_id):
            issues.append(f"file name {clip_id!r} is not an integer evaluation id")
        if clip_id in first_row:
            issues.append(f"duplicate clip {clip_id!r} (first at row {first_row[clip_id]})")
        if issues:
            problems.append(f"{table.name} row {number}: " + "; ".join(issues))
            continue
        first_row[clip_id] = number
        clips.append(Clip(clip_id, audio, video, folds=("eval",)))
    return clips
