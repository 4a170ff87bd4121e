"""``avscene compare RUN_DIR...``: trained systems side by side (validation and evaluated folds)."""

import json

from pipelines import runs
from pipelines.tables import interval, number, percent


def add_arguments(parser):
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    parser.add_argument("--fold", default="evaluate",
                        help="evaluated fold to show (from avscene evaluate)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def row(run_dir, record, fold):
    """One system's comparable numbers (None where not measured)."""
    validation = (record.get("validation") or {}).get("segment") or {}
    evaluation = record.get("evaluations", {}).get(fold) or {}
    seg, clip = evaluation.get("segment", {}), evaluation.get("clip", {})
    seg_ci, clip_ci = seg.get("ci") or {}, clip.get("ci") or {}
    return {
        "run": str(run_dir), "system": runs.system_name(record),
        "preset": record["system"]["preset"], "fit_s": record["timings"]["fit_s"],
        "val_log_loss": validation.get("log_loss"), "val_accuracy": validation.get("accuracy"),
        "n_clips": evaluation.get("n_clips"), "n_segments": seg.get("n"),
        "log_loss": seg.get("log_loss"), "log_loss_ci": seg_ci.get("log_loss"),
        "accuracy": seg.get("accuracy"), "accuracy_ci": seg_ci.get("accuracy"),
        "clip_log_loss": clip.get("log_loss"), "clip_log_loss_ci": clip_ci.get("log_loss"),
        "clip_accuracy": clip.get("accuracy"), "clip_accuracy_ci": clip_ci.get("accuracy"),
    }


def format_table(rows, fold):
    """Markdown table, best (lowest) segment log loss marked with *."""
    measured = [r["log_loss"] for r in rows if r["log_loss"] is not None]
    best = min(measured) if measured else None
    lines = [f"| run | system | preset | fit s | val log loss | {fold} log loss [95% CI] | "
             "accuracy | clip log loss | clip accuracy |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        mark = " *" if best is not None and r["log_loss"] == best else ""
        lines.append(
            f"| {r['run']} | {r['system']} | {r['preset']} | {r['fit_s']:.1f} | "
            f"{number(r['val_log_loss'])} | {number(r['log_loss'])}"
            f"{interval(r['log_loss_ci'])}{mark} | {percent(r['accuracy'])} | "
            f"{number(r['clip_log_loss'])} | {percent(r['clip_accuracy'])} |")
    return "\n".join(lines)


def run(args):
    rows = [row(run_dir, runs.load_record(run_dir), args.fold) for run_dir in args.run_dirs]
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.fold))
    return 0
