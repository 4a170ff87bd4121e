"""The report job behind ``avscene report``: evaluated systems side by side, in Markdown.

:func:`write_report` reads what training and evaluation wrote into each run directory
(``run.json``, ``evaluation-<fold>.json`` and its plots), never recomputes a number, writes
the Markdown file and returns its systems and the best one (lowest *validation* log loss,
:func:`pipelines.jobs.tables.best_system`). The sections: :mod:`pipelines.commands.report`.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

from featurestore import outputs
from featurestore.errors import UsageError
from pipelines.jobs import recipe, runs, tables
from pipelines.jobs.specs import PathLike, RunRecord


def write_report(
    run_dirs: Sequence[PathLike],
    *,
    out: PathLike,
    fold: str = "evaluate",
    title: str = "avscene report",
) -> dict[str, Any]:
    """Write the Markdown report of the evaluated ``run_dirs`` to ``out``.

    Parameters
    ----------
    run_dirs : sequence of paths
        Run directories, each evaluated on ``fold``.
    out : path
        The Markdown file (its plots are linked relative to it).
    fold : str
        The evaluated fold to report.
    title : str
        The first heading.

    Returns
    -------
    dict
        ``report`` (``out``), ``best`` (the best run directory) and ``systems`` (one
        :func:`pipelines.jobs.tables.system_row` per run, in the given order).
    """
    text, rows, best = build_report(run_dirs, fold=fold, out_path=out, title=title)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    outputs.write_text(out, text)
    return {"report": str(out), "best": best["run"], "systems": rows}


def load_system(run_dir: PathLike, fold: str) -> tuple[dict[str, Any], RunRecord, dict[str, Any]]:
    """``(compare row, record, evaluation report)`` of one run evaluated on ``fold``."""
    record = runs.load_record(run_dir)
    path = pathlib.Path(run_dir) / f"evaluation-{fold}.json"
    if not path.is_file():
        raise UsageError(
            f"{run_dir}: not evaluated on fold {fold!r} "
            f"(run: avscene evaluate {run_dir} STORE --fold {fold})"
        )
    return tables.system_row(run_dir, record, fold), record, json.loads(path.read_text())


def plot_lines(run_dir: PathLike, evaluation: dict[str, Any], out_dir: pathlib.Path) -> list[str]:
    """Markdown images of the run's plots, with paths relative to the report."""
    titles = {
        "confusion_segment": "Confusion matrix, 1 s segments",
        "confusion_clip": "Confusion matrix, clips",
        "classwise": "Class-wise accuracy",
    }
    lines = []
    for key, name in evaluation.get("plots", {}).items():
        path = os.path.relpath(pathlib.Path(run_dir) / name, out_dir)
        lines += [f"![{titles.get(key, key)}]({pathlib.PurePath(path).as_posix()})", ""]
    return lines


def provenance_lines(record: RunRecord) -> list[str]:
    """The store and every feature's extractor parameters, as the run recorded them."""
    store = record["store"]
    lines = [f"- store: `{store['path']}` (trained on fold `{store['train_fold']}`)"]
    for name, feature in store["features"].items():
        params = feature["params"]
        model = params.get("model") or {}
        random_seed = model.get("random_weights")
        weights = (
            f"**RANDOM weights (seed {random_seed}): a pipeline check, not OpenL3 results**"
            if random_seed is not None
            else f"weights sha256 `{model.get('weights_sha256')}`"
            if model
            else "no network"
        )
        lines.append(
            f"- `{name}` (fingerprint `{feature['fingerprint'][:12]}`): {weights}; "
            f"parameters `{json.dumps(params, sort_keys=True)}`"
        )
    versions = ", ".join(f"{k} {v}" for k, v in sorted(record.get("versions", {}).items()))
    lines.append(f"- versions: {versions}")
    return lines


#: How each test protocol value reads in the report.
PROTOCOL_TEXT = {
    "segments": "rows are 1 s segments (frames pooled per second)",
    "frames": "rows are frames",
    "pooled": "segment = the second's pooled frames",
    "frame-pick": "segment k = the k-th picked frame (the baseline's test_DCASE.py)",
    "sum-proba": "clip = its segment probabilities summed",
    "sum-log-softmax": "clip = arg-max of the log-softmax summed over all its frames, "
    "probabilities averaged over them (the baseline's test.py)",
}


def protocol_lines(
    loaded: Sequence[tuple[PathLike, dict[str, Any], RunRecord, dict[str, Any]]],
) -> list[str]:
    """One line per run: its recorded test protocol and normalisation."""
    lines = []
    for run_dir, _, record, _ in loaded:
        protocol = recipe.protocol_of(record)
        text = "; ".join(
            PROTOCOL_TEXT.get(protocol[key], protocol[key]) for key in ("rows", "segment", "clip")
        )
        normalisation = protocol.get("normalisation")
        if isinstance(normalisation, dict):
            normalisation = ", ".join(
                f"{name} from {value['source']}" for name, value in normalisation.items()
            )
        lines.append(
            f"- `{run_dir}`: {text}"
            + (f"; normalisation: {normalisation}" if normalisation else "")
        )
    return lines


def checkpoint_lines(record: RunRecord) -> list[str]:
    """The imported checkpoints of a run (``--from-checkpoint``), with their sha256."""
    return [
        f"- checkpoint `{c['part']}`: `{c['path']}` (sha256 `{c['sha256']}`)"
        for c in record.get("checkpoints", [])
    ]


def random_weights_used(records: Iterable[RunRecord]) -> bool:
    """True when any feature of any run was made with random OpenL3 weights."""
    return any(
        ((f["params"].get("model") or {}).get("random_weights") is not None)
        for record in records
        for f in record["store"]["features"].values()
    )


def build_report(
    run_dirs: Sequence[PathLike], *, fold: str, out_path: PathLike, title: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Return ``(markdown text, rows, best row)`` for the evaluated ``run_dirs``."""
    loaded = [(run_dir, *load_system(run_dir, fold)) for run_dir in run_dirs]
    rows = [row for _, row, _, _ in loaded]
    best = tables.best_system(rows)
    if best is None:
        raise ValueError("no run directories to report")
    best_dir, _, best_record, best_eval = loaded[rows.index(best)]
    out_dir = pathlib.Path(out_path).resolve().parent
    lines = [f"# {title}", ""]
    if random_weights_used([record for _, _, record, _ in loaded]):
        lines += [
            "> **Features made with RANDOM OpenL3 weights.** These numbers check the "
            "pipeline; they say nothing about OpenL3. Install the official weights "
            "(docs: Run it on the real data, in the README) and extract again.",
            "",
        ]
    lines += [
        f"## Systems on fold `{fold}` ({best['n_clips']} clips, {best['n_segments']} "
        "one-second segments)",
        "",
        "DCASE 2021 Task 1B metrics: log loss and accuracy averaged over classes; the "
        "segments and clips of each system as its test protocol says (below). Brackets: "
        "95% bootstrap intervals over clips. `*`: lowest validation log loss (the system "
        "one would pick).",
        "",
        *tables.systems_table(rows, fold=fold),
        "",
        "### Test protocols",
        "",
        *protocol_lines(loaded),
        "",
        f"## Best system: {best['system']}",
        "",
        *tables.per_class_table(best_eval),
        "",
        "### Per city",
        "",
        *tables.per_city_table(best_eval),
        "",
        *plot_lines(best_dir, best_eval, out_dir),
        "## Provenance",
        "",
        *provenance_lines(best_record),
        *checkpoint_lines(best_record),
        "",
    ]
    return "\n".join(lines), rows, best
