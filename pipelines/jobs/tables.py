"""The tables of metrics: printed by evaluate, compare, demo and score, written into report.md.

One renderer (:func:`render`) draws every table, as Markdown or as aligned plain text; one rule
picks the best of several trained systems (:func:`best_system`: the lowest *validation* log
loss, since choosing on the evaluated fold itself would overstate what the choice achieves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.jobs import runs
from pipelines.jobs.specs import PathLike, RunRecord


def number(value: float | None, *, digits: int = 3) -> str:
    """``0.12345`` -> ``"0.123"``; None -> ``"-"``."""
    return "-" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """``0.8123`` -> ``"81.2%"``; None -> ``"-"``."""
    return "-" if value is None else f"{100 * value:.1f}%"


def interval(ci: Sequence[Any] | None, *, as_percent: bool = False) -> str:
    """``[0.61, 0.92]`` -> ``" [0.610, 0.920]"`` (``" [61.0, 92.0]"`` as percent); none -> ``""``."""
    if not ci or ci[0] is None:
        return ""
    if as_percent:
        return f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str | None = None,
    style: str = "markdown",
) -> list[str]:
    """Lines of a table.

    Parameters
    ----------
    header : list of str
    rows : list of lists of str, each as long as ``header``
    align : str, optional
        ``"l"`` or ``"r"`` per column (default: first column left, the others right).
    style : "markdown" or "text"
        A Markdown pipe table, or columns padded with spaces under a header line.
    """
    align = align or "l" + "r" * (len(header) - 1)
    if style == "markdown":
        rule = ["---" if a == "l" else "---:" for a in align]
        return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]
    widths = [max(len(cells[j]) for cells in [header, *rows]) for j in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)
        ).rstrip()

    return [line(header), *(line(cells) for cells in rows)]


def system_row(run_dir: PathLike, record: RunRecord, fold: str) -> dict[str, Any]:
    """One trained system's comparable numbers on ``fold`` (None where not measured)."""
    validation = (record.get("validation") or {}).get("segment") or {}
    evaluation = record.get("evaluations", {}).get(fold) or {}
    seg, clip = evaluation.get("segment", {}), evaluation.get("clip", {})
    seg_ci, clip_ci = seg.get("ci") or {}, clip.get("ci") or {}
    return {
        "run": str(run_dir),
        "system": runs.system_name(record),
        "preset": record["system"]["preset"],
        "fit_s": record["timings"]["fit_s"],
        "val_log_loss": validation.get("log_loss"),
        "val_accuracy": validation.get("accuracy"),
        "n_clips": evaluation.get("n_clips"),
        "n_segments": seg.get("n"),
        "log_loss": seg.get("log_loss"),
        "log_loss_ci": seg_ci.get("log_loss"),
        "accuracy": seg.get("accuracy"),
        "accuracy_ci": seg_ci.get("accuracy"),
        "clip_log_loss": clip.get("log_loss"),
        "clip_log_loss_ci": clip_ci.get("log_loss"),
        "clip_accuracy": clip.get("accuracy"),
        "clip_accuracy_ci": clip_ci.get("accuracy"),
    }


def best_system(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of lowest validation log loss (rows without one never win while others have it)."""
    if not rows:
        return None
    return min(rows, key=lambda r: (r["val_log_loss"] is None, r["val_log_loss"] or 0.0))


def systems_table(
    rows: Sequence[dict[str, Any]], *, fold: str, style: str = "markdown"
) -> list[str]:
    """Systems side by side; the best (by validation log loss) is marked with ``*``."""
    best = best_system(rows)
    header = [
        "run",
        "system",
        "preset",
        "fit s",
        "val log loss",
        f"{fold} log loss [95% CI]",
        "accuracy [95% CI]",
        "clip log loss [95% CI]",
        "clip accuracy [95% CI]",
    ]
    body = [
        [
            r["run"],
            r["system"] + (" *" if r is best else ""),
            r["preset"],
            f"{r['fit_s']:.1f}",
            number(r["val_log_loss"]),
            number(r["log_loss"]) + interval(r["log_loss_ci"]),
            percent(r["accuracy"]) + interval(r["accuracy_ci"], as_percent=True),
            number(r["clip_log_loss"]) + interval(r["clip_log_loss_ci"]),
            percent(r["clip_accuracy"]) + interval(r["clip_accuracy_ci"], as_percent=True),
        ]
        for r in rows
    ]
    return render(header, body, align="lllrrrrrr", style=style)


def per_class_table(evaluation: dict[str, Any], *, style: str = "markdown") -> list[str]:
    """Per-class log loss and accuracy at both levels, then the DCASE (class-wise) averages and
    the overall (row-wise) values."""
    seg, clip = evaluation["segment"], evaluation["clip"]
    header = [
        "class",
        "segments",
        "segment log loss",
        "segment accuracy",
        "clip log loss",
        "clip accuracy",
    ]

    def cells(
        name: str, n: int, s: dict[str, Any], c: dict[str, Any], suffix: str = ""
    ) -> list[str]:
        return [
            name,
            str(n),
            number(s[f"log_loss{suffix}"]),
            percent(s[f"accuracy{suffix}"]),
            number(c[f"log_loss{suffix}"]),
            percent(c[f"accuracy{suffix}"]),
        ]

    body = [
        cells(name, seg["per_class"][name]["n"], seg["per_class"][name], clip["per_class"][name])
        for name in evaluation["classes"]
    ]
    body.append(cells("average (DCASE)", seg["n"], seg, clip))
    body.append(
        cells(
            "overall (rows)",
            seg["n"],
            {k[8:]: v for k, v in seg.items() if k.startswith("overall_")},
            {k[8:]: v for k, v in clip.items() if k.startswith("overall_")},
        )
    )
    return render(header, body, style=style)


def per_city_table(evaluation: dict[str, Any], *, style: str = "markdown") -> list[str]:
    """Per-city results; cities never seen in training are marked."""
    header = ["city", "clips", "segment log loss", "segment accuracy", "clip accuracy"]
    body = [
        [
            city + (" (unseen in training)" if v["seen_in_training"] is False else ""),
            str(v["n_clips"]),
            number(v["segment"]["log_loss"]),
            percent(v["segment"]["accuracy"]),
            percent(v["clip"]["accuracy"]),
        ]
        for city, v in (evaluation.get("per_city") or {}).items()
    ]
    return render(header, body, style=style)


def intervals_line(report: dict[str, Any]) -> str | None:
    """``95% CI (N bootstrap draws over clips): ...`` of a metrics report, or None."""
    seg, clip = report["segment"], report["clip"]
    ci_s, ci_c = seg.get("ci") or {}, clip.get("ci") or {}
    if not ci_s:
        return None
    return (
        f"95% CI ({report['bootstrap']['n']} bootstrap draws over clips): segment log loss"
        f"{interval(ci_s.get('log_loss'))}, accuracy"
        f"{interval(ci_s.get('accuracy'), as_percent=True)}; clip log loss"
        f"{interval(ci_c.get('log_loss'))}, accuracy"
        f"{interval(ci_c.get('accuracy'), as_percent=True)}"
    )
