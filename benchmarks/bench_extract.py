"""Extraction throughput against pure model throughput, measured in the same run (CPU).

A synthetic corpus (:func:`featurestore.synth.corpus.synth_corpus`: 48 kHz 24-bit stereo WAV, H.264
video) is extracted three ways, each timed in seconds of audio-visual media per wall second:

- **pure model**: the same runners (OpenL3 audio, OpenL3 image, log-mel; random weights) on
  inputs decoded beforehand, fed in the same cross-clip batches; only network calls are timed;
- **extract, no workers** (``--workers 0``): decoding in the model's process, no overlap;
- **extract, workers on** (``--workers N``): the real job: decoding in worker processes,
  batching across clips, store writes, progress.

The ratio extraction / pure model shows what decoding, I/O and orchestration cost; the goal is
>= 80% with workers on. Extraction wall time runs from the start of the decoding pool to the
last write (model loading and clip registration excluded; worker start-up included).
The network is warmed up first; with ``--repeats R`` the three phases run R times in rotated
order and each keeps its best round, so load changes on a shared machine hit every phase alike.
The load average is recorded; compare ratios, not absolute figures, across runs.

Run: ``.venv/bin/python -m benchmarks extract`` (defaults) or ``.venv/bin/python -m
benchmarks.bench_extract [options]`` (``--quick`` for a smaller corpus, ``--repeats 2``,
``--fp32``, ...). Prints a markdown table and writes bench-output/extract.json.
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.records import write_record
from featurestore.provenance import package_versions, utc_now


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks extract",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=4, help="development clips (one class each)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length")
    parser.add_argument("--size", default="640x360", help="video WxH (short side >= 224)")
    parser.add_argument("--source-fps", type=float, default=30.0, help="video frame rate")
    parser.add_argument("--hop", type=float, default=0.1, help="OpenL3 audio hop (s)")
    parser.add_argument("--fps", type=float, default=10.0, help="video frames sampled per second")
    parser.add_argument("--features", default="openl3_audio,openl3_video,logmel")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding workers of the 'workers on' run (default: the CLI's)",
    )
    parser.add_argument("--fp32", action="store_true", help="float32 networks (default: bf16)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds over the three phases (order rotated); best kept",
    )
    parser.add_argument("--quick", action="store_true", help="2 clips of 3 s")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", default="bench-output/extract.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.seconds = 2, 3.0
    return args


def make_corpus(folder, args):
    from featurestore.datasets import SCENES
    from featurestore.synth import synth_corpus

    width, height = (int(v) for v in args.size.split("x"))
    synth_corpus(
        folder,
        clips_per_class=1,
        seconds=args.seconds,
        size=(width, height),
        fps=args.source_fps,
        seed=0,
        classes=SCENES[: args.clips],
        workers=1,
    )
    return folder / "development"


def pure_model(root, plan, extractors, runners):
    """Decode everything first (untimed), then time the runners on cross-clip batches."""
    from featurestore.datasets import load_manifest
    from featurestore.extraction import probe_duration
    from featurestore.extraction.batching import Batcher
    from featurestore.extraction.prepare import init_worker, prepare_task

    init_worker(root, plan, extractors)
    clips = [c.with_duration(probe_duration(c, root)) for c in load_manifest(root).clips]
    started = time.perf_counter()
    prepared = [prepare_task((clip, [e.name for e in extractors])) for clip in clips]
    decode = time.perf_counter() - started
    for result in prepared:
        if result.failures:
            raise RuntimeError(f"benchmark corpus failed to decode: {result.failures}")
    # warm-up: one small batch per runner (oneDNN primitive creation, allocator)
    for name, runner in runners.items():
        runner.run([prepared[0].inputs[name].items[:2]])
    model = 0.0
    for name, runner in runners.items():
        batcher = Batcher(runner.run, batch_items=runner.batch_items)
        for result in prepared:
            batcher.add(result.clip_id, result.inputs[name])
            while batcher.full():
                batcher.step()
        while batcher:
            batcher.step()
        model += batcher.model_seconds
    media = sum(c.duration for c in clips)
    return {
        "media_seconds": media,
        "model_seconds": model,
        "decode_seconds": decode,
        "media_per_second": media / model,
        "decode_media_per_second": media / decode,
    }


def extraction(root, store, plan, extractors, args, workers):
    from featurestore.extraction import ExtractJob

    job = ExtractJob(
        root,
        store,
        plan,
        extractors=extractors,
        device="cpu",
        batch=args.batch,
        workers=workers,
        progress="log",
    )
    summary = job.run()
    if summary["failed_in_scope"]:
        raise RuntimeError(f"benchmark extraction failed: {summary['failures']}")
    return {
        key: summary[key]
        for key in (
            "media_seconds",
            "wall_seconds",
            "media_per_second",
            "decode_seconds",
            "model_seconds",
            "write_seconds",
            "wait_seconds",
        )
    }


def run(args, workdir):
    from featurestore import openl3
    from featurestore.extraction import Plan, load_runners, plan_extractors
    from pipelines.commands.extract import default_workers

    workers = default_workers() if args.workers is None else args.workers
    root = make_corpus(workdir / "corpus", args)
    weights = openl3.random_weights_folder(0, folder=workdir)
    plan = Plan(features=tuple(args.features.split(",")), hop=args.hop, fps=args.fps)
    extractors = plan_extractors(plan, weights=weights, bf16=not args.fp32)
    runners = load_runners(extractors, device="cpu", batch=args.batch)
    phases = {
        "pure model": lambda k: pure_model(root, plan, extractors, runners),
        "extract, no workers": lambda k: extraction(
            root, workdir / f"s0-{k}", plan, extractors, args, 0
        ),
        f"extract, {workers} workers": lambda k: extraction(
            root, workdir / f"s1-{k}", plan, extractors, args, workers
        ),
    }
    names = list(phases)
    results = {}
    for k in range(args.repeats):
        for name in names[k % 3 :] + names[: k % 3]:
            row = phases[name](k)
            if name not in results or row["media_per_second"] > results[name]["media_per_second"]:
                results[name] = row
    results = {name: results[name] for name in names}
    base = results["pure model"]["media_per_second"]
    for phase in results.values():
        phase["ratio_to_pure_model"] = phase["media_per_second"] / base
    return results, workers


def table(record):
    lines = [
        "| phase | media s | wall s | of which model s | waiting s | media s / s "
        "| ratio to pure model |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for phase, row in record["phases"].items():
        wall = row.get("wall_seconds", row["model_seconds"])
        wait = f"{row['wait_seconds']:.1f}" if "wait_seconds" in row else "-"
        lines.append(
            f"| {phase} | {row['media_seconds']:.1f} | {wall:.1f} | "
            f"{row['model_seconds']:.1f} | {wait} | {row['media_per_second']:.3f} | "
            f"{row['ratio_to_pure_model']:.0%} |"
        )
    pure = record["phases"]["pure model"]
    lines.append("")
    lines.append(
        f"decoding alone (one process): {pure['decode_media_per_second']:.1f} s media/s; "
        f"load average at start {record['load_average'][0]:.1f} on "
        f"{record['cpu_count']} cores"
    )
    return "\n".join(lines)


def main(argv):
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="bench-extract-", dir=args.workdir))
    load = os.getloadavg()
    try:
        phases, workers = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record = {
        "command": " ".join([".venv/bin/python -m benchmarks.bench_extract", *argv]),
        "settings": {
            "clips": args.clips,
            "seconds": args.seconds,
            "size": args.size,
            "source_fps": args.source_fps,
            "hop": args.hop,
            "fps": args.fps,
            "features": args.features,
            "batch": args.batch,
            "workers": workers,
            "repeats": args.repeats,
            "dtype": "float32" if args.fp32 else "bfloat16",
        },
        "phases": phases,
        "load_average": load,
        "cpu_count": os.cpu_count(),
        "time": utc_now(),
        "versions": package_versions(),
    }
    print(table(record))
    write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
