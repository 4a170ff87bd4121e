"""Items per second of every network extractor, fp32 and bf16, against the same network eager.

For each extractor (RANDOM weights in its official layout; the speed does not depend on the
values), on the inputs its ``prepare`` makes from synthetic media (640 x 360 frames, 1 s audio
windows):

- eager fp32 (the baseline, timed in the same run): the reference network as its library defines
  it, BatchNorm layers kept, NCHW (torchvision's model, open_clip's image tower, CNN14 as
  re-stated, OpenL3 with ``fold_bn=False, channels_last=False``);
- avscene fp32: the extractor's ``embed`` (BatchNorm folded where there is BatchNorm;
  channels-last for the image CNNs);
- avscene bf16: the extractor built with ``bf16=True`` (bfloat16 autocast; CLIP: bfloat16
  weights).

The modes are interleaved over repeats and the best repeat is kept. FLOPs per item are counted
by ``torch.utils.flop_counter.FlopCounterMode`` on one item through the eager network (2 per
multiply-add; convolutions, matrix products; frontends included where they are torch ops).
The preprocessing rate (``prepare``, in this process) is reported too.

Run: ``python -m benchmarks extractors`` (every network extractor), or
``python -m benchmarks.bench_extractors --extractors resnet50,panns_cnn14 --items 8``.
Prints a Markdown table and writes bench-output/extractors.json.
"""

import argparse
import sys
import time

import numpy as np

from benchmarks.bench_openl3 import cosine_min, machine
from benchmarks.records import write_record
from featurestore.provenance import package_versions, utc_now

DEFAULT = (
    "openl3_audio,openl3_video,resnet50,efficientnet_b0,efficientnet_b1,efficientnet_b2,"
    "efficientnet_b3,efficientnet_b4,efficientnet_b5,efficientnet_b6,efficientnet_b7,"
    "efficientnet_v2_s,efficientnet_v2_m,clip_vit_b32,clip_vit_l14,panns_cnn14"
)


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks extractors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--extractors", default=DEFAULT, help="comma-separated feature names")
    parser.add_argument("--items", type=int, default=4, help="frames or windows per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", default="bench-output/extractors.json")
    return parser.parse_args(argv)


def media(extractor, n_items):
    """Synthetic media for ``extractor``: frames (640 x 360) or audio of n_items 1 s windows."""
    from featurestore.extractors import AudioSignal, VideoFrames

    rng = np.random.default_rng(0)
    if extractor.modality == "video":
        frames = rng.integers(0, 256, (n_items, 360, 640, 3), dtype=np.uint8)
        return VideoFrames(zip((np.arange(n_items) + 0.5) / 10, frames))
    seconds = n_items * 0.1 + 1.0
    t = np.arange(int(48000 * seconds)) / 48000
    audio = (
        0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.1 * rng.standard_normal(t.size)
    ).astype(np.float32)
    return AudioSignal(audio)


def eager(name, extractor, batch):
    """``(embed, one-item forward)`` of the plain eager fp32 network of ``extractor``."""
    import torch

    from featurestore import openl3
    from featurestore.backbones import clip, cnn14, images
    from featurestore.backbones.image_transforms import normalise

    path = extractor.info["weights_path"]
    if name.startswith("openl3"):
        kind = "audio" if name == "openl3_audio" else "image"
        load = openl3.load_audio_model if kind == "audio" else openl3.load_image_model
        model = load(path, device="cpu", fold_bn=False, channels_last=False)
        embed = openl3.embed_audio_frames if kind == "audio" else openl3.embed_images

        def forward(x):
            return model.embed(torch.from_numpy(np.ascontiguousarray(x)))

        return (lambda items: embed(items, model=model, batch_size=batch)), forward
    if name == "panns_cnn14":
        state, _ = cnn14.load_state(path)
        frontend, network = cnn14.build()
        network.load_state_dict(state)

        def forward(x):
            with torch.inference_mode():
                return network(frontend(torch.from_numpy(np.ascontiguousarray(x))))
    else:
        if name in clip.MODELS:
            net = clip.build_visual(name)
            net.load_state_dict(clip.load_state(name, path)[0])
            mean, std = clip.OPENAI_MEAN, clip.OPENAI_STD
        else:
            state, _, _ = images.load_state(name, path)
            net = images.build(name, images.classes_of(name, state))
            net.load_state_dict(state)
            setattr(net, images.head_name(name), torch.nn.Identity())
            mean, std = (
                extractor.params["preprocessing"]["mean"],
                extractor.params["preprocessing"]["std"],
            )
        net.eval()

        def forward(x):
            with torch.inference_mode():
                return net(normalise(torch.from_numpy(np.ascontiguousarray(x)), mean, std))

    def run(items):
        return np.concatenate(
            [forward(items[i : i + batch]).float().numpy() for i in range(0, len(items), batch)]
        )

    return run, forward


