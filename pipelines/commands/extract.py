"""``avscene extract``: dataset -> frame-wise embeddings (OpenL3, log-mel, backbones, HEAR).

The job itself is :class:`featurestore.extraction.ExtractJob` (or, with ``--dask`` /
``--dask-local``, :class:`featurestore.extraction.DaskExtraction`): decoding runs in worker
processes while this process runs the networks on batches formed across clips; every finished
clip is written to its store block at once. Rerunning the same command skips committed clips (also
after ``kill -9``); ``--shard I/N`` processes the store blocks ``b`` with ``b % N == I`` only.

Bad input never stops the job: each clip that cannot be decoded (bad media, a decoder that
crashes its worker process or overruns ``--clip-timeout``) is reported once on one line,
recorded in the store's failure list (``writer.fail``) and skipped; the exit status is then 1.
``--retry-failed`` runs the recorded failures again. A feature whose modality a clip has no file
for in the manifest is recorded as not applicable, which is not a failure. A block that another
live writer holds (a second run of the same command) is skipped: its clips stay pending and are
listed under ``leased`` in the summary, not as failures.
Exit statuses: 0 every clip in scope committed (or not applicable); 1 some clips failed (now or
in an earlier run) or were left pending in blocks another writer held; 2 bad usage (unknown
feature, missing weights, store made with other parameters); 130 interrupted.
"""

import argparse
import logging
import os

from featurestore import limits
from featurestore.errors import UsageError
from featurestore.extraction import CLIP_TIMEOUT, FEATURES
from featurestore.extractors import GROUP, builtin_names, check_name, names
from featurestore.frontends import logmel
from pipelines.commands.options import (
    add_dask_arguments,
    add_json,
    add_workers,
    bounded,
    check_output,
    comma_list,
    list_type,
    number,
    print_json,
    seed,
    shard,
)
from pipelines.jobs.pooled_segments import STORED_POOLINGS, store_segments

LOG = logging.getLogger("avscene.extract")
#: The rate the log-mel options are given at (the audio is resampled to it).
SAMPLE_RATE = 48000
#: ``--device cuda:N`` takes N below this.
MAX_CUDA_INDEX = 1024


