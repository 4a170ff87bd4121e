"""The DCASE 2021 Task 1B baseline recipe through the command line.

- ``avscene split`` on a store whose clip table is the real fold1_train list gives exactly the
  baseline's committed validation list (739 clips);
- ``avscene train --preset dcase2021`` trains on every frame with the baseline's split,
  normalisation, settings and selection rule, and records its test protocol, which ``evaluate``,
  ``predict`` and ``report`` apply (checked against plain restatements of test_DCASE.py/test.py);
- ``--from-checkpoint`` turns the baseline's state dicts (the real ones and random ones saved
  here) into runs whose probabilities equal the baseline's own modules'
  (``tests/baseline_modules.py``) on the same normalised frames;
- ``--split`` files in both formats, and the one-line errors of bad inputs.

The stores are written through the store API: clips of 2 s with OpenL3-like audio frames every
0.1 s (16 per clip) and video frames at the same timestamps, as ``--video-frames
per-audio-window`` extracts them.
"""

import csv
import hashlib
import json
import random

import numpy as np
import pytest

from featurestore.datasets import SCENES, Clip
from featurestore.store import FeatureStore
from pipelines.commands import cli
from pipelines.jobs import runs
from tests.helpers import shared_path

torch = pytest.importorskip("torch")
from tests import baseline_modules as official  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")
BASELINE = shared_path("dcase2021-baseline")
FEATURES = ("openl3_audio", "openl3_video")
SECONDS = 2.0
TIMES = np.arange(16) * 0.1  # openl3's centred windows of a 2-s clip, hop 0.1 s


# -- stores --------------------------------------------------------------------------------


def frame_store(
    path,
    *,
    dim,
    scenes=("airport", "bus", "park"),
    train_clips=8,
    eval_clips=3,
    video_times=TIMES,
    seed=0,
):
    """Clips of 2 s; per scene ``train_clips`` at distinct location numbers (two cities) in fold
    train and ``eval_clips`` in fold evaluate. Frames: a class prototype, a clip offset, noise."""
    rng = np.random.default_rng(seed)
    prototypes = {(scene, m): rng.normal(size=dim) for scene in scenes for m in FEATURES}
    clips, number = [], 100
    for scene in scenes:
        for k in range(train_clips + eval_clips):
            city = ("lisbon", "lyon")[k % 2]
            number += 1
            clip_id = f"{scene}-{city}-{number}-{number * 10}"
            clips.append(
                Clip(
                    clip_id=clip_id,
                    audio=f"audio/{clip_id}.wav",
                    video=f"video/{clip_id}.mp4",
                    scene=scene,
                    city=city,
                    location=f"{city}-{number}",
                    folds=("train",) if k < train_clips else ("evaluate",),
                    duration=SECONDS,
                )
            )
    store = FeatureStore.open(path, mode="w", block_clips=8)
    store.add_clips(clips)
    for name, times in (("openl3_audio", TIMES), ("openl3_video", video_times)):
        store.create_feature(name, dim=dim, frame_rate=10.0, params={"feature": name})
        for block in store.blocks():
            with store.block_writer(name, block) as writer:
                for clip in [c for c in clips if c.clip_id in block.clip_ids]:
                    offset = rng.normal(size=dim) * 0.5
                    values = (
                        prototypes[clip.scene, name]
                        + offset
                        + rng.normal(size=(len(times), dim)) * 1.5
                        + 2.0
                    )
                    writer.write(clip.clip_id, values.astype(np.float32), times)
    store.close()
    return path


@pytest.fixture(scope="module")
def store12(tmp_path_factory):
    return frame_store(tmp_path_factory.mktemp("recipe") / "s.zarr", dim=12)


@pytest.fixture(scope="module")
def store512(tmp_path_factory):
    return frame_store(
        tmp_path_factory.mktemp("ckpt") / "s.zarr", dim=512, train_clips=6, eval_clips=2, seed=1
    )


def clip_frames(store_path, fold, features=FEATURES):
    """{clip_id: (scene, frames side by side)} of a fold, read clip by clip."""
    with FeatureStore.open(store_path) as store:
        ids = store.clips.clip_id[store.select(fold=fold)]
        return {
            str(c): (
                str(store.clips.scene[store.clips.positions([str(c)])[0]]),
                np.concatenate([store.frames(f, str(c))[0] for f in features], axis=1),
            )
            for c in ids
        }


