"""Manifests: TAU development and evaluation layouts, written here in the real naming scheme."""

import json

import numpy as np
import pytest

from featurestore.datasets import Clip, load_manifest, parse_tau_name
from featurestore.errors import DatasetNotFoundError, ManifestError
from featurestore.provenance import sha256_file, sha256_json

META_HEADER = "filename_audio\tfilename_video\tscene_label\tidentifier"
FOLD_HEADER = "filename_audio\tfilename_video\tscene_label"

# Names from the published fold1 lists (dataset-and-baseline.md 1.2), plus a few of our own.
STEMS = [
    "airport-lisbon-1000-40000",
    "airport-lisbon-1000-40001",
    "airport-london-6-257",
    "bus-prague-1102-41514",
    "bus-prague-1102-41515",
    "metro-helsinki-45-1333",
    "street_traffic-paris-171-5231",
    "tram-milan-1132-43315",
    "tram-milan-1133-43320",
]
TRAIN = [
    "airport-lisbon-1000-40000",
    "airport-lisbon-1000-40001",
    "bus-prague-1102-41514",
    "bus-prague-1102-41515",
    "metro-helsinki-45-1333",
    "tram-milan-1132-43315",
]
EVALUATE = ["airport-london-6-257", "street_traffic-paris-171-5231", "tram-milan-1133-43320"]


def meta_row(stem, scene=None, identifier=None):
    scene = stem.split("-")[0] if scene is None else scene
    identifier = "-".join(stem.split("-")[1:3]) if identifier is None else identifier
    return f"audio/{stem}.wav\tvideo/{stem}.mp4\t{scene}\t{identifier}"


def fold_row(stem, *, label=True):
    row = f"audio/{stem}.wav\tvideo/{stem}.mp4"
    return row + f"\t{stem.split('-')[0]}" if label else row


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_development(root, *, meta=None, train=None, evaluate=None, test=None, media=STEMS):
    """A development layout: meta.csv, the three fold files, empty media files for ``media``."""
    write_lines(root / "meta.csv", [META_HEADER] + (meta or [meta_row(s) for s in STEMS]))
    setup = root / "evaluation_setup"
    write_lines(setup / "fold1_train.csv", [FOLD_HEADER] + (train or [fold_row(s) for s in TRAIN]))
    write_lines(
        setup / "fold1_evaluate.csv", [FOLD_HEADER] + (evaluate or [fold_row(s) for s in EVALUATE])
    )
    write_lines(
        setup / "fold1_test.csv",
        ["filename_audio\tfilename_video"]
        + (test or [fold_row(s, label=False) for s in EVALUATE]),
    )
    (root / "audio").mkdir(exist_ok=True)
    (root / "video").mkdir(exist_ok=True)
    for stem in media:
        (root / "audio" / f"{stem}.wav").touch()
        (root / "video" / f"{stem}.mp4").touch()
    return root


def test_development_layout(tmp_path):
    import soundfile

    root = write_development(tmp_path)
    # the one real 480,001-sample file: the manifest lists it like any other (no decoding here)
    soundfile.write(
        root / "audio" / "bus-prague-1102-41514.wav",
        np.zeros((480_001, 2)),
        48000,
        subtype="PCM_24",
    )
    manifest = load_manifest(tmp_path)
    assert manifest.kind == "tau-development"
    assert manifest.root == tmp_path
    assert manifest.problems == []
    assert [c.clip_id for c in manifest.clips] == STEMS
    first = manifest.clips[0]
    assert first == Clip(
        "airport-lisbon-1000-40000",
        "audio/airport-lisbon-1000-40000.wav",
        "video/airport-lisbon-1000-40000.mp4",
        scene="airport",
        city="lisbon",
        location="lisbon-1000",
        folds=("train",),
        duration=None,
    )
    by_id = {c.clip_id: c for c in manifest.clips}
    assert by_id["airport-london-6-257"].folds == ("evaluate", "test")
    assert by_id["bus-prague-1102-41514"].location == "prague-1102"
    assert manifest.files == (
        "meta.csv",
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
        "evaluation_setup/fold1_test.csv",
    )
    expected = sha256_json({name: sha256_file(tmp_path / name) for name in manifest.files})
    assert manifest.checksum == expected
    summary = manifest.summary()
    assert summary["clips"] == len(STEMS)
    assert summary["scenes"] == {
        "airport": 3,
        "bus": 2,
        "metro": 1,
        "street_traffic": 1,
        "tram": 2,
    }
    assert summary["folds"] == {"train": 6, "evaluate": 3, "test": 3}
    assert summary["locations"]["lisbon-1000"] == 2
    json.dumps(summary)