def flops_per_item(forward, items):
    """FLOPs of one item; MultiheadAttention's fused inference path (which the counter does not
    see) is switched off while counting."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with counter:
            forward(items[:1])
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops()


def run_one(name, args):
    from featurestore.extractors import builtin

    fp32 = builtin(name, random_weights=0)
    bf16 = builtin(name, random_weights=0, bf16=True)
    started = time.perf_counter()
    prepared = fp32.prepare(media(fp32, args.items), None)
    prepare_rate = len(prepared.items) / (time.perf_counter() - started)
    items = np.asarray(prepared.items[: args.items])
    reference, forward = eager(name, fp32, args.batch)
    modes = {
        "eager fp32": reference,
        "avscene fp32": fp32.load(device="cpu", batch=args.batch),
        "avscene bf16": bf16.load(device="cpu", batch=args.batch),
    }
    for embed in modes.values():  # warm-up
        embed([items[:1]] if embed is not reference else items[:1])
    best = dict.fromkeys(modes, 0.0)
    out = {}
    for _ in range(args.repeats):
        for label, embed in modes.items():
            start = time.perf_counter()
            out[label] = np.asarray(embed(items) if embed is reference else embed([items]))
            best[label] = max(best[label], len(items) / (time.perf_counter() - start))
    flops = flops_per_item(forward, items)
    return [
        {
            "extractor": name,
            "mode": label,
            "items_per_s": best[label],
            "x_eager": best[label] / best["eager fp32"],
            "gflop_per_item": flops / 1e9,
            "cosine_min_vs_eager": cosine_min(out[label], out["eager fp32"]),
            "max_abs_diff_vs_eager": float(np.abs(out[label] - out["eager fp32"]).max()),
            "prepare_items_per_s": prepare_rate,
        }
        for label in modes
    ]


def table(rows):
    lines = [
        "| extractor | GFLOP per item | mode | items/s | x eager fp32 | min cosine vs eager "
        "| prepare items/s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['extractor']} | {row['gflop_per_item']:.2f} | {row['mode']} | "
            f"{row['items_per_s']:.2f} | {row['x_eager']:.2f} | "
            f"{row['cosine_min_vs_eager']:.6f} | {row['prepare_items_per_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv):
    args = parse(argv)
    rows = []
    for name in args.extractors.split(","):
        rows += run_one(name.strip(), args)
        done = table([r for r in rows if r["extractor"] == name.strip()]).splitlines()[2:]
        print("\n".join(done), file=sys.stderr, flush=True)
    print(
        f"Extractor throughput, {args.items} items per repeat, batch {args.batch}, best of "
        f"{args.repeats}\n"
    )
    print(table(rows))
    record = {
        "benchmark": "extractors",
        "when": utc_now(),
        "command": "python -m benchmarks extractors " + " ".join(argv),
        "machine": machine(),
        "versions": package_versions(),
        "settings": vars(args),
        "rows": rows,
    }
    write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