def official_split(clips, val_fraction=0.1):
    """split_data.py as a plain statement: seed 30; scenes sorted; per scene the location
    numbers (file name field 2) sorted as strings; random.choice draws whole numbers into
    training until it holds >= int((1 - ratio) * n) clips. Returns the validation clip ids."""
    stream = random.Random(30)
    validation = set()
    for scene in sorted({scene for _, scene in clips}):
        members = [clip_id for clip_id, s in clips if s == scene]
        numbers = sorted({clip_id.split("-")[2] for clip_id in members})
        left, taken = list(range(len(numbers))), 0
        while True:
            drawn = stream.choice(left)
            left.remove(drawn)
            taken += sum(1 for c in members if c.split("-")[2] == numbers[drawn])
            if taken >= int((1 - val_fraction) * len(members)):
                break
        validation |= {c for c in members if c.split("-")[2] in {numbers[i] for i in left}}
    return validation


def read_csv(path, delimiter=","):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def run_cli(argv, capsys):
    """Exit status, stdout and stderr lines of one command."""
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip().splitlines()


# -- the official split on the real fold1_train list ----------------------------------------


@pytest.mark.needs_reference(BASELINE)
def test_split_of_the_real_fold1_train_list_is_the_official_one(tmp_path, capsys):
    rows = read_csv(BASELINE / "split_train.csv") + read_csv(BASELINE / "split_val.csv")
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    clips = []
    for row in rows:
        stem = row["filename_audio"].split("/")[-1][: -len(".wav")]
        scene, city, number, _ = stem.split("-")
        clips.append(
            Clip(
                clip_id=stem,
                audio=row["filename_audio"],
                video=row["filename_video"],
                scene=row["scene_label"],
                city=city,
                location=f"{city}-{number}",
                folds=("train",),
                duration=10.0,
            )
        )
    with FeatureStore.open(tmp_path / "fold1.zarr", mode="w") as store:
        store.add_clips(clips)
    out = tmp_path / "split.csv"
    status, stdout, _ = run_cli(
        ["split", tmp_path / "fold1.zarr", "--method", "dcase2021", "--out", out, "--json"], capsys
    )
    assert status == 0
    summary = json.loads(stdout)
    assert (summary["clips"], summary["train"], summary["validation"]) == (8646, 7907, 739)
    written = {row["clip_id"]: row["role"] for row in read_csv(out)}
    official_val = {
        r["filename_audio"].split("/")[-1][:-4] for r in read_csv(BASELINE / "split_val.csv")
    }
    assert {c for c, role in written.items() if role == "validation"} == official_val
    assert (
        len(written) == 8646
        and official_split([(c.clip_id, c.scene) for c in clips]) == official_val
    )
    status, _, _ = run_cli(
        ["split", tmp_path / "fold1.zarr", "--method", "location", "--out", out], capsys
    )
    assert status == 2  # exists; --overwrite replaces
    status, stdout, _ = run_cli(
        ["split", tmp_path / "fold1.zarr", "--method", "location", "--out", out, "--overwrite"],
        capsys,
    )
    assert status == 0 and "validation clips" in stdout


