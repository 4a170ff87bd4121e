"""Clip-level validation splits of a store's training fold: computed, read from files, written.

A split gives each clip of the training fold a role, ``train`` or ``validation``. It is
computed from the store's clip table (:func:`split_clips`: ``location`` is avscene's
:func:`classifiers.splits.location_split`, ``dcase2021`` the baseline's ``split_data.py`` rule,
:func:`classifiers.splits.dcase2021_split`), or read from a file (:func:`read_split_file`) in
one of two formats:

- ``clip_id,role`` (what ``avscene split`` and every run's ``split.csv`` hold): each clip's role;
- the baseline's ``val.csv`` (columns ``filename_audio,filename_video,scene_label,location_id``,
  comma- or tab-separated): the clips it names (by the stem of ``filename_audio``, else of
  ``filename_video``) are validation, every other clip of the fold is training.
"""

from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from featurestore import outputs
from featurestore.datasets import parse_tau_name
from featurestore.errors import SplitFileError, UsageError
from pipelines.jobs.specs import PathLike

ROLES = ("train", "validation")
METHODS = ("location", "dcase2021")
#: Default seeds: avscene's location split uses 0, the baseline's split_data.py uses 30.
DEFAULT_SEEDS = {"location": 0, "dcase2021": 30}
ROLE_COLUMNS = ("clip_id", "role")
OFFICIAL_COLUMNS = ("filename_audio", "filename_video", "scene_label", "location_id")
#: Clip ids shown in an error about clips that are not where they should be.
SHOWN = 3


