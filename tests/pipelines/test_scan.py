"""``avscene scan`` (and ``avscene synth``) through the command line."""

import json

import pytest

from featurestore.datasets import SCENES
from pipelines.commands import cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    status = cli.main(
        [
            "-q",
            "synth",
            "--out",
            str(out),
            "--clips-per-class",
            "4",
            "--seconds",
            "1",
            "--size",
            "32x24",
            "--fps",
            "2",
            "--seed",
            "3",
            "--eval-clips",
            "5",
            "--locations-per-class",
            "2",
            "--workers",
            "1",
        ]
    )
    assert status == 0
    return out


def scan(capsys, *args):
    status = cli.main(["scan", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_scan_reads_back_a_synth_corpus(corpus, capsys):
    status, out, _ = scan(capsys, corpus / "development", "--json")
    assert status == 0
    summary = json.loads(out)
    assert {"clips", "scenes", "cities", "locations", "folds", "problems", "kind", "root"} <= set(
        summary
    )
    assert summary["kind"] == "tau-development"
    assert summary["clips"] == 40 and summary["problems"] == []
    assert summary["scenes"] == dict.fromkeys(SCENES, 4)
    assert len(summary["locations"]) == 20 and set(summary["locations"].values()) == {2}
    assert sum(summary["cities"].values()) == 40 and len(summary["cities"]) >= 2
    assert summary["folds"] == {"train": 20, "evaluate": 20, "test": 20}


def test_scan_text(corpus, capsys):
    status, out, _ = scan(capsys, corpus / "development")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"dataset   {corpus / 'development'} (tau-development): 40 clips")
    assert lines[1].split() == [
        "scene",
        "clips",
        "locations",
        "cities",
        "train",
        "evaluate",
        "test",
    ]
    assert lines[2].split() == ["airport", "4", "2", "2", "2", "2", "2"]
    assert any(line.split()[:2] == ["total", "40"] for line in lines)
    assert lines[-1] == "problems  none"


def test_scan_evaluation_set(corpus, capsys):
    status, out, _ = scan(capsys, corpus / "evaluation", "--json")
    summary = json.loads(out)
    assert status == 0 and summary["kind"] == "tau-evaluation"
    assert summary["clips"] == 5 and summary["folds"] == {"eval": 5} and summary["scenes"] == {}
    status, out, _ = scan(capsys, corpus / "evaluation")
    assert "(none)" in out


def test_scan_problems_exit_1(corpus, tmp_path, capsys):
    root = tmp_path / "copy"
    root.mkdir()
    lines = (corpus / "development" / "meta.csv").read_text().splitlines()
    lines[3] = lines[3].replace("\tairport\t", "\tairprot\t")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    status, out, _ = scan(capsys, root, "--max-problems", "1")
    assert status == 1
    assert "problems  3" in out  # media folders not copied
    assert "  meta.csv row 4: unknown scene label 'airprot'" in out
    assert "... and 2 more" in out
    status, out, _ = scan(capsys, root, "--json")
    assert status == 1 and json.loads(out)["problems"][1:] == [
        "audio/: folder missing (39 files listed)",
        "video/: folder missing (39 files listed)",
    ]


def test_scan_no_dataset_exit_2(corpus, tmp_path, capsys):
    status, out, err = scan(capsys, tmp_path)
    assert status == 2 and out == "" and "no dataset" in err
    status, _, err = scan(capsys, corpus)  # development + evaluation
    assert status == 2 and "2 datasets one level down (development, evaluation)" in err


def test_scan_with_a_csv_manifest(corpus, capsys):
    truth = corpus / "evaluation_truth.csv"
    status, out, _ = scan(capsys, corpus / "evaluation", "--manifest", truth, "--json")
    summary = json.loads(out)
    assert status == 0 and summary["kind"] == "csv" and summary["clips"] == 5
    assert sum(summary["scenes"].values()) == 5


def test_synth_refuses_an_existing_corpus(corpus, capsys):
    status = cli.main(["synth", "--out", str(corpus), "--clips-per-class", "1", "--seconds", "1"])
    assert status == 2
    assert "exists; pass overwrite/--overwrite" in capsys.readouterr().err


def test_synth_rejects_bad_sizes(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["synth", "--out", str(tmp_path), "--size", "33x24"])
    assert stop.value.code == 2
    assert "even" in capsys.readouterr().err


def test_synth_refuses_a_repeated_class(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["synth", "--out", str(tmp_path / "out"), "--classes", "park,park"])
    assert stop.value.code == 2 and "listed twice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--clips-per-class", "2", "--locations-per-class", "3"], "exceeds --clips-per-class"),
    ],
)
def test_synth_usage_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:  # the usage error, before any work
        cli.main(["synth", "--out", str(tmp_path / "out"), *args])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_many_locations_are_summarised():
    from pathlib import Path

    from featurestore.datasets import Clip, Manifest
    from pipelines.commands.scan import format_scan

    clips = [
        Clip(
            f"park-lyon-{loc}-{loc * 10 + k}",
            None,
            None,
            scene="park",
            city="lyon",
            location=f"lyon-{loc}",
            folds=("train",),
        )
        for loc in range(100)
        for k in range(1 + loc % 5)
    ]
    manifest = Manifest(Path("/data"), "csv", clips, ["m.csv row 2: x"] * 3, "0" * 64)
    text = format_scan(manifest, manifest.summary(), max_problems=0)
    assert "locations 100, clips per location: min 1, median 3, max 5 (--json lists them)" in text
    assert text.count("m.csv row 2: x") == 3 and "more" not in text