# -- the recipe, trained ------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_run(store12, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "proposed"
    assert (
        cli.main(
            [
                "train",
                str(store12),
                "--features",
                ",".join(FEATURES),
                "--model",
                "baseline",
                "--fusion",
                "proposed",
                "--preset",
                "dcase2021",
                "--threads",
                "1",
                "--val-fraction",
                "0.3",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    return run_dir


def test_the_recipe_trains_on_frames_with_the_official_split(recipe_run, store12):
    record = json.loads((recipe_run / "run.json").read_text())
    assert {k: record["protocol"][k] for k in ("rows", "segment", "clip")} == {
        "rows": "frames",
        "segment": "frame-pick",
        "clip": "sum-log-softmax",
    }
    assert record["system"]["temperature"] is False and record["validation"]["temperature"] is None
    roles = {row["clip_id"]: row["role"] for row in read_csv(recipe_run / "split.csv")}
    train = clip_frames(store12, "train")
    expected_val = official_split(
        [(c, scene) for c, (scene, _) in train.items()], val_fraction=0.3
    )
    assert {c for c, r in roles.items() if r == "validation"} == expected_val and expected_val
    assert set(roles) == set(train)
    assert record["split"]["method"] == "dcase2021"
    training_frames = np.concatenate([train[c][1] for c in train if roles[c] == "train"])
    assert (
        record["training"]["n_frames"]
        == len(training_frames)
        == 16 * (len(train) - len(expected_val))
    )
    bundle, _ = runs.load_run(recipe_run)
    model = bundle["estimator"]
    assert type(model).__name__ == "NormalisedClassifier"
    np.testing.assert_allclose(
        model.mean_, training_frames.astype(np.float64).mean(axis=0), rtol=1e-9
    )
    np.testing.assert_allclose(
        model.scale_, training_frames.astype(np.float64).std(axis=0), rtol=1e-9
    )
    assert set(record["protocol"]["normalisation"]) == set(FEATURES)
    fusion = model.estimator_
    for branch in fusion.branches_:
        params = branch.get_params()
        assert {
            k: params[k]
            for k in (
                "max_epochs",
                "batch_size",
                "learning_rate",
                "weight_decay",
                "drop_last",
                "standardize",
                "val_loss",
                "ties",
                "hidden",
                "dropout",
            )
        } == {
            "max_epochs": 199,
            "batch_size": 64,
            "learning_rate": 1e-4,
            "weight_decay": 1e-4,
            "drop_last": True,
            "standardize": False,
            "val_loss": "batches",
            "ties": "last",
            "hidden": (512, 128, 64),
            "dropout": 0.2,
        }
        losses = [h["val_loss"] for h in branch.history_]
        assert len(losses) == 199
        assert branch.best_epoch_ == max(i for i, v in enumerate(losses) if v == min(losses)) + 1
    assert len(fusion.history_) == 99 and fusion.get_params()["ties"] == "last"


def expected_scores(run_dir, store_path, fold):
    """test_DCASE.py and test.py re-stated on the run's own per-frame probabilities."""
    bundle, _ = runs.load_run(run_dir)
    segments, clips = [], []
    for clip_id, (scene, frames) in clip_frames(store_path, fold).items():  # store order
        proba = bundle["estimator"].predict_proba(frames)
        picks = [int(j) for j in np.linspace(0, len(frames), int(SECONDS), endpoint=False)]
        segments += [(clip_id, k, scene, proba[j]) for k, j in enumerate(picks)]
        clips.append((clip_id, scene, proba.mean(axis=0), int(np.argmax(np.log(proba).sum(0)))))
    return segments, clips, [str(c) for c in bundle["estimator"].classes_]


def macro(values_by_class):
    return float(np.mean([np.mean(v) for v in values_by_class.values()]))


def test_evaluate_and_predict_apply_the_recorded_protocol(recipe_run, store12, tmp_path, capsys):
    status, stdout, _ = run_cli(
        ["evaluate", recipe_run, store12, "--bootstrap", "50", "--json"], capsys
    )
    assert status == 0
    report = json.loads(stdout)
    segments, clips, classes = expected_scores(recipe_run, store12, "evaluate")
    assert report["segment"]["n"] == len(segments) == 2 * len(clips)
    assert report["protocol"]["segment"] == "frame-pick"
    losses, correct = {}, {}
    for _, _, scene, p in segments:
        k = classes.index(scene)
        losses.setdefault(scene, []).append(-np.log(np.clip(p[k], 1e-15, 1)))
        correct.setdefault(scene, []).append(float(np.argmax(p) == k))
    assert report["segment"]["log_loss"] == pytest.approx(macro(losses), rel=1e-6)
    assert report["segment"]["accuracy"] == pytest.approx(macro(correct))
    clip_losses, clip_correct = {}, {}
    for _, scene, p, pred in clips:
        k = classes.index(scene)
        clip_losses.setdefault(scene, []).append(-np.log(np.clip(p[k], 1e-15, 1)))
        clip_correct.setdefault(scene, []).append(float(pred == k))
    assert report["clip"]["log_loss"] == pytest.approx(macro(clip_losses), rel=1e-6)
    assert report["clip"]["accuracy"] == pytest.approx(macro(clip_correct))

    out = tmp_path / "out.csv"
    status, _, _ = run_cli(
        ["predict", recipe_run, store12, "--fold", "evaluate", "--out", out], capsys
    )
    assert status == 0
    rows = read_csv(out, delimiter="\t")
    assert [r["filename"] for r in rows] == [f"{c}_{k}.wav" for c, k, _, _ in segments]
    for row, (_, _, _, p) in zip(rows, segments):
        found = [float(row[c]) for c in classes]
        np.testing.assert_allclose(found, p, rtol=1e-8, atol=1e-12)
        assert sum(float(row[c]) for c in SCENES) == pytest.approx(1.0)

    status, _, _ = run_cli(["report", recipe_run, "--out", tmp_path / "report.md"], capsys)
    text = (tmp_path / "report.md").read_text()
    assert status == 0 and "the k-th picked frame" in text and "Test protocols" in text


@pytest.mark.parametrize("fusion", ["none", "early"])
def test_given_mean_std_files_normalise_the_recipe(fusion, store12, tmp_path, capsys):
    rng = np.random.default_rng(5)
    mean = rng.normal(size=12)
    np.savez(tmp_path / "audio.npz", global_mean=mean, global_std=np.float64(3.0))
    features = ["openl3_audio"] if fusion == "none" else list(FEATURES)
    run_dir = tmp_path / "run"
    status, stdout, _ = run_cli(
        [
            "train",
            store12,
            "--features",
            ",".join(features),
            "--model",
            "baseline",
            "--fusion",
            fusion,
            "--preset",
            "dcase2021",
            "--mean-std",
            f"audio={tmp_path / 'audio.npz'}",
            "--out",
            run_dir,
            "--json",
        ],
        capsys,
    )
    assert status == 0
    record = json.loads(stdout)
    given = record["protocol"]["normalisation"]["openl3_audio"]
    assert (
        given["source"] == "given"
        and given["sha256"] == hashlib.sha256((tmp_path / "audio.npz").read_bytes()).hexdigest()
    )
    model = runs.load_run(run_dir)[0]["estimator"]
    expected_mean, expected_std = mean, np.full(12, 3.0)
    if fusion == "early":  # video: the statistics of the training frames
        assert record["protocol"]["normalisation"]["openl3_video"]["source"] == "training frames"
        roles = {r["clip_id"]: r["role"] for r in read_csv(run_dir / "split.csv")}
        video = np.concatenate(
            [
                x[:, 12:]
                for c, (_, x) in clip_frames(store12, "train").items()
                if roles[c] == "train"
            ]
        ).astype(np.float64)
        expected_mean = np.concatenate([mean, video.mean(axis=0)])
        expected_std = np.concatenate([expected_std, video.std(axis=0)])
        assert model.estimator_.n_features_in_ == 24 and len(model.estimator_.history_) == 199
    np.testing.assert_allclose(model.mean_, expected_mean, rtol=1e-9)
    np.testing.assert_allclose(model.scale_, expected_std, rtol=1e-9)
    frames = clip_frames(store12, "evaluate", features)
    X = next(iter(frames.values()))[1]
    np.testing.assert_allclose(
        model.predict_proba(X),
        model.estimator_.predict_proba(((X - expected_mean) / expected_std).astype(np.float32)),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"global_mean": np.zeros((3, 12)), "global_std": np.ones(12)},
            "global_mean has shape (3, 12)",
        ),
        ({"global_mean": np.zeros(12)}, "no array 'global_std'"),
        ({"global_mean": np.zeros(12), "global_std": np.zeros(12)}, "finite and > 0"),
    ],
)
def test_bad_mean_std_files_fail_with_one_line(arrays, message, store12, tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", **arrays)
    status, _, err = run_cli(
        [
            "train",
            store12,
            "--features",
            "openl3_audio",
            "--model",
            "baseline",
            "--preset",
            "dcase2021",
            "--mean-std",
            f"openl3_audio={tmp_path / 'bad.npz'}",
            "--out",
            tmp_path / "r",
        ],
        capsys,
    )
    assert status == 2 and len(err) == 1 and message in err[0] and "bad.npz" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--model", "lr", "--preset", "dcase2021"],
            "--preset dcase2021 is the DCASE 2021 baseline",
        ),
        (["--model", "baseline", "--fusion", "late", "--preset", "dcase2021"], "fusion late"),
        (["--model", "lr", "--mean-std", "audio=x.npz"], "--mean-std normalises the dcase2021"),
        (["--model", "baseline", "--preset", "dcase2021", "--dask-local", "1"], "without --dask"),
    ],
)
def test_recipe_option_errors_are_one_line(options, message, store12, tmp_path, capsys):
    status, _, err = run_cli(
        [
            "train",
            store12,
            "--features",
            "openl3_audio,openl3_video",
            "--fusion",
            "early",
            *options,
            "--out",
            tmp_path / "r",
        ],
        capsys,
    )
    assert status == 2 and len(err) == 1 and message in err[0]


