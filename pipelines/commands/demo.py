"""``avscene demo``: the whole product on a synthetic corpus, in one command (``make demo``).

It runs, and prints, the same commands a user runs on the real data:

1. ``avscene synth``: a small corpus in the TAU Urban Audio-Visual Scenes 2021 layout
   (development clips plus one-second evaluation clips with hidden labels);
2. ``avscene extract`` (development, then evaluation) into one store: OpenL3 audio and video
   embeddings and log-mels. Official OpenL3 weights are used when found; otherwise random weights
   are written and every output says that the numbers are only a pipeline check;
3. ``avscene train`` + ``avscene evaluate`` for LR, MLP and LightGBM per modality and for the
   fusions (early, late, stacking, the DCASE 2021 baseline's proposed fusion), two systems at a
   time in separate processes with one thread each (the fastest use of 2 cores);
4. ``avscene predict`` with the system of lowest validation log loss on the evaluation clips,
   then ``avscene score`` of that output file against the hidden labels;
5. ``avscene report``: ``report.md`` with the comparison, per-class tables and plots;
6. ``avscene pack``: the store as one zip archive (``store.zarr.zip``) to share, which every
   command reads in place.

To stay within a few minutes on 2 CPU cores the extraction takes one 1 s OpenL3 window
(``--hop 1 --no-center``) and one video frame (``--fps 1``) per second of media, in bf16 where
the hardware supports it; the real-data commands in the README use the baseline's settings.
"""

import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import pathlib
import shutil
import time

from featurestore.datasets import SCENES
from featurestore.errors import UsageError
from pipelines.jobs import runs
from pipelines.commands import tables
from pipelines.commands.options import (
    add_json,
    add_out,
    add_workers,
    comma_list,
    non_negative,
    number,
    positive,
    print_json,
    seed,
)

LOG = logging.getLogger("avscene.demo")
#: Upper bounds of the corpus options (the demo runs every step in minutes, not hours).
MAX_CLIPS_PER_CLASS, MAX_SECONDS, MAX_EVAL_CLIPS = 1000, 60.0, 10000

MARKER = "demo.json"
#: The demo's store packed into one file (step 6).
ARCHIVE = "store.zarr.zip"
AUDIO, VIDEO, LOGMEL = "openl3_audio", "openl3_video", "logmel"
#: Extraction settings of the demo (see the module docstring).
EXTRACT_OPTIONS = ["--hop", "1.0", "--no-center", "--fps", "1", "--progress", "log"]


def add_arguments(parser):
    add_out(parser, what="the corpus, store, runs, output file and report", required=False,
            default="demo-output", metavar="DIR")
    parser.add_argument("--clips-per-class", type=positive(int, maximum=MAX_CLIPS_PER_CLASS),
                        default=8,
                        help="development clips per class")
    parser.add_argument("--seconds", type=number(float, minimum=1.0, maximum=MAX_SECONDS),
                        default=3.0,
                        help="length of development clips")
    parser.add_argument("--eval-clips", type=non_negative(int, maximum=MAX_EVAL_CLIPS),
                        default=20,
                        help="one-second evaluation clips")
    parser.add_argument("--classes", type=comma_list(choices=SCENES), default=SCENES,
                        metavar="SCENE,...", help="scene classes")
    parser.add_argument("--weights", help="official OpenL3 weights (file or folder); default: "
                                          "found automatically, else RANDOM weights")
    parser.add_argument("--preset", default="small", help="classifier preset (see avscene train)")
    add_workers(parser, default=2, what="training systems, one thread each",
                zero="train one system at a time in this process")
    parser.add_argument("--seed", type=seed(), default=0, help="seed of the corpus and the models")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete everything in --out first, even files that are not a demo's "
                             "(a previous demo's folder is always replaced)")
    add_json(parser, what="the summary")


def systems(classes):
    """``[(run name, avscene train options)]``: per-modality models, then the fusions."""
    both = f"{AUDIO},{VIDEO}"
    chosen = [(f"{model}-{name}", ["--features", feature, "--model", model])
              for model in ("lr", "mlp", "lgbm")
              for name, feature in (("audio", AUDIO), ("video", VIDEO))]
    chosen.append(("lr-logmel", ["--features", LOGMEL, "--model", "lr", "--pooling", "meanstd"]))
    chosen += [(f"{fusion}-lr", ["--features", both, "--model", "lr", "--fusion", fusion])
               for fusion in ("early", "late", "stack")]
    chosen.append(("proposed", ["--features", both, "--model", "baseline",
                                "--fusion", "proposed"]))
    return chosen


