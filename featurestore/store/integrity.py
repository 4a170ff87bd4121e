"""``info``, ``verify`` and ``verify --repair`` of a feature store.

Verify reads what is stored, never what the metadata merely declares: stored chunks are found by
listing the store, and the index is checked before any row is read. Leases and temporary files
(names ending in ``.partial``, left by a kill or a full disk) are not part of the store: verify
ignores them, repair removes the temporary files and the leases of writers that are gone.
"""

import os
from pathlib import Path

import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from featurestore.errors import StoreError
from featurestore.store import stored_segments
from featurestore.store.chunks import (
    ChunkReader,
    gather_rows,
    list_keys,
    run_all,
    stored_bytes,
)
from featurestore.store.clip_table import CLIP_COLUMNS, FOLD_SEPARATOR
from featurestore.store.concurrency.files import is_temporary
from featurestore.store.inventory import consolidated_mismatches, folder_problems, key_kind
from featurestore.store.layout import (
    COMMITTED,
    FAILED,
    INDEX_ARRAYS,
    NOT_APPLICABLE,
    PENDING,
    fingerprint,
    n_segments,
)
from featurestore.store.concurrency.leases import LEASE_DIR, live_leases, remove_stale, stale_leases
from featurestore.store.opening import is_archive_name, local_directory, resolve_location
from featurestore.store.segment_pooling import pool_feature


def _counts(values):
    unique, counts = np.unique(values, return_counts=True)
    return {str(key): int(count) for key, count in zip(unique, counts)}


def _codec_names(array):
    names = []
    for codec in array.metadata.codecs:
        config = codec.to_dict()
        detail = config.get("configuration", {})
        if config["name"] == "blosc":
            names.append(f"blosc({detail.get('cname')}, {detail.get('shuffle')}, "
                         f"clevel {detail.get('clevel')})")
        elif config["name"] != "bytes":
            names.append(config["name"])
    return names


