"""OpenL3 throughput on the machine it runs on: audio windows/s and image frames/s, three ways.

- fp32 eager: the network as Keras defines it (BatchNorm layers kept, NCHW) — the baseline;
- fp32 folded + channels-last: BatchNorm folded into the convolutions, channels-last layout
  (the default of ``load_*_model``; same numbers within float rounding);
- bf16: the same under bfloat16 autocast (AMX on recent Intel CPUs, tensor cores on GPUs).

Audio is timed through ``embed_audio_frames`` (frontend included: STFT, mel, dB, network),
images through ``embed_images`` on preprocessed frames; image preprocessing of 720p frames is
timed separately. "items per CPU-s" divides by the process CPU time (all threads) instead of
the wall time: on a shared machine it shows what this process got done per core-second (x the
number of cores ~ the wall rate on an idle machine, if the threads scale). GFLOP/s use the
analytic convolution count of the architecture (2 x multiply-adds, about 20 GFLOP per window
or frame; frontend, BN, pooling not counted). Modes
are interleaved over repeats and the best repeat is kept, so a busy machine hurts every mode
alike. Ratios compare with fp32 eager timed in the same run. The official openl3 0.4.2 (TensorFlow
2.15) cannot be installed here; the 0.22 s per window recorded with its reference outputs (2-core
CPU) is shown as a constant for orientation, not timed.

Run: ``.venv/bin/python -m benchmarks openl3`` (defaults), or with options
``.venv/bin/python -m benchmarks.bench_openl3 --quick`` (fewer windows and repeats).
Prints a markdown table and writes bench-output/openl3.json.
"""

import argparse
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

from benchmarks.records import write_record
from featurestore import openl3
from featurestore.openl3 import architecture as arch
from featurestore.provenance import package_versions, utc_now

REFERENCE = pathlib.Path(
    os.environ.get(
        "AVSCENE_OPENL3_REFERENCE",
        pathlib.Path(__file__).resolve().parents[2] / "shared" / "openl3-reference",
    )
)
OPENL3_TF_SECONDS_PER_WINDOW = 0.22
MODES = (  # label, load options
    ("fp32 eager", dict(fold_bn=False, channels_last=False)),
    ("fp32 folded+channels-last", dict(fold_bn=True, channels_last=True)),
    ("bf16 folded+channels-last", dict(fold_bn=True, channels_last=True, dtype="bfloat16")),
)


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks openl3",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--windows", type=int, default=32, help="audio windows per repeat")
    parser.add_argument("--frames", type=int, default=16, help="image frames per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--weights",
        default=None,
        help="directory with openl3_{audio,image}_mel256_env.h5 (default: the "
        "shared reference files, else random weights)",
    )
    parser.add_argument("--quick", action="store_true", help="8 windows, 4 frames, 2 repeats")
    parser.add_argument("--out", default="bench-output/openl3.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.windows, args.frames, args.repeats = 8, 4, 2
    return args


def weight_files(folder):
    if folder is not None:
        return {kind: openl3.find_weights(kind, weights=folder) for kind in arch.KINDS}
    if REFERENCE.is_dir():
        return {
            kind: REFERENCE / openl3.official_name(kind, "mel256", "env") for kind in arch.KINDS
        }
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-openl3-"))
    return {
        kind: openl3.random_weights_file(tmp / f"{kind}.h5", kind=kind, seed=0)
        for kind in arch.KINDS
    }


def test_inputs(n_windows, n_frames):
    """Windows of a 10 s synthetic scene (tones, chirp, noise) and 224 x 224 frames."""
    rng = np.random.default_rng(0)
    t = np.arange(int(48000 * (1 + n_windows * 0.1))) / 48000
    audio = (
        0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.1 * rng.standard_normal(t.size)
    ).astype(np.float32)
    windows, _ = openl3.frame_audio(audio, 48000)
    big = rng.integers(0, 256, (n_frames, 720, 1280, 3), dtype=np.uint8)
    return np.ascontiguousarray(windows[:n_windows]), big


def seconds(function):
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def cosine_min(a, b):
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def run_kind(kind, path, inputs, args):
    load = openl3.load_audio_model if kind == "audio" else openl3.load_image_model
    embed = openl3.embed_audio_frames if kind == "audio" else openl3.embed_images
    models = {label: load(path, **options) for label, options in MODES}
    for model in models.values():  # warm-up (allocations, oneDNN kernels)
        embed(inputs[:2], model=model, batch_size=2)
    best = dict.fromkeys(models, 0.0)
    best_cpu = dict.fromkeys(models, 0.0)
    for _ in range(args.repeats):  # interleaved: noise hits every mode
        for label, model in models.items():
            wall, cpu = seconds(
                lambda model=model: embed(inputs, model=model, batch_size=args.batch_size)
            )
            best[label] = max(best[label], len(inputs) / wall)
            best_cpu[label] = max(best_cpu[label], len(inputs) / cpu)
    full = {
        label: embed(inputs, model=m, batch_size=args.batch_size) for label, m in models.items()
    }
    flops = arch.conv_flops(kind, "mel256")
    rows = []
    baseline = best[MODES[0][0]]
    for label, _ in MODES:
        diff = np.abs(full[label] - full[MODES[0][0]])
        rows.append(
            {
                "kind": kind,
                "mode": label,
                "items_per_s": best[label],
                "items_per_cpu_s": best_cpu[label],
                "gflop_per_s": best[label] * flops / 1e9,
                "vs_fp32_eager": best[label] / baseline,
                "vs_openl3_tf": (
                    best[label] * OPENL3_TF_SECONDS_PER_WINDOW if kind == "audio" else None
                ),
                "max_abs_diff_vs_eager": float(diff.max()),
                "cosine_min_vs_eager": cosine_min(full[label], full[MODES[0][0]]),
                "max_abs_embedding": float(np.abs(full[MODES[0][0]]).max()),
            }
        )
    return rows, flops


def machine():
    import torch

    flags = ""
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in flags.splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
    }