def test_video_sampled_at_other_times_is_refused_by_the_recipe(tmp_path, capsys):
    store = frame_store(
        tmp_path / "fps.zarr",
        dim=4,
        train_clips=3,
        eval_clips=0,
        video_times=(np.arange(20) + 0.5) / 10,
    )
    status, _, err = run_cli(
        [
            "train",
            store,
            "--features",
            ",".join(FEATURES),
            "--model",
            "baseline",
            "--fusion",
            "early",
            "--preset",
            "dcase2021",
            "--out",
            tmp_path / "r",
        ],
        capsys,
    )
    assert status == 2 and len(err) == 1 and "--video-frames per-audio-window" in err[0]


# -- the official checkpoints as runs -----------------------------------------------------


def random_checkpoints(folder):
    parts = {
        "audio": official.L3Dense(512),
        "video": official.L3Dense(512),
        "early": official.L3Dense(1024),
        "head": official.L3Combine(256),
    }
    paths = {}
    for seed, (name, module) in enumerate(parts.items()):
        paths[name] = folder / f"{name}.pt"
        torch.save(official.random_state(module, seed=seed).state_dict(), paths[name])
    return paths


def real_checkpoints():
    return {
        "audio": BASELINE / "audio_l3_dense.pt",
        "video": BASELINE / "video_l3_dense.pt",
        "early": BASELINE / "early_av_l3_dense.pt",
        "head": BASELINE / "proposed_combine_head.pt",
    }


