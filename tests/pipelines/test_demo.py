"""The main job end to end at a tiny size: synth -> extract -> train/evaluate -> predict -> report."""

import json

from pipelines import cli, report


def test_demo_runs_every_step_and_reports(tmp_path, capsys):
    workdir = tmp_path / "demo"
    status = cli.main(["demo", "--workdir", str(workdir), "--classes", "airport,bus,park",
                       "--clips-per-class", "6", "--seconds", "1", "--eval-clips", "3",
                       "--preset", "fast", "--json"])
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{\n"):])
    assert status == 0, summary["steps"]
    assert all(step.get("status", 0) == 0 for step in summary["steps"].values())
    names = {row["run"].rsplit("/", 1)[-1] for row in summary["systems"]}
    assert names == {"lr-audio", "lr-video", "mlp-audio", "mlp-video", "lgbm-audio",
                     "lgbm-video", "lr-logmel", "early-lr", "late-lr", "stack-lr", "proposed"}
    text = (workdir / "report.md").read_text()
    assert "RANDOM OpenL3 weights" in text and "## Evaluation clips" in text
    table = text.split("| system |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert len(table) == 11 and sum("**" in row for row in table) == 1
    # the report's best system is the one with the lowest validation log loss
    assert report.best_row(summary["systems"])["run"] == summary["best"]
    lines = (workdir / "output.csv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["filename", "scene_label", "airport"]
    assert sorted(line.split("\t")[0] for line in lines[1:]) == ["0.wav", "1.wav", "2.wav"]
    # a second run replaces the first demo's folder
    assert (workdir / "demo.json").exists()


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert cli.main(["demo", "--workdir", str(tmp_path)]) == cli.EXIT_ERROR
    assert (tmp_path / "precious.txt").read_text() == "keep me"