def test_identifier_is_derived_from_the_name_never_dcase_util_fallback(tmp_path):
    meta = [meta_row(s, identifier="") for s in STEMS]
    manifest = load_manifest(write_development(tmp_path, meta=meta))
    assert manifest.problems == []
    assert manifest.clips[0].location == "lisbon-1000"  # dcase_util would say "lisbon"
    name, _ = parse_tau_name("street_traffic-paris-171-5231")
    assert (name.scene, name.city, name.identifier) == ("street_traffic", "paris", "paris-171")


def test_archive_folder_one_level_down(tmp_path):
    inner = tmp_path / "TAU-urban-audio-visual-scenes-2021-development"
    inner.mkdir()
    write_development(inner)
    (tmp_path / "notes").mkdir()  # not a dataset: ignored
    manifest = load_manifest(tmp_path)
    assert manifest.root == inner
    assert len(manifest.clips) == len(STEMS) and manifest.problems == []


def test_several_datasets_one_level_down_is_ambiguous(tmp_path):
    write_development(tmp_path / "a")
    write_development(tmp_path / "b")
    with pytest.raises(DatasetNotFoundError, match="2 datasets one level down"):
        load_manifest(tmp_path)


def test_no_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no dataset"):
        load_manifest(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no such directory"):
        load_manifest(tmp_path / "absent")


def test_bad_rows_are_reported_in_one_pass_and_skipped(tmp_path):
    meta = [meta_row(s) for s in STEMS] + [
        meta_row("airport-lyon-1001-50000", scene="airprot"),  # row 11
        meta_row("airport-lisbon-1000-40000"),  # row 12
        "audio/airport_lyon_1001.wav\tvideo/airport_lyon_1001.mp4\tairport\tlyon-1001",  # 13
        "../audio/park-lyon-1002-50001.wav\tvideo/park-lyon-1002-50001.mp4\tpark\tlyon-1002",
        "/data/audio/park-lyon-1002-50002.wav\tvideo/park-lyon-1002-50002.mp4\tpark\tlyon-1002",
        meta_row("park-lyon-1002-50003", scene="bus"),  # row 16
        meta_row("park-lyon-1002-50004", identifier="lyon"),  # row 17
        "audio/park-lyon-1002-50005.wav\tvideo/park-lyon-1002-50006.mp4\tpark\tlyon-1002",
        "audio/park-lyon-1002-50007.wav\tpark",  # row 19
    ]
    train = [fold_row(s) for s in TRAIN] + [
        fold_row("metro-riga-9-99999"),  # row 8
        fold_row("airport-lyon-1001-50000"),
    ]  # rejected
    root = write_development(tmp_path, meta=meta, train=train)
    manifest = load_manifest(root)
    problems = manifest.problems
    expected = [
        "meta.csv row 11: unknown scene label 'airprot'",
        "meta.csv row 12: duplicate clip 'airport-lisbon-1000-40000' (first at row 2)",
        "meta.csv row 13: file name 'airport_lyon_1001' is not <scene>-<city>-<location>-<segment>",
        "meta.csv row 14: path '../audio/park-lyon-1002-50001.wav' leaves the dataset root ('..')",
        "meta.csv row 15: absolute path '/data/audio/park-lyon-1002-50002.wav'",
        "meta.csv row 16: scene label 'bus' does not match file name 'park-lyon-1002-50003'",
        "meta.csv row 17: identifier 'lyon' does not match file name 'park-lyon-1002-50004'",
        "meta.csv row 18: filename_audio 'audio/park-lyon-1002-50005.wav' and filename_video",
        "meta.csv row 19: expected 4 fields, found 2",
        "evaluation_setup/fold1_train.csv row 8: clip 'metro-riga-9-99999' is not in meta.csv",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected)
    assert all("\n" not in p for p in problems)
    assert [c.clip_id for c in manifest.clips] == STEMS  # bad rows skipped


def test_fold_file_disagreements(tmp_path):
    train = [fold_row(s) for s in TRAIN]
    train[0] = train[0].replace("\tairport", "\tbus")  # row 2: label differs
    train.append(fold_row(TRAIN[1]))  # row 8: duplicate
    train.append(fold_row(EVALUATE[0]))  # row 9: in evaluate too
    evaluate = [fold_row(s) for s in EVALUATE]
    evaluate[2] = evaluate[2].replace("audio/", "sound/")  # row 4: path differs
    root = write_development(tmp_path, train=train, evaluate=evaluate)
    problems = load_manifest(root).problems
    assert problems == [
        "evaluation_setup/fold1_train.csv row 2: scene label 'bus' differs from meta.csv "
        "('airport')",
        "evaluation_setup/fold1_train.csv row 8: duplicate clip 'airport-lisbon-1000-40001' "
        "(first at row 3)",
        "evaluation_setup/fold1_evaluate.csv row 4: filename_audio "
        "'sound/tram-milan-1133-43320.wav' differs from meta.csv "
        "('audio/tram-milan-1133-43320.wav')",
        "evaluation_setup: clip 'airport-london-6-257' is in both fold1_train.csv and "
        "fold1_evaluate.csv and fold1_test.csv",
        "evaluation_setup: location 'london-6' is in both fold1_train.csv and fold1_evaluate.csv",
    ]


def test_missing_media_is_a_per_clip_problem(tmp_path):
    root = write_development(tmp_path)
    (root / "audio" / "tram-milan-1132-43315.wav").unlink()
    (root / "video" / "metro-helsinki-45-1333.mp4").unlink()
    manifest = load_manifest(root)
    assert manifest.problems == [
        "video/metro-helsinki-45-1333.mp4: missing",
        "audio/tram-milan-1132-43315.wav: missing",
    ]
    by_id = {c.clip_id: c for c in manifest.clips}
    assert len(by_id) == len(STEMS)  # every clip kept
    # a missing file keeps its path (a failure of that clip), unlike a modality never named
    assert by_id["tram-milan-1132-43315"].audio == "audio/tram-milan-1132-43315.wav"
    assert by_id["tram-milan-1132-43315"].video == "video/tram-milan-1132-43315.mp4"
    assert by_id["metro-helsinki-45-1333"].video == "video/metro-helsinki-45-1333.mp4"


@pytest.mark.parametrize(
    "header",
    [
        "filename_audio\tfilename_video\tidentifier",  # no scene_label
        "filename_audio\tfilename_audio\tscene_label\tidentifier",  # repeated column
        "",  # empty
    ],
)
def test_malformed_meta_header_is_fatal(tmp_path, header):
    root = write_development(tmp_path)
    (root / "meta.csv").write_text(header + "\n" + meta_row(STEMS[0]) + "\n")
    with pytest.raises(ManifestError, match="meta.csv"):
        load_manifest(root)


def test_malformed_fold_header_is_fatal(tmp_path):
    root = write_development(tmp_path)
    write_lines(root / "evaluation_setup" / "fold1_train.csv", ["file\tlabel", "a\tb"])
    with pytest.raises(ManifestError, match="fold1_train.csv: header has neither"):
        load_manifest(root)


def test_unreadable_manifest_is_fatal(tmp_path):
    root = write_development(tmp_path)
    (root / "meta.csv").write_bytes(META_HEADER.encode() + b"\n\xff\xfe\x00bad\n")
    with pytest.raises(ManifestError, match="meta.csv: cannot be read"):
        load_manifest(root)


def test_fold_files_without_meta_is_fatal(tmp_path):
    root = write_development(tmp_path)
    (root / "meta.csv").unlink()
    with pytest.raises(ManifestError, match="meta.csv: missing"):
        load_manifest(root)


def test_evaluation_layout_from_the_files(tmp_path):
    root = tmp_path / "TAU-urban-audio-visual-scenes-2021-evaluation"
    (root / "audio").mkdir(parents=True)
    (root / "video").mkdir()
    for i in (0, 1, 2, 10):
        (root / "audio" / f"{i}.wav").touch()
        (root / "video" / f"{i}.mp4").touch()
    (root / "video" / "10.mp4").unlink()
    (root / "audio" / "notes.wav").touch()
    manifest = load_manifest(tmp_path)
    assert manifest.kind == "tau-evaluation"
    assert [c.clip_id for c in manifest.clips] == ["0", "1", "2", "10"]
    assert manifest.clips[1] == Clip("1", "audio/1.wav", "video/1.mp4", folds=("eval",))
    assert manifest.clips[3].video == "video/10.mp4"  # missing, not absent
    assert manifest.problems == [
        "audio/notes.wav: file name 'notes' is not an integer evaluation id",
        "video/10.mp4: missing",
    ]
    assert manifest.summary()["folds"] == {"eval": 4}
    assert manifest.summary()["scenes"] == {}


def test_evaluation_layout_with_a_file_list(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "video").mkdir()
    for i in range(3):
        (tmp_path / "audio" / f"{i}.wav").touch()
        (tmp_path / "video" / f"{i}.mp4").touch()
    write_lines(
        tmp_path / "evaluation_setup" / "fold1_test.csv",
        ["filename_audio\tfilename_video"]
        + [f"audio/{i}.wav\tvideo/{i}.mp4" for i in ("0", "2", "x", "5")],
    )
    manifest = load_manifest(tmp_path)
    assert manifest.kind == "tau-evaluation"
    assert [c.clip_id for c in manifest.clips] == ["0", "2", "5"]
    assert manifest.problems == [
        "evaluation_setup/fold1_test.csv row 4: file name 'x' is not an integer evaluation id",
        "audio/5.wav: missing",
        "video/5.mp4: missing",
    ]
    assert manifest.files == ("evaluation_setup/fold1_test.csv",)
