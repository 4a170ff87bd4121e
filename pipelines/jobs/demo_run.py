"""The demo job behind ``avscene demo``: the whole product on a synthetic corpus.

:func:`run_demo` runs the steps of :mod:`pipelines.commands.demo` (synth, extract, train and
evaluate every system of :func:`systems`, predict with the best, score, report, pack) in one
folder, each through the ``avscene`` command line that the command gives it
(:data:`CommandRunner`), and returns the summary it writes to ``demo.json``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import pathlib
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

from featurestore import outputs
from featurestore.datasets import SCENES
from featurestore.errors import UsageError
from pipelines.jobs import runs, tables
from pipelines.jobs.specs import PathLike

LOG = logging.getLogger("avscene.demo")

MARKER = "demo.json"
#: The demo's store packed into one file (step 6).
ARCHIVE = "store.zarr.zip"
AUDIO, VIDEO, LOGMEL = "openl3_audio", "openl3_video", "logmel"
#: Extraction settings of the demo (see :mod:`pipelines.commands.demo`).
EXTRACT_OPTIONS = ["--hop", "1.0", "--no-center", "--fps", "1", "--progress", "log"]

#: Runs ``avscene ARGV`` (``run_command(argv, log=None)``: arguments as strings or paths; the
#: command's output goes to the file ``log`` when given) and returns its exit status.
CommandRunner = Callable[..., int]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoSpec:
    """The options of ``avscene demo``, typed.

    Attributes
    ----------
    out : path
        The folder of the corpus, store, runs, output file and report.
    clips_per_class : int
        Development clips per class (one per location).
    seconds : float
        Length of development clips.
    eval_clips : int
        One-second evaluation clips.
    classes : tuple of str
        Scene classes.
    weights : path, optional
        Official OpenL3 weights (file or folder); None: found automatically, else random.
    preset : str
        Classifier preset of every system.
    workers : int
        Systems trained at a time, each in its own process with one thread.
    seed : int
        Seed of the corpus and the models.
    overwrite : bool
        Delete everything in ``out`` first, even files that are not a demo's.
    """

    out: PathLike = "demo-output"
    clips_per_class: int = 8
    seconds: float = 3.0
    eval_clips: int = 20
    classes: tuple[str, ...] = tuple(SCENES)
    weights: PathLike | None = None
    preset: str = "small"
    workers: int = 2
    seed: int = 0
    overwrite: bool = False


def run_demo(
    spec: DemoSpec, *, run_command: CommandRunner, notice: Callable[[str], None]
) -> dict[str, Any]:
    """Run the demo's steps in ``spec.out``; return the summary (also written to ``demo.json``).

    Parameters
    ----------
    spec : DemoSpec
    run_command : callable
        Runs one ``avscene`` command line (:data:`CommandRunner`); the systems are trained by
        worker processes, so it must be picklable (a module-level function).
    notice : callable
        Shows the user one message (the banner about random weights).

    Returns
    -------
    dict
        ``out``, ``seconds``, ``steps`` (each step's exit ``status`` and ``seconds``; ``train``:
        the number of ``systems`` trained), ``archive`` and ``archive_bytes`` (None when packing
        failed), ``best`` and ``best_system``, ``report``, ``store``, ``output``,
        ``evaluation_set`` (the score on the evaluation clips, None when scoring failed) and
        ``systems`` (one :func:`pipelines.jobs.tables.system_row` per trained system).

    Raises
    ------
    UsageError
        ``out`` holds something that is not a demo's (without ``overwrite``), the corpus could
        not be made, or no system could be trained.
    """
    started = time.perf_counter()
    workdir = pathlib.Path(spec.out)
    classes = list(spec.classes)
    prepare_workdir(workdir, overwrite=spec.overwrite)
    outputs.write_json(workdir / MARKER, {"status": "running"}, within=workdir)
    corpus, store, runs_dir = workdir / "corpus", workdir / "store.zarr", workdir / "runs"
    steps = {}

    def step(name: str, argv: Sequence[object], **kwargs: Any) -> int:
        began = time.perf_counter()
        status = run_command(argv, **kwargs)
        steps[name] = {"status": status, "seconds": round(time.perf_counter() - began, 1)}
        return status

    step(
        "synth",
        [
            "synth",
            "--out",
            corpus,
            "--clips-per-class",
            spec.clips_per_class,
            "--locations-per-class",
            spec.clips_per_class,  # one clip per location
            "--seconds",
            spec.seconds,
            "--size",
            "400x224",
            "--fps",
            10,
            "--eval-clips",
            spec.eval_clips,
            "--seed",
            spec.seed,
            "--classes",
            ",".join(classes),
        ],
        log=workdir / "logs" / "synth.txt",
    )
    if steps["synth"]["status"] != 0:
        raise UsageError(f"synth failed; see {workdir / 'logs' / 'synth.txt'}")
    extract = [*weights_option(spec, workdir, notice=notice), *EXTRACT_OPTIONS, *bf16_option()]
    for part in ("development", "evaluation"):
        step(
            f"extract-{part}",
            ["extract", corpus / part, store, *extract],
            log=workdir / "logs" / f"extract-{part}.txt",
        )
    began = time.perf_counter()
    trained = train_all(systems(classes), store, runs_dir, spec, run_command)
    steps["train"] = {"systems": len(trained), "seconds": round(time.perf_counter() - began, 1)}
    if not trained:
        raise UsageError(f"no system could be trained; see {workdir / 'logs'}")
    rows = [
        tables.system_row(runs_dir / name, runs.load_record(runs_dir / name), "evaluate")
        for name in trained
    ]
    best = tables.best_system(rows)
    assert best is not None  # rows is not empty: some system was trained
    output = workdir / "output.csv"
    step(
        "predict",
        ["predict", best["run"], store, "--fold", "eval", "--out", output],
        log=workdir / "logs" / "predict.txt",
    )
    step(
        "score",
        ["score", output, corpus / "evaluation_truth.csv", "--json"],
        log=workdir / "logs" / "score.json",
    )
    step(
        "report",
        [
            "report",
            *[runs_dir / name for name in trained],
            "--out",
            workdir / "report.md",
            "--title",
            "avscene demo",
        ],
        log=workdir / "logs" / "report.txt",
    )
    step(
        "pack",
        ["pack", store, "--out", workdir / ARCHIVE, "--overwrite"],
        log=workdir / "logs" / "pack.txt",
    )
    return finish(workdir, rows, best, steps, time.perf_counter() - started)


def succeeded(summary: dict[str, Any], classes: Sequence[str]) -> bool:
    """Whether every step of a demo's summary worked and every system was trained."""
    failed = [name for name, s in summary["steps"].items() if s.get("status", 0) != 0]
    return not failed and summary["steps"]["train"]["systems"] == len(systems(classes))


