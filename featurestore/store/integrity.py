"""``info``, ``verify`` and ``verify --repair`` of a feature store.

Verify reads what is stored, never what the metadata merely declares: stored chunks are found by
listing the store, and the index is checked before any row is read. Leases and temporary files
(names ending in ``.partial``, left by a kill or a full disk) are not part of the store: verify
ignores them, repair removes the temporary files and the leases of writers that are gone.
``info`` measures the stored bytes of a store it can list cheaply and reads those recorded in a
store over a network (:mod:`~featurestore.store.sizes`), which it never lists.
"""

import os
import warnings
from pathlib import Path

import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.errors import ZarrUserWarning
from zarr.storage import LocalStore

from featurestore.errors import StoreError
from featurestore.store import stored_segments
from featurestore.store.bounded_decoding import member_array
from featurestore.store.chunks import (
    ChunkReader,
    gather_rows,
    list_keys,
    read_span,
    run_all,
)
from featurestore.store.clip_table import CLIP_COLUMNS, FOLD_SEPARATOR, read_clip_table
from featurestore.store.concurrency.files import is_temporary
from featurestore.store.concurrency.leases import (
    LEASE_DIR,
    live_leases,
    remove_stale,
    stale_leases,
)
from featurestore.store.inventory import consolidated_mismatches, folder_problems, key_kind
from featurestore.store.layout import (
    COMMITTED,
    FAILED,
    INDEX_ARRAYS,
    NOT_APPLICABLE,
    PENDING,
    chunk_prefix,
    fingerprint,
    n_segments,
    parse_chunk_key,
)
from featurestore.store.opening import is_archive_name, local_directory, resolve_location
from featurestore.store.segment_pooling import pool_feature
from featurestore.store.sizes import SIZES_KEY, array_bytes, bytes_under


def _counts(values):
    unique, counts = np.unique(values, return_counts=True)
    return {str(key): int(count) for key, count in zip(unique, counts)}


def _codec_names(array):
    names = []
    for codec in array.metadata.codecs:
        config = codec.to_dict()
        detail = config.get("configuration", {})
        if config["name"] == "blosc":
            names.append(
                f"blosc({detail.get('cname')}, {detail.get('shuffle')}, "
                f"clevel {detail.get('clevel')})"
            )
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
    sizes, sizes_from = array_bytes(store.zarr_group, store.label)
    info = {
        "store": store.label,
        "format": {key: value for key, value in store.format_record().items() if key != SIZES_KEY},
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
        "sizes": sizes_from,
        "features": {},
        "segments": [],
    }
    indexes = {name: store.feature_index(name) for name in store.features}
    for name in store.features:
        feature = store.feature(name)
        _, count, status = indexes[name]
        rows = int(count[status == COMMITTED].sum())
        on_disk = bytes_under(sizes, f"features/{name}")
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
            "compression_ratio": round(raw / on_disk, 3)
            if on_disk and feature.has_frames
            else None,
            "fingerprint": feature.attrs["fingerprint"],
            "params": feature.attrs["params"],
            "created": feature.attrs.get("created"),
            "package_versions": feature.attrs.get("package_versions", {}),
        }
    for entry in store.stored_segments(indexes=indexes):  # the indexes are read once
        path = stored_segments.group_path(entry["feature"], entry["pooling"])
        info["segments"].append({**entry, "bytes_on_disk": bytes_under(sizes, path)})
    info["bytes_on_disk"] = bytes_under(sizes, "")
    return info


def _join(prefix, path):
    return f"{prefix}/{path}" if prefix else path


def verify_store(store):
    """Problems found in a store, one line each (empty list: all good).

    Verify reports whatever a store holds and never stops at the first problem: a check that
    cannot run (an array avscene refuses to read, an index that cannot be trusted) becomes a
    line, and the other arrays, features and segment groups are still checked. The clip table
    is read here, chunk by chunk, not taken from ``store.clips``, so that a store whose table
    cannot be read still has all its other problems listed.
    """
    with warnings.catch_warnings():  # a v2 node is reported, not warned about by zarr
        warnings.filterwarnings("ignore", category=ZarrUserWarning)
        return _verify_store(store)


