"""The main job end to end at a tiny size: synth -> extract -> train/evaluate -> predict -> report."""

import json

from pipelines.commands import cli
from pipelines.jobs import tables

TINY = [
    "--classes",
    "airport,bus,park",
    "--clips-per-class",
    "6",
    "--seconds",
    "1",
    "--preset",
    "fast",
    "--json",
]


def demo(workdir, capsys, *options):
    capsys.readouterr()
    status = cli.main(["demo", "--out", str(workdir), *TINY, *options])
    out = capsys.readouterr().out
    return status, json.loads(out[out.index("{\n") :])


def test_demo_runs_every_step_reports_and_a_second_run_replaces_the_first(tmp_path, capsys):
    workdir = tmp_path / "demo"
    status, summary = demo(workdir, capsys, "--eval-clips", "3")
    assert status == 0, summary["steps"]
    assert all(step.get("status", 0) == 0 for step in summary["steps"].values())
    names = {row["run"].rsplit("/", 1)[-1] for row in summary["systems"]}
    assert names == {
        "lr-audio",
        "lr-video",
        "mlp-audio",
        "mlp-video",
        "lgbm-audio",
        "lgbm-video",
        "lr-logmel",
        "early-lr",
        "late-lr",
        "stack-lr",
        "proposed",
    }
    text = (workdir / "report.md").read_text()
    assert "RANDOM OpenL3 weights" in text and "## Evaluation clips" in text
    table = text.split("| run | system |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert len(table) == 11 and sum(" * |" in row for row in table) == 1
    # the best system is the one with the lowest validation log loss, everywhere
    best = min(summary["systems"], key=lambda row: row["val_log_loss"])
    assert tables.best_system(summary["systems"])["run"] == summary["best"] == best["run"]
    assert next(row for row in table if " * |" in row).startswith(f"| {best['run']} |")
    lines = (workdir / "output.csv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["filename", "scene_label", "airport"]
    assert sorted(line.split("\t")[0] for line in lines[1:]) == ["0.wav", "1.wav", "2.wav"]
    # the store is packed into one archive that reads like the store
    from featurestore.store import FeatureStore

    archive = workdir / "store.zarr.zip"
    assert (
        summary["archive"] == str(archive) and summary["archive_bytes"] == archive.stat().st_size
    )
    packed, store = FeatureStore.open(archive), FeatureStore.open(workdir / "store.zarr")
    assert packed.features == store.features and packed.verify() == []
    assert (
        packed.segments(list(store.features)).X() == store.segments(list(store.features)).X()
    ).all()
    # a second run replaces the first demo's folder: nothing of the first one is left
    (workdir / "runs" / "left-over.txt").write_text("from the first run")
    status, again = demo(workdir, capsys, "--eval-clips", "2")
    assert status == 0, again["steps"]
    assert not (workdir / "runs" / "left-over.txt").exists()
    lines = (workdir / "output.csv").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines[1:]) == ["0.wav", "1.wav"]
    assert json.loads((workdir / "demo.json").read_text())["seconds"] == again["seconds"]


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert cli.main(["demo", "--out", str(tmp_path)]) == cli.EXIT_ERROR
    assert (tmp_path / "precious.txt").read_text() == "keep me"