def write_store_split(
    store: str,
    *,
    out: str | os.PathLike,
    method: str = "dcase2021",
    val_fraction: float = 0.1,
    seed: int | None = None,
    train_fold: str = "train",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the split of the training fold of ``store`` to ``out`` (``avscene split``).

    Parameters
    ----------
    store : str
        Feature store: a directory or an fsspec URL (its clip table only is read).
    out : path
        The ``clip_id,role`` file to write (its folder is created).
    method : str
        One of :data:`METHODS` (:func:`split_clips`).
    val_fraction : float
        Share of each scene's clips meant for validation.
    seed : int, optional
        Random seed (None: :data:`DEFAULT_SEEDS` of the method).
    train_fold : str
        Fold of the store to split.
    overwrite : bool
        Replace an existing ``out`` (otherwise UsageError).

    Returns
    -------
    dict
        ``out``, ``method``, ``fold``, ``val_fraction``, ``seed``, the numbers of ``clips``,
        ``train`` and ``validation`` clips, and ``validation_per_scene``.
    """
    from featurestore.store import FeatureStore

    out = pathlib.Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists already (--overwrite replaces it)")
    with FeatureStore.open(store, mode="r") as opened:
        clips = opened.clips
        positions = opened.select(fold=train_fold)
        if not len(positions):
            raise UsageError(f"{opened.label} has no clips in fold {train_fold!r}")
        roles = split_clips(clips, positions, method=method, val_fraction=val_fraction, seed=seed)
        ids = np.asarray(clips.clip_id)[positions]
        scenes = np.asarray(clips.scene)[positions].astype(str)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_split(out, ids, roles)
    validation = roles == ROLES[1]
    return {
        "out": str(out),
        "method": method,
        "fold": train_fold,
        "val_fraction": val_fraction,
        "seed": DEFAULT_SEEDS[method] if seed is None else seed,
        "clips": int(len(ids)),
        "train": int(np.count_nonzero(~validation)),
        "validation": int(np.count_nonzero(validation)),
        "validation_per_scene": {
            scene: int(np.count_nonzero(validation & (scenes == scene)))
            for scene in sorted(set(scenes.tolist()))
        },
    }


def baseline_location_keys(clips: Any, positions: NDArray[Any]) -> NDArray[Any]:
    """The baseline's location key of each clip: the number in its file name.

    ``split_data.py`` keys a clip by ``filename_video.split('-')[2]``: the location number of
    ``<scene>-<city>-<location>-<segment>``, without the city. Clips whose video (else audio)
    file name, else clip id, is not such a name are keyed by their location with a leading
    ``<city>-`` removed.
    """
    keys = []
    for position in positions:
        stem = _stem(str(clips.video[position]) or str(clips.audio[position])) or str(
            clips.clip_id[position]
        )
        name, _ = parse_tau_name(stem)
        if name is not None:
            keys.append(name.location_id)
        else:
            location, city = str(clips.location[position]), str(clips.city[position])
            keys.append(
                location[len(city) + 1 :] if city and location.startswith(f"{city}-") else location
            )
    return np.asarray(keys, dtype=str)


def split_clips(
    clips: Any,
    positions: NDArray[Any],
    *,
    method: str,
    val_fraction: float,
    seed: int | None = None,
) -> NDArray[Any]:
    """Roles of the clips at ``positions`` (a store's :class:`ClipTable` and positions).

    ``location`` weighs each clip by its number of 1-s segments, so that on clips with features
    it selects what ``avscene train`` selects on their segments.

    Returns
    -------
    ndarray of str, shape (len(positions),), ``"train"`` or ``"validation"``
    """
    from classifiers import splits
    from featurestore.store.layout import n_segments

    positions = np.asarray(positions, dtype=np.int64)
    seed = DEFAULT_SEEDS[method] if seed is None else seed
    scene = np.asarray(clips.scene)[positions].astype(str)
    roles = np.full(len(positions), ROLES[0], dtype=f"U{max(map(len, ROLES))}")
    if method == "dcase2021":
        _, val = splits.dcase2021_split(
            scene, baseline_location_keys(clips, positions), val_fraction=val_fraction, seed=seed
        )
    elif method == "location":
        rows = np.repeat(np.arange(len(positions)), n_segments(clips.duration[positions]))
        location = np.asarray(clips.location)[positions].astype(str)
        _, val_rows = splits.location_split(
            scene[rows], location[rows], val_fraction=val_fraction, random_state=seed
        )
        val = np.unique(rows[val_rows])
    else:
        raise SplitFileError(f"unknown split method {method!r}; choose from {', '.join(METHODS)}")
    roles[val] = ROLES[1]
    return roles


def read_split_file(
    path: PathLike, clips: Any, positions: NDArray[Any], *, fold: str
) -> tuple[NDArray[Any], str]:
    """Roles of the clips at ``positions`` (the training fold) from a split file.

    Returns
    -------
    roles : ndarray of str, shape (len(positions),)
        ``"train"``, ``"validation"`` or ``""`` for clips a ``clip_id,role`` file does not name.
    kind : str, ``"clip_id,role"`` or ``"val.csv"``

    Raises
    ------
    SplitFileError
        Unreadable file, unknown columns, a bad role, a clip given two roles, or clips named that
        are not in the store or not in ``fold`` (the first few named).
    """
    header, rows = _read_table(path)
    if set(ROLE_COLUMNS) <= set(header):
        named = _role_rows(path, header, rows)
        kind = "clip_id,role"
    elif set(OFFICIAL_COLUMNS[:2]) & set(header) and "scene_label" in header:
        named = _official_rows(path, header, rows)
        kind = "val.csv"
    else:
        raise SplitFileError(
            f"{path}: columns {','.join(header)} are neither clip_id,role nor "
            f"the baseline's {','.join(OFFICIAL_COLUMNS)}"
        )
    _check_named(path, named, clips, positions, fold)
    ids = np.asarray(clips.clip_id)[positions].astype(str)
    if kind == "val.csv":
        roles = np.where(np.isin(ids, list(named)), ROLES[1], ROLES[0])
        if np.count_nonzero(roles == ROLES[1]) * 2 > len(ids):
            raise SplitFileError(
                f"{path} names {np.count_nonzero(roles == ROLES[1])} of the {len(ids)} clips of "
                f"fold {fold!r}: a file in the baseline's format is its validation list "
                "(val.csv), not train.csv"
            )
        return roles, kind
    return np.asarray([named.get(clip_id, "") for clip_id in ids], dtype="U10"), kind


def _read_table(path: PathLike) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a comma- or tab-separated file (tab when the header has one)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            first = handle.readline()
            handle.seek(0)
            reader = csv.reader(handle, delimiter="\t" if "\t" in first else ",")
            table = [row for row in reader if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise SplitFileError(f"{path}: no such split file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SplitFileError(f"{path}: unreadable split file ({error})") from None
    if not table:
        raise SplitFileError(f"{path}: empty split file")
    return [cell.strip() for cell in table[0]], table[1:]


def _cell(row: Sequence[str], header: Sequence[str], column: str) -> str:
    index = header.index(column)
    return row[index].strip() if index < len(row) else ""


def _role_rows(
    path: PathLike, header: Sequence[str], rows: Sequence[Sequence[str]]
) -> dict[str, str]:
    named: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        clip_id, role = _cell(row, header, "clip_id"), _cell(row, header, "role")
        if role not in ROLES or not clip_id:
            raise SplitFileError(
                f"{path}, line {number}: role {role!r} of clip {clip_id!r}; "
                f"expected a clip id and one of {', '.join(ROLES)}"
            )
        if named.setdefault(clip_id, role) != role:
            raise SplitFileError(f"{path}, line {number}: clip {clip_id!r} is given both roles")
        named[clip_id] = role
    return named


def _official_rows(
    path: PathLike, header: Sequence[str], rows: Sequence[Sequence[str]]
) -> dict[str, str]:
    named: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        audio = _cell(row, header, "filename_audio") if "filename_audio" in header else ""
        video = _cell(row, header, "filename_video") if "filename_video" in header else ""
        clip_id = _stem(audio or video)
        if not clip_id:
            raise SplitFileError(f"{path}, line {number}: no file name")
        named[clip_id] = ROLES[1]
    return named


def _stem(filename: str) -> str:
    return pathlib.PurePosixPath(filename.replace("\\", "/")).stem if filename else ""


def _check_named(
    path: PathLike, named: dict[str, str], clips: Any, positions: NDArray[Any], fold: str
) -> None:
    ids = set(named)
    in_store = set(np.asarray(clips.clip_id).astype(str).tolist())
    absent = sorted(ids - in_store)
    if absent:
        raise SplitFileError(f"{path}: {len(absent)} clips are not in the store: {_some(absent)}")
    outside = sorted(ids - set(np.asarray(clips.clip_id)[positions].astype(str).tolist()))
    if outside:
        raise SplitFileError(
            f"{path}: {len(outside)} clips are not in fold {fold!r}: {_some(outside)}"
        )


def _some(ids: Sequence[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (", ..." if len(ids) > SHOWN else "")


def rows_of_roles(
    row_clip_ids: ArrayLike, clip_ids: ArrayLike, roles: ArrayLike, *, where: str
) -> tuple[NDArray[Any], NDArray[Any]]:
    """``(train_rows, val_rows)`` of data rows from the roles of their clips.

    Parameters
    ----------
    row_clip_ids : array of str, shape (n_rows,), the clip of each row
    clip_ids, roles : arrays of str, shape (n_clips,)
    where : str, names the split in the error

    Raises
    ------
    SplitFileError
        Rows whose clip has no role.
    """
    role_of = dict(zip(np.asarray(clip_ids).astype(str).tolist(), np.asarray(roles).tolist()))
    names, inverse = np.unique(np.asarray(row_clip_ids).astype(str), return_inverse=True)
    row_roles = np.asarray([role_of.get(name, "") for name in names.tolist()], dtype="U10")[
        inverse.reshape(-1)
    ]
    unassigned = names[[role_of.get(name, "") == "" for name in names.tolist()]].tolist()
    if unassigned:
        raise SplitFileError(
            f"{where} gives no role to {len(unassigned)} clips with features: {_some(unassigned)}"
        )
    return np.flatnonzero(row_roles == ROLES[0]), np.flatnonzero(row_roles == ROLES[1])


def write_split(
    path: PathLike, clip_ids: ArrayLike, roles: ArrayLike, *, within: PathLike | None = None
) -> None:
    """Write ``clip_id,role`` rows (:func:`featurestore.outputs.write_csv`: never a half-written
    file, never through a symbolic link; ``within``: the run directory holding it)."""
    rows = zip(np.asarray(clip_ids).astype(str).tolist(), np.asarray(roles).astype(str).tolist())
    outputs.write_csv(path, [ROLE_COLUMNS, *rows], within=within)


def clip_roles(
    row_clip_ids: ArrayLike, split: tuple[NDArray[Any], NDArray[Any]]
) -> tuple[NDArray[Any], NDArray[Any]]:
    """``(clip_ids, roles)`` of the clips of data rows split into ``(train_rows, val_rows)``,
    clips in order of first appearance."""
    row_clip_ids = np.asarray(row_clip_ids).astype(str)
    role = np.full(len(row_clip_ids), "", dtype="U10")
    role[split[0]], role[split[1]] = ROLES[0], ROLES[1]
    used = np.concatenate([split[0], split[1]]).astype(np.int64)
    ids, first = np.unique(row_clip_ids[used], return_index=True)
    order = np.argsort(used[first])
    return ids[order], role[used[first]][order]