def _verify_store(store):
    problems = _guarded("store files", _file_problems, store)
    table = _verify_clip_table(store, problems)
    sound = {}
    for name in _guarded_list("features", lambda: store.features, problems) or ():
        found = _guarded(f"features/{name}", _verify_feature, store, name, table)
        sound[name] = not found
        problems += found
    groups = _guarded_list(
        "segments", lambda: stored_segments.stored_groups(store.zarr_group), problems
    )
    for (name, pooling), group in (groups or {}).items():
        problems += _guarded(
            group.path,
            _verify_segments,
            store,
            name,
            pooling,
            group,
            table,
            frames_ok=sound.get(name, False),
        )
    return problems


def _guarded(label, check, *args, **kwargs):
    """``check(*args, **kwargs)`` (a list of problems), or the one line of the error it raised:
    a hostile store must not stop verify from listing what else it finds."""
    try:
        return check(*args, **kwargs)
    except Exception as error:
        return [_first_line(error, label)]


def _guarded_list(label, listing, problems):
    """``listing()``, or None after adding the line of the error it raised to ``problems``."""
    try:
        return listing()
    except Exception as error:
        problems.append(_first_line(error, label))
        return None


def _verify_clip_table(store, problems):
    """Check every chunk of the clip table, then read it; return it, or None (with a line
    saying why) when it cannot be read."""
    clips = _guarded_list("clips", lambda: store.zarr_group["clips"], problems)
    if clips is None:
        problems.append(
            "clips: the clip table cannot be read; the features' indexes are not checked"
        )
        return None
    problems += _check_chunks(clips, CLIP_COLUMNS, "clips")
    try:
        table = read_clip_table(store.zarr_group, store.n_clips)
    except Exception as error:
        text = _first_line(error, "")
        known = any(text in problem for problem in problems)
        problems.append(
            f"clips: the table cannot be read{'' if known else f' ({text})'}; the "
            f"features' indexes are not checked"
        )
        return None
    unique_ids = np.unique(table.clip_id)
    if unique_ids.size != len(table):
        problems.append(f"clips/clip_id: {len(table) - unique_ids.size} duplicate clip ids")
    bad = ~(np.isfinite(table.duration) & (table.duration > 0))
    for position in np.flatnonzero(bad)[:5]:
        problems.append(
            f"clips/duration: clip {str(table.clip_id[position])!r} has duration "
            f"{table.duration[position]!r}"
        )
    if np.any(bad):
        problems.append(
            "clips/duration: the features' indexes are not checked (their block "
            "layout follows from the durations)"
        )
        return None
    return table


def _file_problems(store):
    """In a local folder: entries that are not files of a store (see
    :mod:`~featurestore.store.inventory`). Elsewhere, where readers use the root's consolidated
    metadata: node documents that differ from their copies there."""
    zstore, prefix = store.zarr_location()
    if isinstance(zstore, LocalStore):
        return folder_problems(
            Path(zstore.root).joinpath(*prefix.split("/")) if prefix else Path(zstore.root)
        )
    documents = {}
    for key in list_keys(zstore, prefix):
        relative = key[len(prefix) + 1 :] if prefix else key
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
    return (
        folder_problems(folder)
        if folder is not None and os.path.lexists(folder / "zarr.json")
        else []
    )