def table(rows):
    lines = [
        "| input | mode | items/s | GFLOP/s | x fp32 eager | x openl3 TF (0.22 s/window) "
        "| items per CPU-s | max abs diff vs eager | min cosine vs eager |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        unit = "audio windows" if row["kind"] == "audio" else "image frames"
        tf = f"{row['vs_openl3_tf']:.2f}" if row["vs_openl3_tf"] is not None else "–"
        lines.append(
            f"| {unit} | {row['mode']} | {row['items_per_s']:.2f} | "
            f"{row['gflop_per_s']:.0f} | {row['vs_fp32_eager']:.2f} | {tf} | "
            f"{row['items_per_cpu_s']:.2f} | "
            f"{row['max_abs_diff_vs_eager']:.2g} | {row['cosine_min_vs_eager']:.6f} |"
        )
    return "\n".join(lines)


def main(argv):
    args = parse(argv)
    paths = weight_files(args.weights)
    windows, frames = test_inputs(args.windows, args.frames)
    start = time.perf_counter()
    preprocessed = openl3.preprocess_images(frames)
    preprocess_rate = len(frames) / (time.perf_counter() - start)
    rows = []
    flops = {}
    for kind, inputs in (("audio", windows), ("image", preprocessed)):
        kind_rows, flops[kind] = run_kind(kind, paths[kind], inputs, args)
        rows += kind_rows
    print(
        f"OpenL3 throughput, {args.windows} windows / {args.frames} frames per repeat, "
        f"batch {args.batch_size}, best of {args.repeats} (analytic: "
        f"{flops['audio'] / 1e9:.1f} GFLOP per audio window, "
        f"{flops['image'] / 1e9:.1f} per image frame)\n"
    )
    print(table(rows))
    print(f"\nimage preprocessing (720p uint8 -> 224 crop, NumPy): {preprocess_rate:.1f} frames/s")
    record = {
        "benchmark": "openl3",
        "when": utc_now(),
        "command": "python -m benchmarks openl3 " + " ".join(argv),
        "machine": machine(),
        "versions": package_versions(),
        "weights": {k: str(v) for k, v in paths.items()},
        "flops_per_item": flops,
        "settings": vars(args),
        "rows": rows,
        "image_preprocess_frames_per_s": preprocess_rate,
    }
    write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
