"""train / evaluate / predict / compare end to end on small stores written through the store API.

The stores hold random-but-structured frames (classifiers.synthetic: audio and video carry
complementary class information, locations and clips add offsets), 10-s development clips in
folds train/evaluate (one city only in evaluate) and 1-s unlabelled evaluation clips.
"""

import csv
import json

import numpy as np
import pytest

from classifiers.synthetic import make_av_features
from featurestore.datasets import SCENES, Clip
from featurestore.errors import ProvenanceMismatchError
from featurestore.store import FeatureStore
from pipelines.commands import cli
from pipelines.commands import train as train_command
from pipelines.jobs import runs

pytestmark = pytest.mark.usefixtures("single_thread")

DIM = 12
PARAMS = {
    "content_type": "env",
    "input_repr": "mel256",
    "embedding_size": DIM,
    "hop": 0.1,
    "center": True,
    "weights_sha256": "0" * 64,
}


def audio_times(duration):
    """OpenL3-like: a frame every 0.1 s while the 1-s window fits (96 for 10 s, 6 for 1 s)."""
    return np.arange(1 + int(np.floor((duration - 0.5) / 0.1 + 1e-9))) * 0.1


def video_times(duration, fps=4.0):
    """Frames at the middle of each 1/fps interval."""
    return (np.arange(int(duration * fps)) + 0.5) / fps


def build_store(path, *, n_dev=100, n_eval=12, scenes=SCENES, params=PARAMS, seed=0):
    """Write a store; return (path, {clip_id: clip})."""
    data = make_av_features(
        n_clips=n_dev + n_eval,
        segments_per_clip=10,
        dim_audio=DIM,
        dim_video=DIM,
        n_classes=10,
        locations_per_class=5,
        n_cities=4,
        random_state=seed,
    )
    clips, segment_values = [], {}
    for c in range(n_dev + n_eval):
        row = c * 10
        if c < n_dev:
            scene = str(data["y"][row])
            if scene not in scenes:
                continue
            location = str(data["location"][row])
            number = int(location.rsplit("-", 1)[1])
            city = "amsterdam" if number % 10 == 3 else str(data["city"][row])
            location = f"{city}-{number}"
            fold = ("evaluate",) if number % 10 in (3, 7) else ("train",)
            clip = Clip(
                clip_id=f"{scene}-{location}-{c}",
                audio=f"audio/{scene}-{location}-{c}.wav",
                video=f"video/{scene}-{location}-{c}.mp4",
                scene=scene,
                city=city,
                location=location,
                folds=fold,
                duration=10.0,
            )
        else:
            clip = Clip(
                clip_id=str(c - n_dev),
                audio=f"audio/{c - n_dev}.wav",
                video=f"video/{c - n_dev}.mp4",
                folds=("eval",),
                duration=1.0,
            )
        clips.append(clip)
        segment_values[clip.clip_id] = {m: data[m][row : row + 10] for m in ("audio", "video")}
    store = FeatureStore.open(path, mode="w", block_clips=16)
    store.add_clips(clips)
    rng = np.random.default_rng(seed + 1)
    by_id = {clip.clip_id: clip for clip in clips}
    for name, modality, times_of, rate in (
        ("openl3_audio", "audio", audio_times, 10.0),
        ("openl3_video", "video", video_times, 4.0),
    ):
        store.create_feature(
            name, dim=DIM, frame_rate=rate, params={**params, "modality": modality}
        )
        for block in store.blocks():
            with store.block_writer(name, block) as writer:
                for clip_id in block.clip_ids:
                    times = times_of(by_id[clip_id].duration)
                    second = np.minimum(np.floor(times + 1e-6).astype(int), 9)
                    values = segment_values[clip_id][modality][second]
                    values = values + 0.3 * rng.standard_normal(values.shape, dtype=np.float32)
                    writer.write(clip_id, values.astype(np.float32), times)
    store.close()
    return path, by_id


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store") / "features.zarr")[0]


@pytest.fixture(scope="module")
def trained(store_path, tmp_path_factory):
    """A few runs trained once for the module: {name: run_dir}."""
    root = tmp_path_factory.mktemp("runs")
    systems = {
        "audio": ["--features", "openl3_audio", "--model", "lr"],
        "video": ["--features", "openl3_video", "--model", "lr"],
        "early": ["--features", "openl3_audio,openl3_video", "--model", "lr", "--fusion", "early"],
    }
    out = {}
    for name, options in systems.items():
        run_dir = root / name
        assert (
            cli.main(
                [
                    "train",
                    str(store_path),
                    *options,
                    "--preset",
                    "fast",
                    "--threads",
                    "1",
                    "--out",
                    str(run_dir),
                ]
            )
            == 0
        )
        out[name] = run_dir
    return out