def _check_chunks(group, names, label, stored=None):
    """Decode every stored chunk of the named arrays of ``group``; report failures by key.

    An array that is missing, or that avscene refuses to read, is reported as one line.
    ``stored``, if given, receives {array name: set of stored chunk indices}.
    """
    problems = []
    for name in names:
        try:
            reader = ChunkReader(member_array(group, name, f"{label}/{name}"))
        except Exception as error:
            text = str(error).splitlines()[0] if str(error) else "missing"
            problems.append(
                text if text.startswith(f"{label}/{name}") else f"{label}/{name}: {text}"
            )
            continue
        indices, outside = _stored_chunks(group.store, _join(group.path, name), reader)
        if stored is not None:
            stored[name] = indices
        if outside:
            problems.append(f"{label}/{name}: {outside} stored chunks lie outside the array")

        def decode(index, reader=reader):
            try:
                reader.load(index)
            except Exception as error:  # report every corrupt chunk, keep going
                message = str(error).split("\n")[0]
                if reader.key(index) not in message:
                    message = f"{reader.key(index)}: {message}"
                problems.append(f"corrupt chunk {message}")

        run_all(decode, sorted(indices))
    return sorted(problems)


def _stored_chunks(store, path, reader):
    """(set of chunk indices stored, number of other objects) under ``<path>/c/``, from the
    store's listing; temporary files are left out."""
    indices, outside = set(), 0
    for key in list_keys(store, chunk_prefix(path)):
        if is_temporary(key) or key.endswith("/"):  # folder entries of zip tools
            continue
        parsed = parse_chunk_key(key)
        coords = parsed[1] if parsed is not None and parsed[0] == path else ()
        if (
            coords
            and len(coords) == len(reader.shape)
            and not any(coords[1:])
            and coords[0] < reader.nchunks
        ):
            indices.add(coords[0])
        else:
            outside += 1
    return indices, outside


def _verify_feature(store, name, table):
    """Problems of one feature: its chunks, then (with a readable clip table) its index, the
    chunks holding committed rows and their timestamps."""
    label = f"features/{name}"
    try:
        feature = store.feature(name)
    except Exception as error:  # still decode the arrays avscene can read
        group = store.feature_group(name)
        names = [
            key for key in ("values", "timestamps") + INDEX_ARRAYS if key in group.array_keys()
        ]
        return [_first_line(error, label)] + _check_chunks(group, names, label)
    stored = {}
    problems = _check_chunks(feature.group, tuple(feature.arrays), label, stored)
    if fingerprint(feature.definition()) != feature.attrs["fingerprint"]:
        problems.append(f"{label}: fingerprint does not match the stored definition")
    if table is None:
        return problems
    n_clips = len(table)
    for array_name in INDEX_ARRAYS:
        if feature.arrays[array_name].shape[0] != n_clips:
            return problems + [
                f"{label}/{array_name}: {feature.arrays[array_name].shape[0]} "
                f"entries for {n_clips} clips"
            ]
    corrupt = {
        problem.split()[2].split("/")[2]
        for problem in problems
        if problem.startswith(f"corrupt chunk {label}/")
    }
    if corrupt & {"offset", "count", "status"}:
        return problems  # the index cannot be read
    offset, count, status = feature.index()
    if not feature.has_frames:  # a segments-only store: the index alone
        return problems + _check_index(
            table, store.block_clips, feature, offset, count, status, None, None
        )
    starts, stops = feature.regions(table.duration)
    total = int(stops[-1]) if stops.size else 0
    if feature.values.shape != (total, feature.dim) or feature.timestamps.shape != (total,):
        return problems + [
            f"{label}: values {feature.values.shape} / timestamps "
            f"{feature.timestamps.shape}, layout needs ({total}, {feature.dim})"
        ]
    index_problems = _check_index(
        table, store.block_clips, feature, offset, count, status, starts, stops
    )
    if not index_problems:
        index_problems = _check_rows(
            feature,
            offset,
            count,
            status,
            stored,
            label,
            table.clip_id,
            timestamps="timestamps" not in corrupt,
        )
    return problems + index_problems