def store_info(store):
    """Summary of a store as a JSON-able dict (see ``avscene info``)."""
    table = store.clips
    by_fold = {}
    for text, n_clips in _counts(table.folds).items():
        for fold in text.split(FOLD_SEPARATOR) if text else ["(none)"]:
            by_fold[fold] = by_fold.get(fold, 0) + n_clips
    zstore = store._group.store
    prefix = store._group.path
    info = {
        "store": store.label,
        "format": dict(store._meta),
        "attrs": {key: value for key, value in store.attrs.items() if key != "avscene"},
        "clips": {
            "total": len(table),
            "hours": float(np.sum(table.duration) / 3600),
            "duration_min": float(table.duration.min()) if len(table) else None,
            "duration_max": float(table.duration.max()) if len(table) else None,
            "by_fold": dict(sorted(by_fold.items())),
            "by_scene": _counts(table.scene),
            "by_city": _counts(table.city),
            "locations": int(np.unique(table.location).size),
        },
        "blocks": -(-len(table) // store.block_clips),
        "block_clips": store.block_clips,
        "segments_only": store.segments_only,
        "features": {},
        "segments": [],
    }
    for name in store.features:
        feature = store._feature(name)
        _, count, status = store._index(name)
        rows = int(count[status == COMMITTED].sum())
        on_disk = stored_bytes(zstore, _join(prefix, f"features/{name}"))
        raw = rows * (feature.dim * feature.storage_dtype.itemsize + 8)
        values = feature.values
        info["features"][name] = {
            "dim": feature.dim,
            "frame_rate": feature.frame_rate,
            "storage_dtype": str(feature.storage_dtype),
            "compression": feature.attrs["compression"],
            "frames": feature.has_frames,
            "values_shape": list(values.shape) if values is not None else None,
            "values_chunks": list(values.chunks) if values is not None else None,
            "codecs": _codec_names(values) if values is not None else [],
            "committed": int(np.sum(status == COMMITTED)),
            "failed": int(np.sum(status == FAILED)),
            "pending": int(np.sum(status == PENDING)),
            "not_applicable": int(np.sum(status == NOT_APPLICABLE)),
            "rows": rows,
            "bytes_on_disk": on_disk,
            "bytes_raw": raw,
            "compression_ratio": round(raw / on_disk, 3) if on_disk and feature.has_frames
            else None,
            "fingerprint": feature.attrs["fingerprint"],
            "params": feature.attrs["params"],
            "created": feature.attrs.get("created"),
            "package_versions": feature.attrs.get("package_versions", {}),
        }
    for entry in store.stored_segments():
        path = stored_segments.group_path(entry["feature"], entry["pooling"])
        info["segments"].append({**entry, "bytes_on_disk": stored_bytes(zstore,
                                                                          _join(prefix, path))})
    info["bytes_on_disk"] = stored_bytes(zstore, prefix)
    return info


def _join(prefix, path):
    return f"{prefix}/{path}" if prefix else path


def verify_store(store):
    """Problems found in a store, one line each (empty list: all good)."""
    problems = _file_problems(store)
    table = store.clips
    n_clips = len(table)
    problems += _check_chunks(store._group["clips"], CLIP_COLUMNS, "clips")
    unique_ids = np.unique(table.clip_id)
    if unique_ids.size != n_clips:
        problems.append(f"clips/clip_id: {n_clips - unique_ids.size} duplicate clip ids")
    bad = ~(np.isfinite(table.duration) & (table.duration > 0))
    for position in np.flatnonzero(bad)[:5]:
        problems.append(f"clips/duration: clip {table.clip_id[position]!r} has duration "
                        f"{table.duration[position]!r}")
    for name in store.features:
        problems += _verify_feature(store, name)
    damaged = {problem.split()[2].split("/")[1] for problem in problems
               if problem.startswith("corrupt chunk features/")}
    for (name, pooling), group in stored_segments.stored_groups(store._group).items():
        problems += _verify_segments(store, name, pooling, group, frames_ok=name not in damaged)
    return problems


def _file_problems(store):
    """In a local folder: entries that are not files of a store (see
    :mod:`~featurestore.store.inventory`). Elsewhere, where readers use the root's consolidated
    metadata: node documents that differ from their copies there."""
    zstore, prefix = store._group.store, store._group.path
    if isinstance(zstore, LocalStore):
        return folder_problems(Path(zstore.root).joinpath(*prefix.split("/")) if prefix
                               else Path(zstore.root))
    documents = {}
    for key in list_keys(zstore, prefix):
        relative = key[len(prefix) + 1:] if prefix else key
        if key_kind(relative, ()) == "metadata":
            buffer = sync(zstore.get(key, prototype=default_buffer_prototype()))
            if buffer is not None:
                documents[relative] = buffer.to_bytes()
    return consolidated_mismatches(documents)


def store_folder_problems(where):
    """One line per entry of the local store folder ``where`` that is not a file of a store
    (symbolic links, FIFOs, devices, unknown names); empty for anything else. Nothing is
    followed or opened."""
    if not isinstance(where, (str, os.PathLike)) or is_archive_name(where):
        return []
    target, _ = resolve_location(where)
    folder = local_directory(target)
    return folder_problems(folder) if folder is not None and \
        os.path.lexists(folder / "zarr.json") else []


def _check_chunks(group, names, label, stored=None):
    """Decode every stored chunk of the named arrays of ``group``; report failures by key.

    ``stored``, if given, receives {array name: set of stored chunk indices}.
    """
    problems = []
    for name in names:
        reader = ChunkReader(group[name])
        indices, outside = _stored_chunks(group.store, _join(group.path, name), reader)
        if stored is not None:
            stored[name] = indices
        if outside:
            problems.append(f"{label}/{name}: {outside} stored chunks lie outside the array")

        def decode(index, reader=reader):
            try:
                reader.load(index)
            except Exception as error:            # report every corrupt chunk, keep going
                message = str(error).split("\n")[0]
                if reader.key(index) not in message:
                    message = f"{reader.key(index)}: {message}"
                problems.append(f"corrupt chunk {message}")

        run_all(decode, sorted(indices))
    return sorted(problems)


def _stored_chunks(store, path, reader):
    """(set of chunk indices stored, number of other objects) under ``<path>/c/``, from the
    store's listing; temporary files are left out."""
    prefix = f"{path}/c/"
    indices, outside = set(), 0
    for key in list_keys(store, prefix.rstrip("/")):
        if is_temporary(key) or key.endswith("/"):      # folder entries of zip tools
            continue
        parts = key[len(prefix):].split("/")
        if len(parts) == len(reader.shape) and all(part.isdigit() for part in parts) and \
                all(part == "0" for part in parts[1:]) and int(parts[0]) < reader.nchunks:
            indices.add(int(parts[0]))
        else:
            outside += 1
    return indices, outside


def _verify_feature(store, name):
    feature = store._feature(name)
    label = f"features/{name}"
    stored = {}
    problems = _check_chunks(feature.group, tuple(feature.arrays), label, stored)
    n_clips = len(store.clips)
    for array_name in INDEX_ARRAYS:
        if feature.arrays[array_name].shape[0] != n_clips:
            return problems + [f"{label}/{array_name}: {feature.arrays[array_name].shape[0]} "
                               f"entries for {n_clips} clips"]
    if not feature.has_frames:                     # a segments-only store: the index alone
        if fingerprint(feature.definition()) != feature.attrs["fingerprint"]:
            problems.append(f"{label}: fingerprint does not match the stored definition")
        return problems
    starts, stops = feature.regions(store.clips.duration)
    total = int(stops[-1]) if stops.size else 0
    if feature.values.shape != (total, feature.dim) or feature.timestamps.shape != (total,):
        return problems + [f"{label}: values {feature.values.shape} / timestamps "
                           f"{feature.timestamps.shape}, layout needs ({total}, {feature.dim})"]
    if fingerprint(feature.definition()) != feature.attrs["fingerprint"]:
        problems.append(f"{label}: fingerprint does not match the stored definition")
    try:
        offset, count, status = feature.index()
    except Exception as error:                      # corrupt index chunks are reported above
        return problems + [f"{label}: index unreadable ({error})"]
    index_problems = _check_index(store, feature, offset, count, status, starts, stops)
    if not index_problems:
        index_problems = _check_rows(feature, offset, count, status, stored, label,
                                     store.clips.clip_id)
    return problems + index_problems


def _check_rows(feature, offset, count, status, stored, label, ids):
    """Every chunk holding committed rows is stored; their timestamps are sane."""
    rows = np.flatnonzero((status == COMMITTED) & (count > 0))
    if not rows.size:
        return []
    chunk_rows = feature.chunk_rows
    runs = _merge_runs(offset[rows] // chunk_rows, (offset[rows] + count[rows] - 1) // chunk_rows)
    problems = []
    for name in ("values", "timestamps"):
        reader = ChunkReader(feature.arrays[name])
        missing, examples = _missing_in_runs(runs, stored[name])
        problems += [f"missing chunk {reader.key(index)} (holds committed rows)"
                     for index in examples]
        if missing > len(examples):
            problems.append(f"{label}/{name}: {missing - len(examples)} more chunks missing")
    if problems:
        return problems
    return _check_timestamps(feature, offset[rows], count[rows], ids[rows], label)


def _merge_runs(first, last):
    """Union of the chunk ranges ``[first[i], last[i]]`` as sorted, disjoint (start, stop) runs."""
    order = np.argsort(first, kind="stable")
    first, last = first[order], np.maximum.accumulate(last[order])
    starts = np.flatnonzero(np.concatenate([[True], first[1:] > last[:-1] + 1]))
    stops = np.append(starts[1:], first.size) - 1
    return list(zip(first[starts].tolist(), last[stops].tolist()))


def _missing_in_runs(runs, stored, limit=5):
    """(number of chunks of ``runs`` not in ``stored``, the first ``limit`` of them)."""
    present = np.array(sorted(stored), dtype=np.int64)
    missing, examples = 0, []
    for start, stop in runs:
        inside = present[np.searchsorted(present, start):np.searchsorted(present, stop, "right")]
        missing += stop - start + 1 - inside.size
        index, have = start, set(inside.tolist())
        while len(examples) < limit and index <= stop and index - start <= inside.size + limit:
            if index not in have:
                examples.append(index)
            index += 1
    return missing, examples


def _check_index(store, feature, offset, count, status, starts, stops):
    label = f"features/{feature.name}"
    ids = store.clips.clip_id
    problems = []

    def report(mask, text, limit=5):
        for position in np.flatnonzero(mask)[:limit]:
            problems.append(f"{label}: clip {str(ids[position])!r} {text(position)}")
        if np.sum(mask) > limit:
            problems.append(f"{label}: {int(np.sum(mask)) - limit} more clips like the above")

    known = [PENDING, COMMITTED, FAILED, NOT_APPLICABLE]
    report(~np.isin(status, known), lambda p: f"has status {status[p]}")
    committed = status == COMMITTED
    block = np.arange(len(status)) // store.block_clips
    low, high = starts[block], stops[block]
    outside = committed & ((offset < low) | (offset + count > high) | (count < 0))
    report(outside, lambda p: f"rows [{offset[p]}, {offset[p] + count[p]}) leave its block's "
                              f"region [{low[p]}, {high[p]})")
    reserved = feature.reserved(store.clips.duration)
    report(committed & (count > reserved), lambda p: f"has {count[p]} rows, {reserved[p]} reserved")
    failed = np.flatnonzero(status == FAILED)
    if failed.size:
        reasons = np.asarray(feature.reason[:])
        empty = np.zeros(len(status), bool)
        empty[failed] = [not str(reasons[p]) for p in failed]
        report(empty, lambda p: "failed without a reason")
    rows = np.flatnonzero(committed & (count > 0))
    if rows.size:
        order = rows[np.argsort(offset[rows], kind="stable")]
        overlap = offset[order][1:] < (offset[order] + count[order])[:-1]
        mask = np.zeros(len(status), bool)
        mask[order[1:][overlap]] = True
        report(mask, lambda p: "has rows overlapping another clip's")
    return problems


def _check_timestamps(feature, offset, count, ids, label):
    """Committed rows must have finite timestamps, non-decreasing within each clip."""
    problems = []
    times = gather_rows(ChunkReader(feature.timestamps), offset, count)
    clip_of_row = np.repeat(np.arange(len(offset)), count)
    missing = ~np.isfinite(times)
    for clip in np.unique(clip_of_row[missing])[:5]:
        problems.append(f"{label}: clip {str(ids[clip])!r} has rows without timestamps "
                        f"(a chunk of timestamps is missing)")
    backwards = (np.diff(times) < 0) & (clip_of_row[1:] == clip_of_row[:-1])
    for clip in np.unique(clip_of_row[1:][backwards])[:5]:
        problems.append(f"{label}: clip {str(ids[clip])!r} has decreasing timestamps")
    return problems


def _verify_segments(store, name, pooling, group, *, frames_ok=True):
    """Problems of one stored segment group: chunks that do not decode or are missing, arrays
    that disagree with its attributes, impossible entries and, when it was made from the
    current frames and the store has them, values that differ from pooling those frames now.
    A copy made from other frames (stale) is no problem: readers do not use it."""
    label = group.path
    if name not in store.features:
        return [f"{label}: segments of {name!r}, which is not a feature of the store"]
    stored = {}
    arrays = [key for key in stored_segments.SEGMENT_ARRAYS if key in group.array_keys()]
    problems = _check_chunks(group, arrays, label, stored)
    try:
        checked = stored_segments.checked_arrays(group, store._feature(name).dim, pooling)
    except Exception as error:
        return problems + [str(error)]
    for array_name, array in checked.items():
        missing = sorted(set(range(ChunkReader(array).nchunks)) - stored[array_name])
        problems += [f"missing chunk {ChunkReader(array).key(index)} (holds segments)"
                     for index in missing[:5]]
    if problems:
        return problems
    feature, index = store._feature(name), store._index(name)
    if not stored_segments.is_fresh(group, feature, store.clips, index):
        return []
    durations = store.clips.duration
    stride = int(n_segments(durations).max()) + 1 if len(durations) else 1
    positions = np.arange(len(store.clips), dtype=np.int64)
    try:
        keys, values, counts = stored_segments.read_segments(group, feature, store.clips, index,
                                                             positions, stride, pooling)
    except Exception as error:
        return [str(error)]
    if not feature.has_frames or not frames_ok:      # nothing to pool them from
        return []
    try:
        expected = pool_feature(feature, index, positions, durations, stride, pooling)
    except Exception as error:                   # reported with the feature's problems
        return [f"{label}: cannot pool the frames to compare ({str(error).splitlines()[0]})"]
    if not np.array_equal(keys, expected[0]) or not np.array_equal(counts, expected[2]):
        return [f"{label}: holds other segments ({keys.size}) than its frames give "
                f"({expected[0].size}), although its frames fingerprint matches"]
    differ = ~np.all((values == expected[1]) | (np.isnan(values) & np.isnan(expected[1])),
                     axis=1)
    if np.any(differ):
        first = int(np.flatnonzero(differ)[0])
        return [f"{label}: {int(differ.sum())} segments differ from pooling the frames, e.g. "
                f"clip {str(store.clips.clip_id[keys[first] // stride])!r} second "
                f"{int(keys[first] % stride)}"]
    return []


def stale_segments(store):
    """``feature pooling`` of each stored segment group made from other frames than the
    store's current ones (never read; ``avscene segments`` rewrites them)."""
    return [f"{entry['feature']} {entry['pooling']}" for entry in store.stored_segments()
            if not entry["fresh"]]


# -- temporary files and repair ---------------------------------------------------------------

def temporary_files(store):
    """Keys of leftover temporary files in the store (names ending in ``.partial``), sorted."""
    zstore, prefix = store._group.store, store._group.path
    if isinstance(zstore, LocalStore):
        root = Path(zstore.root).joinpath(*prefix.split("/")) if prefix else Path(zstore.root)
        found = [Path(folder, name).relative_to(root).as_posix()
                 for folder, _, names in os.walk(root) for name in names if is_temporary(name)]
    else:
        found = [key[len(prefix) + 1:] if prefix else key
                 for key in list_keys(zstore, prefix) if is_temporary(key)]
    return sorted(found)


def repair_store(store):
    """Remove leftover temporary files and the leases of writers that are gone.

    Refused while a live writer holds a lease (its temporary files may be in flight).

    Returns
    -------
    list of str
        One line per file removed.
    """
    live = live_leases(store._leases)
    if live:
        key, holder = live[0]
        raise StoreError(f"{store.label}: {LEASE_DIR}/{key} is held by {holder}; a writer is "
                         f"running, repair when it has finished")
    zstore, prefix = store._group.store, store._group.path
    removed = []
    for key in temporary_files(store):
        sync(zstore.delete(_join(prefix, key)))
        removed.append(f"removed temporary file {key}")
    for key, holder in stale_leases(store._leases):
        if remove_stale(store._leases, key):
            removed.append(f"removed the lease {LEASE_DIR}/{key} of {holder} (no longer running)")
    return removed