def systems(classes: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``[(run name, avscene train options)]``: per-modality models, then the fusions."""
    both = f"{AUDIO},{VIDEO}"
    chosen = [
        (f"{model}-{name}", ["--features", feature, "--model", model])
        for model in ("lr", "mlp", "lgbm")
        for name, feature in (("audio", AUDIO), ("video", VIDEO))
    ]
    chosen.append(("lr-logmel", ["--features", LOGMEL, "--model", "lr", "--pooling", "meanstd"]))
    chosen += [
        (f"{fusion}-lr", ["--features", both, "--model", "lr", "--fusion", fusion])
        for fusion in ("early", "late", "stack")
    ]
    chosen.append(
        ("proposed", ["--features", both, "--model", "baseline", "--fusion", "proposed"])
    )
    return chosen


def prepare_workdir(workdir: pathlib.Path, *, overwrite: bool) -> None:
    """Empty a previous demo's folder; refuse a folder with other content unless ``overwrite``."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists() and not overwrite:
            raise UsageError(
                f"{workdir} exists and is not a demo folder (--overwrite deletes "
                f"its contents; or choose another --out)"
            )
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)


def weights_option(
    spec: DemoSpec, workdir: pathlib.Path, *, notice: Callable[[str], None]
) -> list[PathLike]:
    """``--weights`` for extraction: the given or found official files, else random ones
    (``notice`` shows the banner that says so)."""
    from featurestore import openl3
    from featurestore.errors import WeightsNotFoundError

    if spec.weights:
        return ["--weights", spec.weights]
    try:
        for kind in ("audio", "image"):
            openl3.find_weights(kind)
        return []  # extraction finds them the same way
    except WeightsNotFoundError as error:
        folder = workdir / "weights"
        folder.mkdir()
        openl3.random_weights_folder(spec.seed, folder=folder)
        banner = "!" * 78
        notice(
            f"{banner}\n! No official OpenL3 weights: {error}\n! The demo uses RANDOM weights "
            f"({folder}): its numbers check the pipeline only.\n{banner}"
        )
        return ["--weights", folder]