def default_workers():
    """Decoding processes: one core stays with the model; 1..8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def add_arguments(parser):
    parser.add_argument(
        "root", help="dataset folder (TAU development/evaluation layout), or a CSV manifest file"
    )
    parser.add_argument("store", help="feature store: path or fsspec URL (created if missing)")
    features = parser.add_argument(
        "--features",
        type=comma_list(check=check_name),
        default=FEATURES,
        metavar="NAME,...",
        help=f"comma-separated features (default {','.join(FEATURES)}); built in, then "
        f"installed ({GROUP} entry points): %(known)s",
    )
    features.known = FeatureNames()
    parser.add_argument(
        "--weights",
        type=weight_list,
        default={},
        metavar="[NAME=]PATH,...",
        help="local weight files: NAME=PATH per feature (e.g. "
        "resnet50=resnet50-11ad3fa6.pth, hear:MODULE=PATH); a bare PATH is "
        "the OpenL3 .h5 file or folder (default: $AVSCENE_OPENL3_WEIGHTS, "
        "then an installed openl3)",
    )
    parser.add_argument(
        "--random-weights",
        type=seed(),
        metavar="SEED",
        help="seeded RANDOM weights for every feature --weights does not name "
        "(tests and demos only)",
    )
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        help="auto (cuda when present), cpu, cuda[:N]",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast for the networks (recorded in the provenance)",
    )
    parser.add_argument(
        "--hop",
        type=bounded(limits.HOP_SECONDS),
        default=0.1,
        help="hop in seconds of the windowed audio embeddings (OpenL3, PANNs)",
    )
    parser.add_argument(
        "--center",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="windowed audio embeddings: centred windows (timestamps = window centres)",
    )
    parser.add_argument(
        "--fps",
        type=bounded(limits.FPS),
        default=10.0,
        help="video frames per second, sampled at (j + 0.5) / fps (every video feature)",
    )
    parser.add_argument(
        "--video-frames",
        choices=("fps", "per-audio-window"),
        default="fps",
        help="fps: frames sampled at (j + 0.5) / fps; per-audio-window: one "
        "decoded frame per OpenL3 audio window, at the window's timestamp "
        "(the DCASE 2021 baseline's frames; --fps unused)",
    )
    parser.add_argument(
        "--image-scaling",
        choices=("openl3", "paper"),
        default="openl3",
        help="OpenL3 image input range: openl3 0.4.2's ([-1, 1] only for exact "
        "224x224 frames, else [0, 1]) or the paper's (always [-1, 1])",
    )
    parser.add_argument(
        "--n-mels",
        type=bounded(limits.N_MELS),
        default=128,
        help="log-mel bands, at most win-length // 2 + 1 (the FFT bins)",
    )
    parser.add_argument(
        "--win-length",
        type=bounded(limits.FFT_SAMPLES),
        default=1920,
        help="log-mel window in samples at 48 kHz (40 ms)",
    )
    shortest, longest = logmel.hop_length_bounds(SAMPLE_RATE)
    parser.add_argument(
        "--hop-length",
        type=number(int, minimum=shortest, maximum=longest),
        default=480,
        help="log-mel hop in samples at 48 kHz (10 ms)",
    )
    parser.add_argument(
        "--min-duration",
        type=bounded(limits.MIN_DURATION),
        default=0.0,
        help="audio shorter than this (seconds) is reported as bad input "
        "(0: any non-empty audio; openl3 pads a short clip to one window)",
    )
    parser.add_argument(
        "--storage-dtype",
        choices=("float32", "float16"),
        default="float32",
        help="dtype on disk (float16 halves the bytes; reads return float32)",
    )
    parser.add_argument(
        "--compression",
        choices=("lz4", "zstd", "none"),
        default="lz4",
        help="chunk codec: lz4 reads faster, zstd makes smaller archives",
    )
    parser.add_argument(
        "--batch",
        type=bounded(limits.BATCH),
        default=32,
        help="audio windows / video frames per network call",
    )
    add_workers(
        parser,
        default=default_workers(),
        what="probing and decoding media",
        zero="decode in this process: no overlap with the networks, no isolation "
        "from a crashing decoder, no --clip-timeout",
    )
    parser.add_argument(
        "--clip-timeout",
        type=bounded(limits.CLIP_TIMEOUT),
        default=CLIP_TIMEOUT,
        metavar="SECONDS",
        help="a worker busy probing or decoding one clip for longer is "
        "killed and replaced, the clip recorded as failed (0: no limit)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="run the clips recorded as failed for these features again "
        "(e.g. after restoring a file)",
    )
    parser.add_argument(
        "--shard",
        type=shard,
        metavar="I/N",
        help="process only store blocks b with b %% N == I (range: "
        f"0 <= I < N <= {limits.SHARDS.high})",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="register the clips and declare the features, extract nothing "
        "(run once before starting --shard processes)",
    )
    parser.add_argument(
        "--limit", type=bounded(limits.LIMIT), help="only the first N clips of the manifest"
    )
    parser.add_argument(
        "--manifest", metavar="CSV", help="CSV manifest with paths relative to ROOT"
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "log"),
        default="auto",
        help="progress display: updating line on a terminal, or log lines",
    )
    parser.add_argument(
        "--segments",
        type=comma_list(choices=STORED_POOLINGS),
        metavar="NAME,...",
        help="at the end, store the pooled 1-s segments of every feature with "
        "no pending clips (as avscene segments --pooling NAME,...)",
    )
    add_json(parser, what="the run summary")
    add_dask_arguments(parser, what="extract")


def device_name(text):
    """``--device``: auto, cpu, cuda or cuda:N (whether the device exists is checked before the
    job starts, :func:`check_arguments`)."""
    kind, colon, index = text.partition(":")
    if (kind in ("auto", "cpu") and not colon) or (
        kind == "cuda" and (not colon or (index.isdigit() and int(index) < MAX_CUDA_INDEX))
    ):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")


class FeatureNames:
    """The ``%(known)s`` of the ``--features`` help: every feature name, read only when the help
    is printed, so that building the parser never reads the installed packages' entry points."""

    def __str__(self):
        try:
            return ", ".join(names())
        except UsageError as error:
            return f"{', '.join(builtin_names())} (installed ones refused: {error})"


