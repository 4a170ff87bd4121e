"""Stored segments and remote stores: what a training run's read costs, locally and over HTTP.

One TAU-sized store (12,292 ten-second clips; "audio" and "video" features of 512-d float32 at
10 frames/s, 1,229,200 rows each, lz4, synthetic values shaped like OpenL3 embeddings, as in
``benchmarks/bench_store.py``), then in one run:

1. reading the 1-s mean segments of audio + video of every clip by pooling the frames, against
   reading the stored segments (``avscene segments``), best of ``--repeat``, with a check that
   both give equal arrays;
2. the bytes of the store and of its segments-only archive (``avscene pack --segments-only``);
3. served by a local HTTP server with an artificial delay per request (``--delay``, standing in
   for a network's latency; benchmarks/http_server.py), the requests and time of opening the
   store (open + every feature's provenance) and of reading one city's 1-s mean segments of
   audio + video, for the store folder and the segments-only archive over HTTP, against the same
   reads from local disk.

Run: ``.venv/bin/python -m benchmarks remote`` (``python -m benchmarks.bench_remote --small``
for a tenth of the size). Prints a markdown table and writes bench-output/remote.json.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_store import (
    DIM,
    FRAMES_PER_SECOND,
    FULL_CLIPS,
    SECONDS,
    make_clips,
    make_values,
    timed,
    write_feature,
)
from benchmarks.http_server import serve
from benchmarks.records import write_record
from featurestore.store import FeatureStore
from featurestore.store.interchange.archive import pack_store

FEATURES = ("audio", "video")
CITY = "lisbon"


def folder_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def build_store(path, n_clips):
    """The store of the module docstring; returns its path."""
    store = FeatureStore.open(path, mode="w")
    store.add_clips(make_clips(n_clips))
    frames_per_clip = SECONDS * FRAMES_PER_SECOND
    for seed, name in enumerate(FEATURES, start=1):
        store.create_feature(
            name, dim=DIM, frame_rate=FRAMES_PER_SECOND, params={"synthetic": True, "seed": seed}
        )
        values = make_values(n_clips * frames_per_clip, seed=seed)
        write_feature(store, name, values, frames_per_clip)
        del values
    return store


def measure_segments(path, repeat):
    """Pooling the frames vs reading stored segments, the whole store (local disk)."""
    pooled_s, pooled = timed(lambda: FeatureStore.open(path).segments(list(FEATURES)), repeat)
    write_s, _ = timed(
        lambda: FeatureStore.open(path, mode="r+").write_segments(
            list(FEATURES), poolings=("mean",)
        )
    )
    stored_s, stored = timed(lambda: FeatureStore.open(path).segments(list(FEATURES)), repeat)
    equal = (
        all(np.array_equal(pooled.features[n], stored.features[n]) for n in FEATURES)
        and np.array_equal(pooled.clip_id, stored.clip_id)
        and np.array_equal(pooled.second, stored.second)
    )
    return {
        "segments": len(stored),
        "pooled_s": pooled_s,
        "stored_s": stored_s,
        "speedup": pooled_s / stored_s,
        "equal": bool(equal),
        "write_segments_s": write_s,
    }


def measure_reads(where, server=None):
    """(open: requests, seconds), (one city's segments: requests, seconds, n) of one store."""
    if server:
        server.reset()
    start = time.perf_counter()
    store = FeatureStore.open(where)
    for name in store.features:
        store.feature_attrs(name)
    open_s = time.perf_counter() - start
    open_requests = server.reset() if server else None
    start = time.perf_counter()
    segments = store.segments(list(FEATURES), selection=store.select(city=CITY))
    city_s = time.perf_counter() - start
    city_requests = server.reset() if server else None
    store.close()
    return {
        "open_requests": open_requests,
        "open_s": open_s,
        "city_requests": city_requests,
        "city_s": city_s,
        "city_segments": len(segments),
    }


def run(n_clips, workdir, repeat, delay):
    path = workdir / "store.zarr"
    started = time.perf_counter()
    build_store(path, n_clips)
    results = {
        "clips": n_clips,
        "rows_per_feature": n_clips * SECONDS * FRAMES_PER_SECOND,
        "dim": DIM,
        "build_s": time.perf_counter() - started,
        "delay_s": delay,
    }
    results["stored_segments"] = measure_segments(path, repeat)
    archive = workdir / "seconds.zarr.zip"
    pack_store(FeatureStore.open(path), archive, segments_only=True)
    results["bytes"] = {
        "store": folder_bytes(path),
        "segments_only_archive": archive.stat().st_size,
    }
    results["bytes"]["ratio"] = (
        results["bytes"]["segments_only_archive"] / results["bytes"]["store"]
    )
    reads = {"local folder": measure_reads(path), "local archive": measure_reads(archive)}
    with serve(workdir, delay=delay) as server:
        reads["HTTP folder"] = measure_reads(server.url("store.zarr"), server)
        reads["HTTP archive"] = measure_reads(server.url("seconds.zarr.zip"), server)
    results["reads"] = reads
    return results


def machine():
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def table(results):
    seg, size = results["stored_segments"], results["bytes"]
    lines = [
        f"{results['clips']} clips, audio + video {results['dim']}-d, "
        f"{results['rows_per_feature']} rows each; {seg['segments']} segments",
        "",
        "| read of every clip's 1-s mean segments | seconds |",
        "| --- | --- |",
        f"| pooling the frames | {seg['pooled_s']:.2f} |",
        f"| stored segments | {seg['stored_s']:.2f} |",
        f"| speed-up | {seg['speedup']:.1f}x (equal arrays: {seg['equal']}) |",
        f"| writing them (avscene segments) | {seg['write_segments_s']:.2f} |",
        "",
        f"store {size['store'] / 2**30:.2f} GiB; segments-only archive "
        f"{size['segments_only_archive'] / 2**30:.3f} GiB = {100 * size['ratio']:.1f}%",
        "",
        f"| store ({results['delay_s'] * 1000:g} ms per HTTP request) | open: requests "
        f"| open: s | one city's segments: requests | s | segments |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, read in results["reads"].items():

        def show(value):
            return "-" if value is None else str(value)

        lines.append(
            f"| {label} | {show(read['open_requests'])} | {read['open_s']:.3f} | "
            f"{show(read['city_requests'])} | {read['city_s']:.2f} | "
            f"{read['city_segments']} |"
        )
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_remote")
    parser.add_argument("--small", action="store_true", help="a tenth of the TAU size")
    parser.add_argument("--repeat", type=int, default=2, help="best of N reads")
    parser.add_argument(
        "--delay",
        type=float,
        default=0.005,
        help="seconds the HTTP server waits before each answer",
    )
    parser.add_argument(
        "--workdir",
        help="where to build the store (default: a temporary folder, removed afterwards)",
    )
    args = parser.parse_args(argv)
    n_clips = FULL_CLIPS // 10 if args.small else FULL_CLIPS
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="avscene-bench-remote-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(n_clips, workdir, args.repeat, args.delay)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = machine()
    results["command"] = "python -m benchmarks.bench_remote" + " ".join([""] + list(argv))
    print(table(results))
    print(json.dumps(results["machine"]))
    write_record(Path("bench-output") / "remote.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