@pytest.fixture(scope="module")
def reports(trained, store_path):
    """Each trained run evaluated once on the evaluate fold: {name: report}."""
    out = {}
    for name, run_dir in trained.items():
        assert cli.main(["evaluate", str(run_dir), str(store_path), "--bootstrap", "200"]) == 0
        out[name] = json.loads((run_dir / "evaluation-evaluate.json").read_text())
    return out


def evaluate(run_dir, store_path, capsys, fold="evaluate"):
    capsys.readouterr()
    assert (
        cli.main(
            [
                "evaluate",
                str(run_dir),
                str(store_path),
                "--fold",
                fold,
                "--bootstrap",
                "200",
                "--json",
            ]
        )
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_run_directory_record_and_provenance(trained, store_path):
    record = json.loads((trained["early"] / "run.json").read_text())
    assert {p.name for p in trained["early"].iterdir()} >= {"model.json", "model.npz", "run.json"}
    assert not (trained["early"] / "model.joblib").exists()
    with FeatureStore.open(store_path, mode="r") as store:
        for name in ("openl3_audio", "openl3_video"):
            assert record["store"]["features"][name]["fingerprint"] == store.feature_fingerprint(
                name
            )
            assert record["store"]["features"][name]["params"] == store.feature_params(name)
    assert record["system"] == {
        **record["system"],
        "fusion": "early",
        "preset": "fast",
        "features": ["openl3_audio", "openl3_video"],
    }
    assert {"numpy", "scikit-learn", "python"} <= set(record["versions"])
    assert set(record["timings"]) == {"read_s", "fit_s", "validate_s", "total_s"}
    validation = record["validation"]
    assert validation["n_locations"] >= 1 and validation["temperature"] > 0
    assert record["training"]["locations"] and validation["locations"]
    assert not set(validation["locations"]) & set(record["training"]["locations"])
    assert "amsterdam" not in record["seen_cities"]


def test_evaluate_report(trained, reports):
    report = reports["early"]
    for level in ("segment", "clip"):
        assert 0 < report[level]["log_loss"] < 5 and 0 <= report[level]["accuracy"] <= 1
        assert set(report[level]["per_class"]) == set(SCENES)
        low, high = report[level]["ci"]["log_loss"]
        assert low <= report[level]["log_loss"] <= high
    assert report["segment"]["n"] == 10 * report["n_clips"]
    assert report["per_city"]["amsterdam"]["seen_in_training"] is False
    assert any(city["seen_in_training"] for city in report["per_city"].values())
    for name in report["plots"].values():
        assert (trained["early"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((trained["early"] / "run.json").read_text())
    assert (
        record["evaluations"]["evaluate"]["segment"]["log_loss"] == report["segment"]["log_loss"]
    )
    assert (trained["early"] / "evaluation-evaluate.json").is_file()


def test_human_readable_evaluate_has_a_per_class_table(trained, store_path, capsys):
    assert cli.main(["evaluate", str(trained["audio"]), str(store_path), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert (
        "average (DCASE)" in out
        and "street_traffic" in out
        and "amsterdam (unseen in training)" in out
    )


def test_fusion_beats_each_single_modality_end_to_end(reports):
    accuracy = {name: report["segment"]["accuracy"] for name, report in reports.items()}
    assert accuracy["early"] > max(accuracy["audio"], accuracy["video"]) + 0.05, accuracy


def read_output(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle, delimiter="\t"))


def test_predict_output_format_10s_and_1s_clips(trained, store_path, tmp_path, capsys):
    dev_csv, eval_csv = tmp_path / "dev.csv", tmp_path / "eval.csv"
    assert (
        cli.main(
            [
                "predict",
                str(trained["early"]),
                str(store_path),
                "--fold",
                "evaluate",
                "--out",
                str(dev_csv),
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "predict",
                str(trained["early"]),
                str(store_path),
                "--fold",
                "eval",
                "--out",
                str(eval_csv),
            ]
        )
        == 0
    )
    for path in (dev_csv, eval_csv):
        rows = read_output(path)
        assert rows[0] == ["filename", "scene_label", *SCENES]
        proba = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-8)
        assert [row[1] for row in rows[1:]] == [SCENES[k] for k in proba.argmax(axis=1)]
    dev_rows = read_output(dev_csv)[1:]
    with FeatureStore.open(store_path, mode="r") as store:
        evaluate_clips = store.clips.clip_id[store.select(fold="evaluate")]
    assert len(dev_rows) == 10 * len(evaluate_clips)
    first = str(evaluate_clips[0])
    assert [row[0] for row in dev_rows[:10]] == [f"{first}_{k}.wav" for k in range(10)]
    eval_rows = read_output(eval_csv)[1:]
    assert [row[0] for row in eval_rows] == [f"{i}.wav" for i in range(12)]


def test_predict_on_a_store_of_only_unlabelled_1s_clips(trained, tmp_path):
    path, _ = build_store(tmp_path / "eval-only.zarr", n_dev=0, n_eval=7)
    output = tmp_path / "eval.csv"
    assert cli.main(["predict", str(trained["early"]), str(path), "--out", str(output)]) == 0
    rows = read_output(output)
    assert rows[0] == ["filename", "scene_label", *SCENES]
    assert [row[0] for row in rows[1:]] == [f"{i}.wav" for i in range(7)]


def test_predict_writes_all_ten_classes_when_training_saw_fewer(tmp_path, capsys):
    path, _ = build_store(
        tmp_path / "few.zarr", n_dev=60, n_eval=3, scenes=("bus", "park", "tram"), seed=4
    )
    run_dir = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                str(path),
                "--features",
                "openl3_audio",
                "--model",
                "lgbm",
                "--preset",
                "fast",
                "--threads",
                "1",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    output = tmp_path / "out.csv"
    assert (
        cli.main(["predict", str(run_dir), str(path), "--fold", "eval", "--out", str(output)]) == 0
    )
    rows = read_output(output)
    assert rows[0][2:] == list(SCENES)
    proba = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    unseen = [k for k, scene in enumerate(SCENES) if scene not in ("bus", "park", "tram")]
    assert np.all(proba[:, unseen] == 0.0)
    assert {row[1] for row in rows[1:]} <= {"bus", "park", "tram"}


def test_feature_made_differently_is_refused(trained, store_path, tmp_path, capsys):
    other, _ = build_store(
        tmp_path / "other.zarr", n_dev=20, n_eval=2, params={**PARAMS, "hop": 0.2}
    )
    capsys.readouterr()
    status = cli.main(["evaluate", str(trained["audio"]), str(other)])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert len(error.splitlines()) == 1 and "openl3_audio" in error and "differs" in error
    assert (
        cli.main(["predict", str(trained["audio"]), str(other), "--out", str(tmp_path / "x.csv")])
        == 2
    )
    assert not (tmp_path / "x.csv").exists()
    record = runs.load_record(trained["audio"])
    with FeatureStore.open(other, mode="r") as store, pytest.raises(ProvenanceMismatchError):
        runs.check_provenance(record, store, trained["audio"])


@pytest.mark.parametrize(
    "options",
    [
        ["--model", "video=lgbm,audio=lr", "--fusion", "weighted"],
        ["--model", "lr", "--fusion", "stack"],
        ["--model", "baseline", "--fusion", "proposed"],
        ["--model", "mlp", "--fusion", "late", "--no-temperature", "--pooling", "max"],
    ],
    ids=["weighted-lgbm-lr", "stack", "proposed", "late-mlp-max"],
)
def test_fusion_modes_through_the_cli(options, store_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                str(store_path),
                "--features",
                "openl3_audio,openl3_video",
                *options,
                "--preset",
                "fast",
                "--threads",
                "1",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    report = evaluate(run_dir, store_path, capsys)
    assert report["segment"]["accuracy"] > 0.3  # well above chance (0.1)


def test_compare_lists_runs_side_by_side(trained, reports, capsys):
    capsys.readouterr()
    assert cli.main(["compare", *map(str, trained.values())]) == 0
    table = capsys.readouterr().out
    assert table.count("\n") == 3 + len(trained) and "lr early" in table
    assert table.count(" *") == 1
    assert cli.main(["compare", *map(str, trained.values()), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = document["systems"]
    best = min(rows, key=lambda row: row["val_log_loss"])  # validation, not the test fold
    assert document["best"] == best["run"] and document["fold"] == "evaluate"
    starred = next(line for line in table.splitlines() if " *" in line)
    assert starred.startswith(f"| {best['run']} |")
    assert [row["system"] for row in rows] == [
        "lr none: openl3_audio",
        "lr none: openl3_video",
        "lr early: openl3_audio+openl3_video",
    ]
    assert all(row["log_loss"] is not None for row in rows)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--features", "openl3_audio,openl3_video", "--model", "lr"], "need a fusion mode"),
        (["--features", "openl3_audio", "--model", "svm"], "unknown model"),
        (
            ["--features", "openl3_audio,openl3_video", "--model", "lr", "--fusion", "proposed"],
            "baseline networks",
        ),
        (["--features", "mfcc", "--model", "lr"], "no feature 'mfcc'"),
        (["--features", "openl3_audio", "--train-fold", "nope"], "no segments"),
    ],
)
def test_bad_usage_exits_2_with_one_line(options, message, store_path, tmp_path, capsys):
    capsys.readouterr()
    status = cli.main(["train", str(store_path), *options, "--out", str(tmp_path / "r")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and message in error and len(error.splitlines()) == 1


def test_existing_run_needs_overwrite_and_missing_run_is_reported(
    trained, store_path, tmp_path, capsys
):
    options = [
        "train",
        str(store_path),
        "--features",
        "openl3_audio",
        "--preset",
        "fast",
        "--out",
        str(trained["audio"]),
    ]
    assert cli.main(options) == 2
    assert cli.main(["evaluate", str(tmp_path / "missing"), str(store_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_cli_vocabulary_matches_classifiers():
    from classifiers import systems

    assert train_command.MODELS == systems.MODELS and train_command.FUSIONS == systems.FUSIONS


class WritesMarker:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def hostile_copies(run_dir, tmp_path):
    """Copies of a run with one file each replaced by a pickle that would write a marker."""
    import pickle
    import shutil

    marker = tmp_path / "code-ran"
    payload = pickle.dumps(WritesMarker(marker))
    copies = {}
    for name in ("model.json", "model.npz", "run.json"):
        copy = tmp_path / f"run-{name}"
        shutil.copytree(run_dir, copy)
        (copy / name).write_bytes(payload)
        copies[name] = copy
    legacy = tmp_path / "run-legacy"  # an older avscene's run: pickle + v1
    shutil.copytree(run_dir, legacy)
    for name in ("model.json", "model.npz"):
        (legacy / name).unlink()
    (legacy / "model.joblib").write_bytes(payload)
    record = json.loads((legacy / "run.json").read_text())
    (legacy / "run.json").write_text(json.dumps({**record, "format_version": 1}))
    copies["legacy"] = legacy
    objects = tmp_path / "run-object-array"  # an npz whose array needs unpickling
    shutil.copytree(run_dir, objects)
    arrays = dict(np.load(run_dir / "model.npz"))
    first = sorted(arrays)[0]
    arrays[first] = np.array([WritesMarker(marker)], dtype=object)
    np.savez(objects / "model.npz", **arrays)
    copies["object-array"] = objects
    return copies, marker


def test_no_file_of_a_run_is_unpickled(trained, store_path, tmp_path, capsys):
    copies, marker = hostile_copies(trained["audio"], tmp_path)
    reads_model = ("evaluate", "predict")  # report and compare read run.json only
    for what, run_dir in copies.items():
        for argv in (
            ["evaluate", run_dir, store_path, "--bootstrap", "0"],
            ["predict", run_dir, store_path, "--out", tmp_path / "out.csv"],
            ["report", run_dir, "--out", tmp_path / "report.md"],
            ["compare", run_dir],
        ):
            capsys.readouterr()
            status = cli.main([str(a) for a in argv])
            error = capsys.readouterr().err.strip()
            assert not marker.exists(), (what, argv[0])
            if argv[0] in reads_model or what in ("run.json", "legacy"):
                assert status == 2, (what, argv[0], error)
                assert len(error.splitlines()) == 1 and str(run_dir) in error, (what, error)
    capsys.readouterr()
    cli.main(["evaluate", str(copies["legacy"]), str(store_path)])
    assert "retrain it with avscene train" in capsys.readouterr().err