def prepare_workdir(workdir, *, overwrite):
    """Empty a previous demo's folder; refuse a folder with other content unless ``overwrite``."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists() and not overwrite:
            raise UsageError(f"{workdir} exists and is not a demo folder (--overwrite deletes "
                             f"its contents; or choose another --out)")
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)


def command(argv, *, log=None):
    """Print ``avscene ARGV`` and run it in this process; its stdout goes to ``log`` if given.

    Returns the exit status (AvsceneErrors become status 2 with their one-line message, as on
    the command line).
    """
    from pipelines.commands import cli

    print("$ avscene " + " ".join(map(str, argv)), flush=True)
    if log is None:
        return cli.main([str(a) for a in argv])
    with open(log, "w") as handle, contextlib.redirect_stdout(handle):
        return cli.main([str(a) for a in argv])


def weights_option(args, workdir):
    """``--weights`` for extraction: the given or found official files, else random ones."""
    from featurestore import openl3
    from featurestore.errors import WeightsNotFoundError

    if args.weights:
        return ["--weights", args.weights]
    try:
        for kind in ("audio", "image"):
            openl3.find_weights(kind)
        return []                                # extraction finds them the same way
    except WeightsNotFoundError as error:
        folder = workdir / "weights"
        folder.mkdir()
        openl3.random_weights_folder(args.seed, folder=folder)
        banner = "!" * 78
        print(f"{banner}\n! No official OpenL3 weights: {error}\n! The demo uses RANDOM weights "
              f"({folder}): its numbers check the pipeline only.\n{banner}", flush=True)
        return ["--weights", folder]


def train_and_evaluate(name, options, store, runs_dir, preset, seed):
    """One system (runs in a worker process): ``(name, status, seconds)``."""
    started = time.perf_counter()
    run_dir, log = runs_dir / name, runs_dir.parent / "logs" / f"train-{name}.txt"
    status = command(["-q", "train", store, *options, "--preset", preset, "--seed", seed,
                      "--threads", 1, "--out", run_dir], log=log)
    if status == 0:
        status = command(["-q", "evaluate", run_dir, store, "--threads", 1],
                         log=log.with_name(f"evaluate-{name}.txt"))
    return name, status, time.perf_counter() - started


def train_all(chosen, store, runs_dir, args):
    """Train and evaluate every system, ``args.workers`` at a time; return the names that
    worked."""
    from featurestore.extraction import Progress

    progress = Progress(len(chosen), label="train", unit="systems")
    done = []
    context = multiprocessing.get_context("spawn")   # no fork after torch has started threads
    with concurrent.futures.ProcessPoolExecutor(max(1, args.workers), mp_context=context) as pool:
        futures = [pool.submit(train_and_evaluate, name, options, store, runs_dir, args.preset,
                               args.seed) for name, options in chosen]
        for future in concurrent.futures.as_completed(futures):
            name, status, seconds = future.result()
            progress.advance(failed=status != 0)
            if status == 0:
                done.append(name)
            else:
                LOG.warning("system %s failed (exit %d); see %s", name, status,
                            runs_dir.parent / "logs" / f"train-{name}.txt")
    progress.finish()
    return [name for name, _ in chosen if name in done]


def check_arguments(args):
    """The options checked before any work: a preset ``avscene train`` knows (UsageError)."""
    from classifiers.presets import get_preset

    try:
        get_preset(args.preset)
    except ValueError as error:
        raise UsageError(f"--preset: {error}") from None


def run(args):
    started = time.perf_counter()
    workdir = pathlib.Path(args.out)
    classes = list(args.classes)
    prepare_workdir(workdir, overwrite=args.overwrite)
    (workdir / MARKER).write_text(json.dumps({"status": "running"}))
    corpus, store, runs_dir = workdir / "corpus", workdir / "store.zarr", workdir / "runs"
    steps = {}

    def step(name, argv, **kwargs):
        began = time.perf_counter()
        status = command(argv, **kwargs)
        steps[name] = {"status": status, "seconds": round(time.perf_counter() - began, 1)}
        return status

    step("synth", ["synth", "--out", corpus, "--clips-per-class", args.clips_per_class,
                   "--locations-per-class", args.clips_per_class,      # one clip per location
                   "--seconds", args.seconds, "--size", "400x224", "--fps", 10,
                   "--eval-clips", args.eval_clips, "--seed", args.seed,
                   "--classes", ",".join(classes)], log=workdir / "logs" / "synth.txt")
    if steps["synth"]["status"] != 0:
        raise UsageError(f"synth failed; see {workdir / 'logs' / 'synth.txt'}")
    extract = [*weights_option(args, workdir), *EXTRACT_OPTIONS, *bf16_option()]
    for part in ("development", "evaluation"):
        step(f"extract-{part}", ["extract", corpus / part, store, *extract],
             log=workdir / "logs" / f"extract-{part}.txt")
    began = time.perf_counter()
    trained = train_all(systems(classes), store, runs_dir, args)
    steps["train"] = {"systems": len(trained), "seconds": round(time.perf_counter() - began, 1)}
    if not trained:
        raise UsageError(f"no system could be trained; see {workdir / 'logs'}")
    rows = [tables.system_row(runs_dir / name, runs.load_record(runs_dir / name), "evaluate")
            for name in trained]
    best = tables.best_system(rows)
    output = workdir / "output.csv"
    step("predict", ["predict", best["run"], store, "--fold", "eval", "--out", output],
         log=workdir / "logs" / "predict.txt")
    step("score", ["score", output, corpus / "evaluation_truth.csv", "--json"],
         log=workdir / "logs" / "score.json")
    step("report", ["report", *[runs_dir / name for name in trained],
                    "--out", workdir / "report.md", "--title", "avscene demo"],
         log=workdir / "logs" / "report.txt")
    step("pack", ["pack", store, "--out", workdir / ARCHIVE, "--overwrite"],
         log=workdir / "logs" / "pack.txt")
    summary = finish(workdir, rows, best, steps, time.perf_counter() - started)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary, rows))
    failed = [name for name, s in steps.items() if s.get("status", 0) != 0]
    return 1 if failed or len(trained) < len(systems(classes)) else 0


def bf16_option():
    """``["--bf16"]`` where bf16 has hardware support (AMX, AVX-512 BF16, CUDA), else ``[]``."""
    from featurestore import openl3

    return ["--bf16"] if openl3.bf16_is_fast("auto") else []


def finish(workdir, rows, best, steps, seconds):
    """Append the evaluation-set score to the report; write and return the summary."""
    score_file = workdir / "logs" / "score.json"
    scored = json.loads(score_file.read_text()) if steps["score"]["status"] == 0 else None
    if scored:
        seg = scored["segment"]
        with open(workdir / "report.md", "a") as handle:
            handle.write(
                f"\n## Evaluation clips (hidden labels of the synthetic corpus)\n\n"
                f"`{best['system']}` predicted `{workdir / 'output.csv'}` "
                f"({scored['n_clips']} one-second clips): log loss {seg['log_loss']:.3f}, "
                f"accuracy {100 * seg['accuracy']:.1f}% (`avscene score`).\n")
    archive = workdir / ARCHIVE
    packed = steps.get("pack", {}).get("status") == 0 and archive.is_file()
    summary = {"out": str(workdir), "seconds": round(seconds, 1), "steps": steps,
               "archive": str(archive) if packed else None,
               "archive_bytes": archive.stat().st_size if packed else None,
               "best": best["run"], "best_system": best["system"],
               "report": str(workdir / "report.md"),
               "store": str(workdir / "store.zarr"), "output": str(workdir / "output.csv"),
               "evaluation_set": scored and {"log_loss": scored["segment"]["log_loss"],
                                             "accuracy": scored["segment"]["accuracy"],
                                             "clip_accuracy": scored["clip"]["accuracy"]},
               "systems": rows}
    (workdir / MARKER).write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary, rows):
    """The lines printed at the end: the systems table, the evaluation-set score, the files."""
    lines = ["", *tables.systems_table(rows, fold="evaluate", style="text"),
             "* lowest validation log loss"]
    scored = summary["evaluation_set"]
    if scored:
        lines.append(f"evaluation clips ({summary['best_system']}): log loss "
                     f"{scored['log_loss']:.3f}, accuracy {100 * scored['accuracy']:.1f}%")
    lines += [f"demo finished in {summary['seconds']:.0f} s",
              f"report: {summary['report']}", f"store:  {summary['store']}"]
    if summary.get("archive"):
        lines.append(f"archive: {summary['archive']} ({summary['archive_bytes'] / 2**20:.1f} "
                     f"MiB; every command reads it in place, avscene unpack restores the store)")
    lines.append(f"output: {summary['output']}")
    return "\n".join(lines)