SYSTEMS = {
    "none": (["openl3_audio"], ["audio"]),
    "early": (list(FEATURES), ["early"]),
    "proposed": (list(FEATURES), ["audio", "video", "head"]),
}


def official_proba(fusion, paths, normalised):
    """The baseline's modules, loaded with the same files, on normalised (audio, video) frames."""
    if fusion == "none":
        return official.l3_dense_proba(
            official.load(official.L3Dense(512), paths["audio"]), normalised[:, :512]
        )
    if fusion == "early":
        return official.l3_dense_proba(
            official.load(official.L3Dense(1024), paths["early"]), normalised
        )
    return official.proposed_proba(
        official.load(official.L3Dense(512), paths["audio"]),
        official.load(official.L3Dense(512), paths["video"]),
        official.load(official.L3Combine(256), paths["head"]),
        normalised[:, :512],
        normalised[:, 512:],
    )


@pytest.mark.parametrize(
    "source", ["random", pytest.param("real", marks=pytest.mark.needs_reference(BASELINE))]
)
@pytest.mark.parametrize("fusion", list(SYSTEMS))
@pytest.mark.parametrize("given", [True, False], ids=["mean-std", "training-frames"])
def test_checkpoint_runs_give_the_official_modules_probabilities(
    source, fusion, given, store512, tmp_path, capsys
):
    paths = random_checkpoints(tmp_path) if source == "random" else real_checkpoints()
    features, parts = SYSTEMS[fusion]
    rng = np.random.default_rng(3)
    stats = {f: (rng.normal(2.0, 0.3, 512), rng.uniform(1.0, 2.0, 512)) for f in FEATURES}
    options = []
    if given:
        for feature in features:
            np.savez(
                tmp_path / f"{feature}.npz",
                global_mean=stats[feature][0],
                global_std=stats[feature][1],
            )
        options = ["--mean-std", ",".join(f"{f}={tmp_path / f'{f}.npz'}" for f in features)]
    run_dir = tmp_path / "run"
    status, stdout, err = run_cli(
        [
            "train",
            store512,
            "--features",
            ",".join(features),
            "--model",
            "baseline",
            "--fusion",
            fusion,
            "--from-checkpoint",
            ",".join(str(paths[p]) for p in parts),
            *options,
            "--out",
            run_dir,
        ],
        capsys,
    )
    assert status == 0, err
    assert stdout.startswith("imported baseline")
    record = runs.load_record(run_dir)
    assert [c["sha256"] for c in record["checkpoints"]] == [
        hashlib.sha256(paths[p].read_bytes()).hexdigest() for p in parts
    ]
    assert record["system"]["preset"] == "dcase2021" and record["protocol"]["rows"] == "frames"
    model = runs.load_run(run_dir)[0]["estimator"]
    assert list(model.classes_) == list(SCENES)
    if given:
        mean = np.concatenate([stats[f][0] for f in features])
        std = np.concatenate([stats[f][1] for f in features])
    else:
        roles = {r["clip_id"]: r["role"] for r in read_csv(run_dir / "split.csv")}
        train = clip_frames(store512, "train", features)
        frames = np.concatenate([x for c, (_, x) in train.items() if roles[c] == "train"])
        mean, std = frames.astype(np.float64).mean(0), frames.astype(np.float64).std(0)
        np.testing.assert_allclose(model.mean_, mean, rtol=1e-9)
        np.testing.assert_allclose(model.scale_, std, rtol=1e-9)

    out = tmp_path / "out.csv"
    assert (
        cli.main(["predict", str(run_dir), str(store512), "--fold", "evaluate", "--out", str(out)])
        == 0
    )
    rows = read_csv(out, delimiter="\t")
    evaluate_frames = list(clip_frames(store512, "evaluate", features).items())  # store order
    for index, (clip_id, (_, frames)) in enumerate(evaluate_frames):
        normalised = ((frames - mean) / std).astype(np.float32)
        expected = official_proba(fusion, paths, normalised)
        np.testing.assert_allclose(model.predict_proba(frames), expected, rtol=1e-4, atol=1e-6)
        picks = [int(j) for j in np.linspace(0, len(frames), 2, endpoint=False)]
        for k, j in enumerate(picks):
            row = rows[2 * index + k]
            assert row["filename"] == f"{clip_id}_{k}.wav"
            np.testing.assert_allclose(
                [float(row[c]) for c in SCENES], expected[j], rtol=1e-4, atol=1e-6
            )
    assert cli.main(["evaluate", str(run_dir), str(store512), "--bootstrap", "0"]) == 0