def train_and_evaluate(
    name: str,
    options: Sequence[str],
    store: pathlib.Path,
    runs_dir: pathlib.Path,
    preset: str,
    seed: int,
    run_command: CommandRunner,
) -> tuple[str, int, float]:
    """One system (runs in a worker process): ``(name, status, seconds)``."""
    started = time.perf_counter()
    run_dir, log = runs_dir / name, runs_dir.parent / "logs" / f"train-{name}.txt"
    status = run_command(
        [
            "-q",
            "train",
            store,
            *options,
            "--preset",
            preset,
            "--seed",
            seed,
            "--threads",
            1,
            "--out",
            run_dir,
        ],
        log=log,
    )
    if status == 0:
        status = run_command(
            ["-q", "evaluate", run_dir, store, "--threads", 1],
            log=log.with_name(f"evaluate-{name}.txt"),
        )
    return name, status, time.perf_counter() - started


def train_all(
    chosen: Sequence[tuple[str, Sequence[str]]],
    store: pathlib.Path,
    runs_dir: pathlib.Path,
    spec: DemoSpec,
    run_command: CommandRunner,
) -> list[str]:
    """Train and evaluate every system, ``spec.workers`` at a time; return the names that
    worked."""
    from featurestore.extraction import Progress

    progress = Progress(len(chosen), label="train", unit="systems")
    done = []
    context = multiprocessing.get_context("spawn")  # no fork after torch has started threads
    with concurrent.futures.ProcessPoolExecutor(max(1, spec.workers), mp_context=context) as pool:
        futures = [
            pool.submit(
                train_and_evaluate,
                name,
                options,
                store,
                runs_dir,
                spec.preset,
                spec.seed,
                run_command,
            )
            for name, options in chosen
        ]
        for future in concurrent.futures.as_completed(futures):
            name, status, seconds = future.result()
            progress.advance(failed=status != 0)
            if status == 0:
                done.append(name)
            else:
                LOG.warning(
                    "system %s failed (exit %d); see %s",
                    name,
                    status,
                    runs_dir.parent / "logs" / f"train-{name}.txt",
                )
    progress.finish()
    return [name for name, _ in chosen if name in done]


def bf16_option() -> list[str]:
    """``["--bf16"]`` where bf16 has hardware support (AMX, AVX-512 BF16, CUDA), else ``[]``."""
    from featurestore import openl3

    return ["--bf16"] if openl3.bf16_is_fast("auto") else []


def finish(
    workdir: pathlib.Path,
    rows: list[dict[str, Any]],
    best: dict[str, Any],
    steps: dict[str, dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """Append the evaluation-set score to the report; write and return the summary."""
    score_file = workdir / "logs" / "score.json"
    scored = json.loads(score_file.read_text()) if steps["score"]["status"] == 0 else None
    if scored:
        seg = scored["segment"]
        report = workdir / "report.md"
        written = report.read_text(encoding="utf-8") if report.is_file() else ""
        outputs.write_text(
            report,
            written
            + (
                f"\n## Evaluation clips (hidden labels of the synthetic corpus)\n\n"
                f"`{best['system']}` predicted `{workdir / 'output.csv'}` "
                f"({scored['n_clips']} one-second clips): log loss {seg['log_loss']:.3f}, "
                f"accuracy {100 * seg['accuracy']:.1f}% (`avscene score`).\n"
            ),
            within=workdir,
        )
    archive = workdir / ARCHIVE
    packed = steps.get("pack", {}).get("status") == 0 and archive.is_file()
    summary = {
        "out": str(workdir),
        "seconds": round(seconds, 1),
        "steps": steps,
        "archive": str(archive) if packed else None,
        "archive_bytes": archive.stat().st_size if packed else None,
        "best": best["run"],
        "best_system": best["system"],
        "report": str(workdir / "report.md"),
        "store": str(workdir / "store.zarr"),
        "output": str(workdir / "output.csv"),
        "evaluation_set": scored
        and {
            "log_loss": scored["segment"]["log_loss"],
            "accuracy": scored["segment"]["accuracy"],
            "clip_accuracy": scored["clip"]["accuracy"],
        },
        "systems": rows,
    }
    outputs.write_json(workdir / MARKER, summary, within=workdir)
    return summary
