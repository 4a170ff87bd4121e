"""Dataset manifests: find a dataset's layout and read its clips into Clip records.

Three layouts are accepted (see :func:`load_manifest`):

``tau-development``
    ``meta.csv`` + ``evaluation_setup/fold1_{train,evaluate,test}.csv`` + ``audio/`` + ``video/``
    (TAU Urban Audio-Visual Scenes 2021 development set).
``tau-evaluation``
    ``audio/<id>.wav`` + ``video/<id>.mp4``, integer ids, no labels (the challenge evaluation set).
``csv``
    Any folder of media described by a CSV manifest (:mod:`featurestore.datasets.csv_manifest`).

What stops reading (raises): no dataset found (:class:`DatasetNotFoundError`), a manifest file
that cannot be read, is empty or has a malformed header (:class:`ManifestError`). Everything
else is reported in :attr:`Manifest.problems`, all in one pass, one line each naming the file
and row: a row with any problem is skipped (unknown label, duplicate clip, unparsable name,
path leaving the root, label or identifier disagreeing with the file name, fold file naming
a clip meta.csv lacks); a missing media file keeps its clip with that modality set to None;
clips or locations shared between train and evaluate are reported and kept.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from featurestore.datasets.clips import FOLDS
from featurestore.datasets.csv_manifest import read_csv_manifest
from featurestore.datasets.labels import SCENES
from featurestore.datasets.manifest_rows import (
    MediaIndex,
    check_media,
    is_integer_id,
    posix,
    stem,
)
from featurestore.datasets.tau import META, SETUP, read_development, read_evaluation
from featurestore.errors import DatasetNotFoundError, ManifestError
from featurestore.provenance import sha256_file, sha256_json

KINDS = ("tau-development", "tau-evaluation", "csv")


@dataclass
class Manifest:
    """The clips of one dataset and what is wrong with its manifest.

    Attributes
    ----------
    root : Path
        The dataset root: clip paths are relative to it (``root / clip.audio``).
    kind : str
        ``"tau-development"``, ``"tau-evaluation"`` or ``"csv"``.
    clips : list of Clip
        Accepted clips in manifest order (evaluation set: by integer id); ``duration`` is None.
    problems : list of str
        One line per problem, ``<file> row <n>: <what>`` or ``<media path>: missing``.
    checksum : str
        sha256 over the manifest files' bytes (``sha256_json({relative name: sha256_file})``);
        for an evaluation set without a list file, over the sorted media paths.
    files : tuple of str
        The manifest files read, relative to ``root`` (or as given, for a CSV outside it).
    """

    root: Path
    kind: str
    clips: list
    problems: list = field(default_factory=list)
    checksum: str = ""
    files: tuple = ()

    def summary(self):
        """Return counts per scene, city, location and fold, and the problems (JSON-able dict)."""

        def count(values, order=None):
            counts = Counter(value for value in values if value)
            key = (lambda v: (order.index(v) if v in order else len(order), v)) if order else None
            return {value: counts[value] for value in sorted(counts, key=key)}

        return {
            "kind": self.kind,
            "root": str(self.root),
            "checksum": self.checksum,
            "clips": len(self.clips),
            "scenes": count((c.scene for c in self.clips), SCENES),
            "cities": count(c.city for c in self.clips),
            "locations": count(c.location for c in self.clips),
            "folds": count((f for c in self.clips for f in c.folds), FOLDS),
            "problems": list(self.problems),
        }


def load_manifest(root, *, manifest=None, labels=SCENES):
    """Find the dataset layout under ``root`` and read its clips.

    Parameters
    ----------
    root : str or Path
        A dataset folder, or a folder holding exactly one dataset folder one level down (the
        unpacked archive ``TAU-urban-audio-visual-scenes-2021-development/``), or a CSV
        manifest file (its folder is then the root).
    manifest : str or Path, optional
        A CSV manifest whose paths are relative to ``root``; looked up as given, then under
        ``root``.
    labels : sequence of str or None
        Scene labels a CSV manifest may use (None: any). TAU layouts always use SCENES.

    Returns
    -------
    Manifest

    Raises
    ------
    DatasetNotFoundError
        Nothing that looks like a dataset at ``root`` or one level down, or several datasets
        one level down.
    ManifestError
        A manifest file is unreadable, empty or has a malformed header.
    """
    root = Path(root)
    if manifest is None and root.is_file():
        root, manifest = root.parent, root
    if manifest is not None:
        return _load_csv(root, Path(manifest), labels)
    root = find_dataset_root(root)
    media = MediaIndex(root)
    if _is_development(root):
        clips, problems, files = read_development(root)
        kind = "tau-development"
    else:
        clips, problems, files = read_evaluation(root, media)
        kind = "tau-evaluation"
    clips = check_media(clips, media, problems)
    if files:
        checksum = sha256_json({name: sha256_file(root / name) for name in files})
    else:
        checksum = sha256_json(sorted(p for c in clips for p in (c.audio, c.video) if p))
    return Manifest(root, kind, clips, problems, checksum, tuple(files))


def _load_csv(root, manifest, labels):
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such directory")
    if not manifest.is_file() and not manifest.is_absolute() and (root / manifest).is_file():
        manifest = root / manifest
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such manifest file")
    try:
        name = manifest.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        name = str(manifest)
    clips, problems = read_csv_manifest(manifest, name=name, labels=labels)
    clips = check_media(clips, MediaIndex(root), problems)
    checksum = sha256_json({name: sha256_file(manifest)})
    return Manifest(root, "csv", clips, problems, checksum, (name,))


def _looks_like_dataset(folder):
    return (
        (folder / META).is_file()
        or (folder / SETUP).is_dir()
        or (folder / "audio").is_dir()
        or (folder / "video").is_dir()
    )


def find_dataset_root(root):
    """Return the folder holding the dataset: ``root`` itself or its only dataset child."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such directory")
    if _looks_like_dataset(root):
        return root
    found = [
        child for child in sorted(root.iterdir()) if child.is_dir() and _looks_like_dataset(child)
    ]
    if len(found) > 1:
        names = ", ".join(child.name for child in found)
        raise DatasetNotFoundError(
            f"{root}: {len(found)} datasets one level down ({names}); pass one of them"
        )
    if not found:
        raise DatasetNotFoundError(
            f"{root}: no dataset here or one level down (looked for {META}, {SETUP}/, audio/, "
            f"video/); for other layouts pass a CSV manifest"
        )
    return found[0]


def _is_development(root):
    """Whether ``root`` holds a labelled development set (meta.csv with scene_label)."""
    meta = root / META
    if meta.is_file():
        try:
            with open(meta, encoding="utf-8-sig") as handle:
                header, first = handle.readline(), handle.readline()
        except (OSError, UnicodeDecodeError) as error:
            raise ManifestError(f"{META}: cannot be read ({error})") from None
        if "scene_label" in header.lower():
            return True
        first_name = first.replace(",", "\t").split("\t")[0].strip()
        if first_name and not is_integer_id(stem(posix(first_name))):
            raise ManifestError(
                f"{META}: header {header.strip()!r} has no scene_label column "
                f"but row 2 names a development file"
            )
        return False
    for file_name in ("fold1_train.csv", "fold1_evaluate.csv"):
        if (root / SETUP / file_name).is_file():
            raise ManifestError(
                f"{META}: missing (found {SETUP}/{file_name} of a development set)"
            )
    return False