def test_bad_checkpoints_fail_with_one_line_naming_the_file(store512, tmp_path, capsys):
    good = official.L3Dense(512).state_dict()
    torch.save(official.L3Dense(256).state_dict(), tmp_path / "narrow.pt")
    torch.save({k: v for k, v in good.items() if k != "model.8.weight"}, tmp_path / "missing.pt")
    torch.save({**good, "extra": torch.zeros(1)}, tmp_path / "extra.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("hello\n")
    torch.save(good, tmp_path / "good.pt")
    cases = [
        ("narrow.pt", "model.0.weight has shape (512, 256)"),
        ("missing.pt", "key 'model.8.weight' is missing"),
        ("extra.pt", "unexpected key 'extra'"),
        ("list.pt", "not a state dict"),
        ("text.pt", "not a PyTorch checkpoint"),
        ("absent.pt", "no such checkpoint file"),
    ]
    for name, message in cases:
        status, _, err = run_cli(
            [
                "train",
                store512,
                "--features",
                "openl3_audio",
                "--model",
                "baseline",
                "--from-checkpoint",
                tmp_path / name,
                "--out",
                tmp_path / "r",
            ],
            capsys,
        )
        assert status == 2 and len(err) == 1, (name, err)
        assert message in err[0] and str(tmp_path / name) in err[0], (name, err)
    status, _, err = run_cli(
        [
            "train",
            store512,
            "--features",
            ",".join(FEATURES),
            "--model",
            "baseline",
            "--fusion",
            "proposed",
            "--from-checkpoint",
            f"{tmp_path / 'good.pt'},{tmp_path / 'good.pt'}",
            "--out",
            tmp_path / "r",
        ],
        capsys,
    )
    assert status == 2 and len(err) == 1 and "needs 3 checkpoints" in err[0]
    assert not (tmp_path / "r").exists()


# -- split files ---------------------------------------------------------------------------


def test_train_uses_a_clip_role_file_and_records_it(store12, tmp_path, capsys):
    train = sorted(clip_frames(store12, "train"))
    chosen = set(train[::5])
    split = tmp_path / "mine.csv"
    split.write_text(
        "clip_id,role\n"
        + "".join(f"{c},{'validation' if c in chosen else 'train'}\n" for c in train)
    )
    run_dir = tmp_path / "run"
    status, stdout, _ = run_cli(
        [
            "train",
            store12,
            "--features",
            "openl3_audio",
            "--preset",
            "fast",
            "--split",
            split,
            "--out",
            run_dir,
            "--json",
        ],
        capsys,
    )
    assert status == 0
    record = json.loads(stdout)
    assert record["split"]["method"] == "file" and record["split"]["format"] == "clip_id,role"
    assert record["validation"]["n_clips"] == len(chosen)
    assert {r["clip_id"]: r["role"] for r in read_csv(run_dir / "split.csv")} == {
        r["clip_id"]: r["role"] for r in read_csv(split)
    }
    assert record["protocol"]["rows"] == "segments"


def test_train_uses_the_baselines_val_csv(store12, tmp_path, capsys):
    train = sorted(clip_frames(store12, "train"))
    chosen = train[1::4]
    val = tmp_path / "val.csv"
    val.write_text(
        "filename_audio,filename_video,scene_label,location_id\n"
        + "".join(
            f"audio/{c}.wav,video/{c}.mp4,{c.split('-')[0]},{c.split('-')[2]}\n" for c in chosen
        )
    )
    run_dir = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                str(store12),
                "--features",
                "openl3_audio",
                "--preset",
                "fast",
                "--split",
                str(val),
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    roles = {r["clip_id"]: r["role"] for r in read_csv(run_dir / "split.csv")}
    assert {c for c, r in roles.items() if r == "validation"} == set(chosen)
    assert {c for c, r in roles.items() if r == "train"} == set(train) - set(chosen)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "clip_id,role\nnot-a-clip,validation\nalso-not,train\nnor-this,train\nnope,train\n",
            "4 clips are not in the store: also-not, nope, nor-this, ...",
        ),
        ("clip_id,role\n{first},holdout\n", "role 'holdout'"),
        ("clip_id,role\n{first},train\n{first},validation\n", "given both roles"),
        ("clip_id,role\n{first},train\n", "gives no role to"),
        ("clip_id,role\n{evaluate},validation\n", "not in fold 'train'"),
        ("name,kind\nx,y\n", "are neither clip_id,role nor"),
        (
            "filename_audio,filename_video,scene_label,location_id\n{all_official}",
            "a file in the baseline's format is its validation list",
        ),
    ],
)
def test_bad_split_files_fail_with_one_line(content, message, store12, tmp_path, capsys):
    train = sorted(clip_frames(store12, "train"))
    evaluate = sorted(clip_frames(store12, "evaluate"))
    split = tmp_path / "split.csv"
    split.write_text(
        content.format(
            first=train[0],
            evaluate=evaluate[0],
            all_official="".join(f"audio/{c}.wav,video/{c}.mp4,x,1\n" for c in train),
        )
    )
    status, _, err = run_cli(
        [
            "train",
            store12,
            "--features",
            "openl3_audio",
            "--preset",
            "fast",
            "--split",
            split,
            "--out",
            tmp_path / "r",
        ],
        capsys,
    )
    assert status == 2 and len(err) == 1 and message in err[0] and str(split) in err[0], err


def test_split_location_is_the_split_train_makes_by_default(store12, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                str(store12),
                "--features",
                "openl3_audio",
                "--model",
                "lr",
                "--preset",
                "fast",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    status, _, _ = run_cli(
        ["split", store12, "--method", "location", "--out", tmp_path / "split.csv"], capsys
    )
    assert status == 0
    written = {r["clip_id"]: r["role"] for r in read_csv(tmp_path / "split.csv")}
    assert written == {r["clip_id"]: r["role"] for r in read_csv(run_dir / "split.csv")}
    assert "validation" in written.values()
    record = runs.load_record(run_dir)
    assert record["split"]["method"] == "location" and record["protocol"]["rows"] == "segments"
