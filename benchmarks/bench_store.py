"""Feature-store benchmark: write and full-read throughput against np.save / np.load.

A TAU-sized store: 12,292 ten-second clips x 100 frames (10 frames per one-second segment,
122,920 segments) of 512-d float32 "audio" and "video" features, 1,229,200 rows each. Values
are synthetic but shaped like OpenL3 embeddings (dense, mostly positive, mean ~3, sd ~1.6),
which byte-shuffled lossless codecs compress only ~1.1x.

Run: ``.venv/bin/python -m benchmarks store`` (or ``python -m benchmarks.bench_store --small``
for a tenth of the size). Prints a markdown table and writes bench-output/store.json. Ratios
compare with np.save/np.load of the same float32 bytes, timed right before each setting's write
and alternately with its reads (best of ``--repeat``), files in the page cache either way.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.records import write_record
from featurestore.datasets import DEVELOPMENT_CITIES, SCENES, Clip
from featurestore.store import FeatureStore

FULL_CLIPS, DIM, FRAMES_PER_SECOND, SECONDS = 12_292, 512, 10, 10
SETTINGS = (  # label, compression, storage dtype
    ("zstd+shuffle float32", "zstd", "float32"),
    ("zstd+shuffle float16", "zstd", "float16"),
    ("lz4+shuffle float32 (default)", "lz4", "float32"),
    ("none float32", "none", "float32"),
)
#: The setting whose store is kept for the selection timings: the default one.
SELECTION_SETTING = ("lz4", "float32")


def make_clips(n_clips):
    """Clips in TAU's file-name order: scene, then city, then location (4 per scene and city)."""
    clips = []
    for i in range(n_clips):
        scene_index = i * 10 // n_clips
        within = i - -(-scene_index * n_clips // 10)
        per_scene = -(-(scene_index + 1) * n_clips // 10) - -(-scene_index * n_clips // 10)
        city_index = within * 10 // per_scene
        scene, city = SCENES[scene_index], DEVELOPMENT_CITIES[city_index]
        location = f"{city}-{scene_index * 4 + within % 4}"
        fold = ("evaluate",) if within % 4 == 3 else ("train",)
        clips.append(
            Clip(
                f"{scene}-{location}-{i}",
                f"audio/{i}.wav",
                f"video/{i}.mp4",
                scene=scene,
                city=city,
                location=location,
                folds=fold,
                duration=float(SECONDS),
            )
        )
    return clips


def make_values(n_rows, seed):
    """Synthetic embeddings, shape (n_rows, DIM), float32."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n_rows, DIM), dtype=np.float32)
    values *= 1.6
    values += 3.0
    np.maximum(values, -0.25, out=values)
    return values


def timed(function, repeat=1):
    """(best seconds, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def write_feature(store, name, values, frames_per_clip):
    """Write every clip through the block writers, like the extraction job."""
    timestamps = np.arange(frames_per_clip) / FRAMES_PER_SECOND
    for block in store.blocks():
        with store.block_writer(name, block) as writer:
            for i in range(block.start, block.stop):
                rows = values[i * frames_per_clip : (i + 1) * frames_per_clip]
                writer.write(block.clip_ids[i - block.start], rows, timestamps)


def feature_bytes(path, name):
    """Bytes on disk under features/<name>."""
    root = Path(path) / "features" / name
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def run(n_clips, workdir, repeat):
    frames_per_clip = SECONDS * FRAMES_PER_SECOND
    n_rows = n_clips * frames_per_clip
    clips = make_clips(n_clips)
    audio = make_values(n_rows, seed=1)
    npy = workdir / "audio.npy"
    results = {
        "clips": n_clips,
        "rows": n_rows,
        "dim": DIM,
        "raw_bytes": audio.nbytes,
        "settings": [],
    }
    for label, compression, dtype in SETTINGS:
        # np.save / np.load are timed next to each setting, so that the ratios compare runs
        # made under the same load (the machine is shared)
        save_s, _ = timed(lambda: np.save(npy, audio))
        path = workdir / f"{compression}-{dtype}.zarr"
        store = FeatureStore.open(path, mode="w")
        store.add_clips(clips)
        store.create_feature(
            "audio",
            dim=DIM,
            frame_rate=FRAMES_PER_SECOND,
            params={"synthetic": True},
            storage_dtype=dtype,
            compression=compression,
        )
        write_s, _ = timed(
            lambda store=store: write_feature(store, "audio", audio, frames_per_clip)
        )
        load_s = read_s = float("inf")
        for _ in range(repeat):
            load_s = min(load_s, timed(lambda: np.load(npy))[0])
            seconds, frames = timed(lambda store=store: store.read("audio"))
            read_s = min(read_s, seconds)
        error = float(np.max(np.abs(frames.values - audio))) if frames.values.size else 0.0
        del frames
        results["settings"].append(
            {
                "setting": label,
                "bytes_on_disk": feature_bytes(path, "audio"),
                "np_save_s": save_s,
                "np_load_s": load_s,
                "write_s": write_s,
                "read_s": read_s,
                "max_abs_error": error,
                "write_vs_np_save": save_s / write_s,
                "read_vs_np_load": load_s / read_s,
            }
        )
        if (compression, dtype) != SELECTION_SETTING:
            shutil.rmtree(path)
    npy.unlink()
    kept = workdir / "{}-{}.zarr".format(*SELECTION_SETTING)
    results["selection"] = time_selection(kept, audio, frames_per_clip, repeat)
    return results


def time_selection(path, audio, frames_per_clip, repeat):
    """Add the video feature, then time one-city reads against full reads of the store."""
    store = FeatureStore.open(path, mode="r+")
    store.create_feature(
        "video", dim=DIM, frame_rate=FRAMES_PER_SECOND, params={"synthetic": True}
    )
    video = make_values(audio.shape[0], seed=2)
    write_feature(store, "video", video, frames_per_clip)
    del video
    city = store.select(city=DEVELOPMENT_CITIES[0])
    names = ["audio", "video"]
    full_read_s, _ = timed(lambda: [store.read(name) for name in names], repeat)
    city_read_s, _ = timed(lambda: [store.read(name, selection=city) for name in names], repeat)
    full_seg_s, full = timed(lambda: store.segments(names, pooling="mean"), repeat)
    city_seg_s, part = timed(lambda: store.segments(names, selection=city, pooling="mean"), repeat)
    return {
        "city_clips": int(city.size),
        "segments_full": len(full),
        "segments_city": len(part),
        "full_read_s": full_read_s,
        "city_read_s": city_read_s,
        "full_segments_mean_s": full_seg_s,
        "city_segments_mean_s": city_seg_s,
        "store_bytes": sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()),
    }


def table(results):
    """Markdown tables of the results."""
    gib = 2**30
    raw = results["raw_bytes"]
    lines = [
        f"{results['clips']} clips x {results['rows'] // results['clips']} frames = "
        f"{results['rows']} rows x {results['dim']} float32 per feature ({raw / gib:.2f} GiB); "
        f"{results.get('cpu_count')} cores, load average {results.get('load_average', ['?'])[0]}"
        f" at the end",
        "",
        "| setting | bytes on disk | ratio | write GB/s | np.save GB/s | write / np.save "
        "| full read GB/s | np.load GB/s | full read / np.load | max abs error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["settings"]:
        lines.append(
            f"| {row['setting']} | {row['bytes_on_disk'] / gib:.2f} GiB | "
            f"{raw / row['bytes_on_disk']:.2f} | {raw / row['write_s'] / 1e9:.2f} | "
            f"{raw / row['np_save_s'] / 1e9:.2f} | {row['write_vs_np_save']:.2f} | "
            f"{raw / row['read_s'] / 1e9:.2f} | {raw / row['np_load_s'] / 1e9:.2f} | "
            f"{row['read_vs_np_load']:.2f} | {row['max_abs_error']:.1e} |"
        )
    sel = results["selection"]
    lines += [
        "",
        f"audio + video store (lz4+shuffle float32, the default), {sel['store_bytes'] / gib:.2f} GiB on disk; "
        f"one city = {sel['city_clips']} clips:",
        "",
        "| read | full store | one city | city / full |",
        "| --- | ---: | ---: | ---: |",
        f"| frames (store.read, both features) | {sel['full_read_s']:.2f} s | "
        f"{sel['city_read_s']:.2f} s | {sel['city_read_s'] / sel['full_read_s']:.2f} |",
        f"| segments, mean pooling, joined ({sel['segments_full']} / {sel['segments_city']}) | "
        f"{sel['full_segments_mean_s']:.2f} s | {sel['city_segments_mean_s']:.2f} s | "
        f"{sel['city_segments_mean_s'] / sel['full_segments_mean_s']:.2f} |",
    ]
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--small", action="store_true", help="a tenth of the TAU size")
    parser.add_argument("--clips", type=int, default=None, help="number of 10 s clips")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="reads (and np.load) timed this often; the best time counts",
    )
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--output", default="bench-output/store.json", help="JSON results")
    args = parser.parse_args(argv)
    n_clips = args.clips or (FULL_CLIPS // 10 if args.small else FULL_CLIPS)
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.workdir))
    try:
        results = run(n_clips, workdir, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["command"] = "python -m benchmarks store" + (" --small" if args.small else "")
    results["cpu_count"] = os.cpu_count()
    results["load_average"] = [round(value, 2) for value in os.getloadavg()]
    print(table(results))
    write_record(args.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
