"""``avscene scan ROOT``: what a dataset holds (per scene, city, location, fold) and what is wrong.

Exit status 0 when the manifest has no problems, 1 when it has some (each printed on its own
line), 2 when no dataset was found or a manifest file is unreadable or malformed.
"""

import statistics

from featurestore.datasets import FOLDS, SCENES, load_manifest
from pipelines.commands.options import add_json, non_negative, print_json

#: More locations than this are summarised (min / median / max clips) instead of listed.
LIST_LOCATIONS = 60
#: The most problems --max-problems may ask to print.
MAX_PROBLEMS = 1000000


def add_arguments(parser):
    parser.add_argument(
        "root", help="dataset folder, the folder one level above it, or a CSV manifest file"
    )
    parser.add_argument(
        "--manifest",
        metavar="CSV",
        help="CSV manifest (columns audio, video, label, city, location, split) "
        "with paths relative to ROOT",
    )
    add_json(
        parser,
        what="the summary (kind, root, checksum, clips, scenes, cities, locations, "
        "folds, problems)",
    )
    parser.add_argument(
        "--max-problems",
        type=non_negative(int, maximum=MAX_PROBLEMS),
        default=20,
        metavar="N",
        help="problems printed in text mode (0: all; --json prints all)",
    )


def run(args):
    manifest = load_manifest(args.root, manifest=args.manifest)
    summary = manifest.summary()
    if args.json:
        print_json(summary)
    else:
        print(format_scan(manifest, summary, max_problems=args.max_problems))
    return 1 if manifest.problems else 0


def format_scan(manifest, summary, *, max_problems=20):
    """Human-readable text: a scene table, cities, folds, locations and the problems."""
    lines = [
        f"dataset   {summary['root']} ({summary['kind']}): {summary['clips']} clips, "
        f"manifest sha256 {summary['checksum'][:16]}"
    ]
    lines += _scene_table(manifest.clips)
    lines.append(_wrapped("cities", summary["cities"]))
    lines.append(_wrapped("folds", summary["folds"]))
    locations = summary["locations"]
    if len(locations) <= LIST_LOCATIONS:
        lines.append(_wrapped(f"locations {len(locations)}:", locations))
    else:
        sizes = list(locations.values())
        lines.append(
            f"locations {len(locations)}, clips per location: min {min(sizes)}, "
            f"median {statistics.median(sizes):g}, max {max(sizes)} (--json lists them)"
        )
    problems = summary["problems"]
    shown = problems if max_problems <= 0 else problems[:max_problems]
    lines.append(f"problems  {len(problems) or 'none'}")
    lines += [f"  {problem}" for problem in shown]
    if len(shown) < len(problems):
        lines.append(
            f"  ... and {len(problems) - len(shown)} more (--max-problems 0 or --json lists all)"
        )
    return "\n".join(lines)


def _wrapped(title, counts, *, width=96):
    """``title`` then ``key count, ...``, wrapped at ``width`` between items, indented 10."""
    items = [f"{key} {value}" for key, value in counts.items()]
    parts = [item + "," for item in items[:-1]] + items[-1:] or ["-"]
    lines, line = [], f"{title:<9}"
    for part in parts:
        if len(line) + 1 + len(part) > width and len(line) > len(f"{title:<9}"):
            lines.append(line)
            line = " " * 9
        line += " " + part
    return "\n".join(lines + [line])


def _scene_table(clips):
    """Rows: scene, clips, locations, cities, clips per fold; unlabelled clips as '(none)'."""
    folds = [fold for fold in FOLDS if any(fold in clip.folds for clip in clips)]
    rows = {}
    for clip in clips:
        row = rows.setdefault(
            clip.scene or "(none)",
            dict(clips=0, locations=set(), cities=set(), folds=dict.fromkeys(folds, 0)),
        )
        row["clips"] += 1
        row["locations"].add(clip.location)
        row["cities"].add(clip.city)
        for fold in clip.folds:
            row["folds"][fold] += 1
    header = f"{'scene':<20}{'clips':>7}{'locations':>11}{'cities':>8}" + "".join(
        f"{fold:>10}" for fold in folds
    )
    lines = [header]
    order = {scene: i for i, scene in enumerate(SCENES)}
    for scene, row in sorted(rows.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        lines.append(
            f"{scene:<20}{row['clips']:>7}{len(row['locations'] - {''}):>11}"
            f"{len(row['cities'] - {''}):>8}"
            + "".join(f"{row['folds'][fold]:>10}" for fold in folds)
        )
    if rows:
        all_locations = {clip.location for clip in clips} - {""}
        all_cities = {clip.city for clip in clips} - {""}
        lines.append(
            f"{'total':<20}{len(clips):>7}{len(all_locations):>11}{len(all_cities):>8}"
            + "".join(f"{sum(fold in c.folds for c in clips):>10}" for fold in folds)
        )
    return lines