@list_type
def weight_list(text):
    """``--weights``: ``NAME=PATH`` items and at most one bare PATH (key None, the OpenL3 one)."""
    found = {}
    for item in comma_list(unique=True)(text):
        name, equals, path = item.partition("=")
        key, path = (name.strip(), path.strip()) if equals else (None, item)
        if key is not None:
            try:
                check_name(key)
            except UsageError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        if key in found or not path:
            raise argparse.ArgumentTypeError(
                f"{item!r}: give each feature one PATH (and at most one bare OpenL3 PATH)"
            )
        found[key] = path
    return found


def build_plan(args):
    """The :class:`~featurestore.extraction.prepare.Plan` of the command-line options.

    Raises
    ------
    UsageError
        Options that do not go together (e.g. more mel bands than FFT bins), in one line.
    """
    from featurestore.extraction import Plan

    try:
        params = logmel.logmel_params(
            sample_rate=SAMPLE_RATE,
            n_mels=args.n_mels,
            win_length=args.win_length,
            hop_length=args.hop_length,
        )
        return Plan(
            features=tuple(args.features),
            hop=args.hop,
            center=args.center,
            fps=args.fps,
            logmel=params,
            image_scaling=args.image_scaling,
            min_duration=args.min_duration,
            video_frames=args.video_frames,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_arguments(args):
    """The options checked together before any work (the CLI turns a UsageError into its
    usage error, exit status 2): the plan's settings, the options Dask does not take, and a
    CUDA device this machine has (unless the job runs on the workers of a ``--dask``
    scheduler)."""
    build_plan(args)
    if (args.dask or args.dask_local) and (args.shard or args.prepare_only):
        raise UsageError(
            "--shard and --prepare-only do not combine with --dask or --dask-local "
            "(the client prepares, the cluster shards by block)"
        )
    if args.device.startswith("cuda") and not args.dask:
        check_cuda(args.device)


def check_cuda(device):
    """Refuse ``cuda`` or ``cuda:N`` when torch sees no such device (UsageError)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise UsageError(f"--device {device}: torch sees {count} CUDA devices on this machine")


def make_job(args, **extra):
    """The job of the command-line options: an ExtractJob, or a DaskExtraction with --dask.

    ``extra`` goes to the job's constructor (tests pass a Dask ``task``).
    """
    from featurestore.extraction import DaskExtraction, ExtractJob

    plan = build_plan(args)
    options = dict(
        weights=args.weights,
        random_weights=args.random_weights,
        device=args.device,
        bf16=args.bf16,
        batch=args.batch,
        workers=args.workers,
        shard=args.shard,
        limit=args.limit,
        manifest=args.manifest,
        progress=args.progress,
        prepare_only=args.prepare_only,
        storage_dtype=args.storage_dtype,
        compression=args.compression,
        clip_timeout=args.clip_timeout,
        retry_failed=args.retry_failed,
        **extra,
    )
    if args.dask or args.dask_local:
        return DaskExtraction(
            args.root,
            args.store,
            plan,
            scheduler=args.dask,
            local_workers=args.dask_local,
            **options,
        )
    return ExtractJob(args.root, args.store, plan, **options)


def run(args):
    check_output(args.store, store=True)
    summary = make_job(args).run()
    if args.segments and not args.prepare_only:
        summary["segments"] = store_segments(args.store, args.features, args.segments)
    if args.json:
        print_json(summary)
    return 1 if summary["failed_in_scope"] or summary.get("leased") else 0
