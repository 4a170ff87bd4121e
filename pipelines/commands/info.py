"""``avscene info STORE``: clips, features, shapes, chunking, sizes on disk and provenance."""

import json

from pipelines.commands.options import add_http, add_json, print_json


def add_arguments(parser):
    parser.add_argument("store", help="feature store: a directory or an fsspec URL")
    add_http(parser)
    add_json(parser, what="the description")


def run(args):
    from featurestore.store import FeatureStore

    with FeatureStore.open(args.store, mode="r") as store:
        info = store.info()
    if args.json:
        print_json(info)
    else:
        print(format_info(info))
    return 0


def _size(n_bytes):
    if n_bytes is None:
        return "? (not recorded)"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return ""


def _counts(counts):
    return ", ".join(f"{key or '(none)'} {value}" for key, value in counts.items()) or "-"


def format_info(info):
    """Human-readable text of :meth:`FeatureStore.info`."""
    meta, clips = info["format"], info["clips"]
    lines = [
        f"store     {info['store']}",
        f"format    {meta['format']} v{meta['format_version']}, created {meta['created']} "
        f"by avscene {meta['avscene_version']}",
        f"clips     {clips['total']} ({clips['hours']:.1f} h, "
        f"{clips['duration_min'] or 0:g}-{clips['duration_max'] or 0:g} s), "
        f"{clips['locations']} locations, {info['blocks']} blocks of {info['block_clips']}",
        f"  folds   {_counts(clips['by_fold'])}",
        f"  scenes  {_counts(clips['by_scene'])}",
        f"  cities  {_counts(clips['by_city'])}",
    ]
    if info.get("segments_only"):
        lines.append(
            "contents  stored segments only (frames omitted): train, evaluate and "
            "predict work, reading frames does not"
        )
    for key, value in info["attrs"].items():
        lines.append(f"attr      {key} = {json.dumps(value)}")
    for name, feature in info["features"].items():
        versions = feature["package_versions"]
        made_with = ", ".join(
            f"{key} {versions[key]}"
            for key in ("python", "numpy", "zarr", "torch")
            if key in versions
        )
        ratio = feature["compression_ratio"]
        lines += [
            f"feature   {name}: dim {feature['dim']}, {feature['frame_rate']:g} frames/s, "
            f"stored {feature['storage_dtype']}, {feature['compression']}",
            f"  clips   committed {feature['committed']}, failed {feature['failed']}, "
            f"pending {feature['pending']}, not applicable {feature['not_applicable']}",
        ]
        if feature.get("frames", True):
            lines += [
                f"  rows    {feature['rows']} used of values {tuple(feature['values_shape'])}, "
                f"chunks {tuple(feature['values_chunks'])}, codecs "
                f"{' + '.join(feature['codecs'])}",
                f"  disk    {_size(feature['bytes_on_disk'])} (rows + timestamps "
                f"{_size(feature['bytes_raw'])} raw, ratio {ratio if ratio else '-'})",
            ]
        else:
            lines.append(
                f"  rows    {feature['rows']} frames, not in this store (index "
                f"{_size(feature['bytes_on_disk'])})"
            )
        lines += [
            f"  params  {json.dumps(feature['params'], sort_keys=True)}",
            f"  made    {feature['created']} with {made_with}; fingerprint "
            f"{feature['fingerprint'][:16]}",
        ]
    for entry in info.get("segments", []):
        lines.append(
            f"segments  {entry['feature']} {entry['pooling']}: {entry['segments']} x "
            f"{entry['dim']}, {_size(entry['bytes_on_disk'])}, "
            + (
                "up to date"
                if entry["fresh"]
                else "STALE (made from other frames, not used; avscene segments rewrites it)"
            )
        )
    recorded = " (as recorded by the store's writer)" if info.get("sizes") == "recorded" else ""
    lines.append(f"total     {_size(info['bytes_on_disk'])} on disk{recorded}")
    return "\n".join(lines)