def _first_line(error, label):
    """The first line of an error's message, prefixed with ``label`` unless it starts so."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if not label or text.startswith(label) else f"{label}: {text}"


def _check_rows(feature, offset, count, status, stored, label, ids, *, timestamps=True):
    """Every chunk holding committed rows is stored; their timestamps are sane (unless
    ``timestamps`` is False: a chunk of them does not decode)."""
    rows = np.flatnonzero((status == COMMITTED) & (count > 0))
    if not rows.size:
        return []
    chunk_rows = feature.chunk_rows
    runs = _merge_runs(offset[rows] // chunk_rows, (offset[rows] + count[rows] - 1) // chunk_rows)
    problems = []
    for name in ("values", "timestamps"):
        reader = ChunkReader(feature.arrays[name])
        missing, examples = _missing_in_runs(runs, stored[name])
        problems += [
            f"missing chunk {reader.key(index)} (holds committed rows)" for index in examples
        ]
        if missing > len(examples):
            problems.append(f"{label}/{name}: {missing - len(examples)} more chunks missing")
    if problems or not timestamps:
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
        inside = present[np.searchsorted(present, start) : np.searchsorted(present, stop, "right")]
        missing += stop - start + 1 - inside.size
        index, have = start, set(inside.tolist())
        while len(examples) < limit and index <= stop and index - start <= inside.size + limit:
            if index not in have:
                examples.append(index)
            index += 1
    return missing, examples


def _check_index(table, block_clips, feature, offset, count, status, starts, stops):
    """Problems of a feature's index: unknown status codes, committed rows outside their
    block's region (``starts``/``stops``; None for a store without frames) or reservation,
    failures without a reason, overlapping clips."""
    label = f"features/{feature.name}"
    ids = table.clip_id
    problems = []

    def report(mask, text, limit=5):
        for position in np.flatnonzero(mask)[:limit]:
            problems.append(f"{label}: clip {str(ids[position])!r} {text(position)}")
        if np.sum(mask) > limit:
            problems.append(f"{label}: {int(np.sum(mask)) - limit} more clips like the above")

    known = [PENDING, COMMITTED, FAILED, NOT_APPLICABLE]
    report(~np.isin(status, known), lambda p: f"has status {status[p]}")
    committed = status == COMMITTED
    report(committed & (count < 0), lambda p: f"has {count[p]} rows")
    if starts is not None:
        block = np.arange(len(status)) // block_clips
        low, high = starts[block], stops[block]
        outside = committed & ((offset < low) | (offset > high - count)) & (count >= 0)
        report(
            outside,
            lambda p: (
                f"rows [{offset[p]}, {offset[p] + count[p]}) leave its "
                f"block's region [{low[p]}, {high[p]})"
            ),
        )
    reserved = feature.reserved(table.duration)
    report(
        committed & (count > reserved), lambda p: f"has {count[p]} rows, {reserved[p]} reserved"
    )
    failed = np.flatnonzero(status == FAILED)
    if failed.size:
        reasons = read_span(feature.reason)
        empty = np.zeros(len(status), bool)
        empty[failed] = [not str(reasons[p]) for p in failed]
        report(empty, lambda p: "failed without a reason")
    rows = np.flatnonzero(committed & (count > 0) & (count <= reserved))
    if rows.size and starts is not None:
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
        problems.append(
            f"{label}: clip {str(ids[clip])!r} has rows without timestamps "
            f"(a chunk of timestamps is missing)"
        )
    backwards = (np.diff(times) < 0) & (clip_of_row[1:] == clip_of_row[:-1])
    for clip in np.unique(clip_of_row[1:][backwards])[:5]:
        problems.append(f"{label}: clip {str(ids[clip])!r} has decreasing timestamps")
    return problems


def _verify_segments(store, name, pooling, group, table, *, frames_ok=True):
    """Problems of one stored segment group: chunks that do not decode or are missing, arrays
    that disagree with its attributes or with what the committed frames can make, impossible
    entries and, when it was made from the current frames and ``frames_ok`` (the feature has
    no problem), values that differ from pooling those frames now. A copy made from other
    frames (stale) is no problem: readers do not use it."""
    label = group.path
    if name not in store.features:
        return [f"{label}: segments of {name!r}, which is not a feature of the store"]
    stored = {}
    arrays = [key for key in stored_segments.SEGMENT_ARRAYS if key in group.array_keys()]
    problems = _check_chunks(group, arrays, label, stored)
    if table is None or not frames_ok:  # the feature's own lines say why
        return problems
    feature = store.feature(name)
    index = feature.index(n_clips=len(table))
    try:
        readers = stored_segments.checked_arrays(
            group, feature.dim, pooling, most=stored_segments.most_segments(index, table.duration)
        )
    except Exception as error:
        return problems + [_first_line(error, label)]
    for array_name, reader in readers.items():
        missing, examples = _missing_in_runs([(0, reader.nchunks - 1)], stored[array_name])
        problems += [f"missing chunk {reader.key(index)} (holds segments)" for index in examples]
        if missing > len(examples):
            problems.append(f"{label}/{array_name}: {missing - len(examples)} more chunks missing")
    if problems or not stored_segments.is_fresh(group, feature, table, index):
        return problems
    durations = table.duration
    stride = int(n_segments(durations).max()) + 1 if len(durations) else 1
    positions = np.arange(len(table), dtype=np.int64)
    keys, values, counts = stored_segments.read_segments(
        group, feature, table, index, positions, stride, pooling
    )
    if not feature.has_frames:  # nothing to pool them from
        return []
    expected = pool_feature(feature, index, positions, durations, stride, pooling)
    if not np.array_equal(keys, expected[0]) or not np.array_equal(counts, expected[2]):
        return [
            f"{label}: holds other segments ({keys.size}) than its frames give "
            f"({expected[0].size}), although its frames fingerprint matches"
        ]
    differ = ~np.all((values == expected[1]) | (np.isnan(values) & np.isnan(expected[1])), axis=1)
    if np.any(differ):
        first = int(np.flatnonzero(differ)[0])
        return [
            f"{label}: {int(differ.sum())} segments differ from pooling the frames, e.g. "
            f"clip {str(table.clip_id[keys[first] // stride])!r} second "
            f"{int(keys[first] % stride)}"
        ]
    return []


def stale_segments(store):
    """``feature pooling`` of each stored segment group made from other frames than the
    store's current ones (never read; ``avscene segments`` rewrites them)."""
    return [
        f"{entry['feature']} {entry['pooling']}"
        for entry in store.stored_segments()
        if not entry["fresh"]
    ]


