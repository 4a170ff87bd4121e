"""Generic CSV manifests: columns by header name, tab or comma, bad rows reported per row."""

import pytest

from featurestore.datasets import Clip, load_manifest
from featurestore.errors import ManifestError


def make_media(root, *paths):
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).touch()


@pytest.mark.parametrize("sep", [",", "\t"])
def test_csv_manifest_tab_or_comma(tmp_path, sep):
    make_media(tmp_path, "wav/a.wav", "mp4/a.mp4", "wav/b.wav", "mp4/c.mp4")
    rows = [
        ["audio", "video", "label", "city", "location", "split"],
        ["wav/a.wav", "mp4/a.mp4", "park", "Lyon", "12", "train"],
        ["wav/b.wav", "", "tram", "lyon", "lyon-13", "evaluate;test"],
        ["", "mp4/c.mp4", "", "", "", ""],
    ]
    (tmp_path / "list.csv").write_text("\n".join(sep.join(r) for r in rows) + "\n")
    manifest = load_manifest(tmp_path, manifest=tmp_path / "list.csv")
    assert manifest.kind == "csv" and manifest.problems == []
    assert manifest.files == ("list.csv",)
    assert manifest.clips == [
        Clip(
            "a",
            "wav/a.wav",
            "mp4/a.mp4",
            scene="park",
            city="lyon",
            location="lyon-12",
            folds=("train",),
        ),
        Clip(
            "b",
            "wav/b.wav",
            None,
            scene="tram",
            city="lyon",
            location="lyon-13",
            folds=("evaluate", "test"),
        ),
        Clip("c", None, "mp4/c.mp4"),
    ]


def test_csv_file_as_root_and_tau_names(tmp_path):
    stem = "airport-lisbon-1000-40000"
    make_media(tmp_path, f"audio/{stem}.wav", f"video/{stem}.mp4")
    (tmp_path / "mine.csv").write_text(
        f'filename_audio,filename_video,clip_id\n"audio/{stem}.wav",video/{stem}.mp4,x1\n'
    )
    manifest = load_manifest(tmp_path / "mine.csv")
    assert manifest.root == tmp_path
    # scene, city and location come from a TAU-style clip id; "x1" is not one
    assert manifest.clips == [Clip("x1", f"audio/{stem}.wav", f"video/{stem}.mp4")]
    (tmp_path / "mine.csv").write_text(f"Audio\naudio/{stem}.wav\n")
    clip = load_manifest(tmp_path / "mine.csv").clips[0]
    assert (clip.clip_id, clip.scene, clip.city, clip.location) == (
        stem,
        "airport",
        "lisbon",
        "lisbon-1000",
    )


def test_manifest_path_relative_to_root(tmp_path, monkeypatch):
    make_media(tmp_path, "a.wav")
    (tmp_path / "list.tsv").write_text("audio\na.wav\n")
    monkeypatch.chdir(tmp_path.parent)
    manifest = load_manifest(tmp_path, manifest="list.tsv")
    assert [c.clip_id for c in manifest.clips] == ["a"]
    with pytest.raises(ManifestError, match="no such manifest file"):
        load_manifest(tmp_path, manifest="absent.csv")


def test_csv_bad_rows(tmp_path):
    make_media(tmp_path, "a.wav", "b.wav")
    lines = [
        "audio,label,split",
        "a.wav,park,train",
        "b.wav,parc,train",  # row 3 unknown label
        "a.wav,park,train",  # row 4 duplicate
        "../x.wav,park,train",  # row 5 escapes
        "/abs/y.wav,park,train",  # row 6 absolute
        "C:\\data\\z.wav,park,train",  # row 7 absolute (Windows)
        ",park,train",  # row 8 no media
        "b.wav,park,training",  # row 9 unknown split
        "b.wav,park",  # row 10 field count
        "gone.wav,tram,test",
    ]  # row 11 accepted, file missing
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    manifest = load_manifest(tmp_path, manifest="m.csv")
    assert manifest.problems == [
        "m.csv row 3: unknown scene label 'parc'",
        "m.csv row 4: duplicate clip 'a' (first at row 2)",
        "m.csv row 5: path '../x.wav' leaves the dataset root ('..')",
        "m.csv row 6: absolute path '/abs/y.wav' (paths must be relative to the dataset root)",
        "m.csv row 7: absolute path 'C:\\\\data\\\\z.wav' (paths must be relative to the "
        "dataset root)",
        "m.csv row 8: no audio or video path",
        "m.csv row 9: unknown split 'training' (use eval, evaluate, test, train, val, valid, "
        "validation)",
        "m.csv row 10: expected 3 fields, found 2",
        "gone.wav: missing",
    ]
    assert [c.clip_id for c in manifest.clips] == ["a", "gone"]
    assert manifest.clips[1].audio == "gone.wav"  # kept: extraction reports it


def test_any_labels_when_asked(tmp_path):
    make_media(tmp_path, "a.wav")
    (tmp_path / "m.csv").write_text("audio,scene\na.wav,beach\n")
    assert load_manifest(tmp_path, manifest="m.csv").problems[0].endswith("'beach'")
    manifest = load_manifest(tmp_path, manifest="m.csv", labels=None)
    assert manifest.problems == [] and manifest.clips[0].scene == "beach"


@pytest.mark.parametrize(
    "header, message",
    [
        ("file,label", "no audio or video column"),
        ("audio,label,scene", "both 'label' and 'scene'"),
        ("audio,,label", "empty column name"),
    ],
)
def test_csv_malformed_header(tmp_path, header, message):
    (tmp_path / "m.csv").write_text(header + "\nx.wav,park,park\n")
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path, manifest="m.csv")