# -- temporary files and repair ---------------------------------------------------------------


def temporary_files(store):
    """Keys of leftover temporary files in the store (names ending in ``.partial``), sorted."""
    zstore, prefix = store.zarr_location()
    if isinstance(zstore, LocalStore):
        root = Path(zstore.root).joinpath(*prefix.split("/")) if prefix else Path(zstore.root)
        found = [
            Path(folder, name).relative_to(root).as_posix()
            for folder, _, names in os.walk(root)
            for name in names
            if is_temporary(name)
        ]
    else:
        found = [
            key[len(prefix) + 1 :] if prefix else key
            for key in list_keys(zstore, prefix)
            if is_temporary(key)
        ]
    return sorted(found)


def repair_store(store):
    """Remove leftover temporary files and the leases of writers that are gone.

    Refused while a live writer holds a lease (its temporary files may be in flight).

    Returns
    -------
    list of str
        One line per file removed.
    """
    live = live_leases(store.leases)
    if live:
        key, holder = live[0]
        raise StoreError(
            f"{store.label}: {LEASE_DIR}/{key} is held by {holder}; a writer is "
            f"running, repair when it has finished"
        )
    zstore, prefix = store.zarr_location()
    removed = []
    for key in temporary_files(store):
        sync(zstore.delete(_join(prefix, key)))
        removed.append(f"removed temporary file {key}")
    for key, holder in stale_leases(store.leases):
        if remove_stale(store.leases, key):
            removed.append(f"removed the lease {LEASE_DIR}/{key} of {holder} (no longer running)")
    return removed
