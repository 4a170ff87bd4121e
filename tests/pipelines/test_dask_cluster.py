"""Extraction and training on a LocalCluster of 2 worker processes with 1 thread each.

Extraction through Dask is compared with the single-process job on the same media (random
OpenL3 weights, synth corpus), also after worker processes are killed mid-run; training through
Dask on lazily read stores is compared with in-memory training, and ``avscene evaluate`` runs
on its run directory. Timing is never asserted.
"""

import contextlib
import functools
import io
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from classifiers.synthetic import make_av_features
from featurestore.datasets import Clip
from featurestore.extraction import dask_job
from featurestore.store import FeatureStore
from featurestore.synth import synth_corpus
from pipelines.commands import cli
from pipelines.commands import extract as extract_command
from pipelines.jobs import runs

FAST = [
    "--random-weights",
    "7",
    "--hop",
    "1.0",
    "--fps",
    "1",
    "--batch",
    "4",
    "--device",
    "cpu",
    "--progress",
    "log",
]


@pytest.fixture(scope="module")
def cluster():
    """Address of a LocalCluster: 2 worker processes, 1 thread each."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Synth development layout: 3 clips of 2 s plus one clip whose media are not media."""
    out = tmp_path_factory.mktemp("synth")
    synth_corpus(
        out,
        clips_per_class=1,
        seconds=2.0,
        size=(256, 224),
        fps=10,
        seed=3,
        eval_clips=0,
        classes=("airport", "bus", "park"),
        workers=1,
    )
    root = out / "development"
    (root / "audio" / "park-milan-1-900.wav").write_bytes(b"RIFF not a wave file")
    (root / "video").mkdir(exist_ok=True)
    (root / "video" / "park-milan-1-900.mp4").write_bytes(b"\x00" * 64)
    with open(root / "meta.csv", "a") as meta:
        meta.write("audio/park-milan-1-900.wav\tvideo/park-milan-1-900.mp4\tpark\tmilan-1\n")
    return root


def extract(root, store, *options):
    """``avscene extract`` in this process: (exit status, JSON summary)."""
    args = cli.build_parser().parse_args(["extract", str(root), str(store), "--json", *options])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.run(args)
    return status, json.loads(out.getvalue())


def new_store(path, block_clips=1):
    FeatureStore.open(path, mode="w", block_clips=block_clips).close()
    return path


def contents(path):
    """Everything a store holds, per clip, after checking its chunks and index."""
    with FeatureStore.open(path) as store:
        assert store.verify() == []
        found = {
            "clips": store.clips.records(),
            "failures": sorted(store.failures()),
            "params": {name: store.feature_params(name) for name in store.features},
            "status": {name: store.status(name).tolist() for name in store.features},
        }
        for name in store.features:
            found[name] = {
                clip_id: store.frames(name, clip_id)
                for clip_id, status in zip(store.clips.clip_id, store.status(name))
                if status == 1
            }
    return found


def assert_same_store(got, want):
    for key in ("clips", "failures", "params", "status"):
        assert got[key] == want[key], key
    for name in want["params"]:
        assert got[name].keys() == want[name].keys()
        for clip_id, (values, stamps) in want[name].items():
            np.testing.assert_array_equal(got[name][clip_id][1], stamps)
            np.testing.assert_allclose(
                got[name][clip_id][0], values, rtol=1e-5, atol=1e-5, err_msg=f"{name} of {clip_id}"
            )


@pytest.mark.parametrize(
    "features",
    [
        "openl3_audio,logmel",
        pytest.param("openl3_audio,openl3_video,logmel", marks=pytest.mark.slow),
    ],
)
def test_extraction_equals_a_single_process_run(features, dataset, cluster, tmp_path):
    options = [*FAST, "--features", features]
    on_dask, alone = new_store(tmp_path / "dask"), new_store(tmp_path / "alone")
    status, summary = extract(dataset, on_dask, *options, "--dask", cluster)
    status_alone, summary_alone = extract(dataset, alone, *options, "--workers", "0")
    assert status == status_alone == 1  # the broken clip failed in both
    assert set(summary) - {"dask"} == set(summary_alone)
    for key in (
        "clips",
        "done",
        "failed",
        "clips_in_scope",
        "registered",
        "committed_in_scope",
        "failed_in_scope",
        "not_applicable",
        "retried",
        "features",
        "params",
        "errors",
    ):
        assert summary[key] == summary_alone[key], key
    assert summary["dask"]["workers"] == 2 and summary["dask"]["tasks"] == 4
    key = lambda failure: (failure["clip_id"], failure["reason"])  # noqa: E731
    assert sorted(summary["failures"], key=key) == sorted(summary_alone["failures"], key=key)
    assert {f["clip_id"] for f in summary["failures"]} == {"park-milan-1-900"}
    assert_same_store(contents(on_dask), contents(alone))
    status, again = extract(dataset, on_dask, *options, "--dask", cluster)
    assert status == 1 and again["done"] == 0 and again["dask"]["tasks"] == 0


def test_retry_failed_resets_in_the_client_and_reruns_on_the_cluster(dataset, cluster, tmp_path):
    options = [*FAST, "--features", "logmel", "--n-mels", "16"]
    store = new_store(tmp_path / "dask")
    status, first = extract(dataset, store, *options, "--dask", cluster)
    assert status == 1 and [f["clip_id"] for f in first["failures"]] == ["park-milan-1-900"]
    status, again = extract(dataset, store, *options, "--dask", cluster, "--retry-failed")
    assert status == 1 and again["retried"] == 1  # the media are still broken
    assert again["dask"]["tasks"] == 1 and again["done"] == 1
    assert again["failures"] == first["failures"]


def kill_once(markers, spec, blocks):
    """Task wrapper: the first attempt at block 0 kills its worker process before extracting,
    the first attempt at block 1 after extracting (before its result reaches the scheduler)."""
    marker = Path(markers) / f"block-{blocks[0]}"
    first = blocks[0] in (0, 1) and not marker.exists()
    if first:
        marker.write_text(str(os.getpid()))
        if blocks[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    result = dask_job.extract_blocks(spec, blocks)
    if first:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def copies(dataset, root, n):
    """A development layout of ``n`` renamed copies of the first synth clip."""
    (root / "audio").mkdir(parents=True)
    (root / "video").mkdir()
    lines = ["filename_audio\tfilename_video\tscene_label\tidentifier"]
    source = sorted((dataset / "audio").glob("airport-*.wav"))[0].stem
    for k in range(n):
        stem = f"airport-lisbon-{k}-{k}"
        shutil.copy(dataset / "audio" / f"{source}.wav", root / "audio" / f"{stem}.wav")
        shutil.copy(dataset / "video" / f"{source}.mp4", root / "video" / f"{stem}.mp4")
        lines.append(f"audio/{stem}.wav\tvideo/{stem}.mp4\tairport\tlisbon-{k}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root


def test_killed_workers_tasks_are_rerun_and_the_store_is_complete(dataset, cluster, tmp_path):
    root = copies(dataset, tmp_path / "dataset", 4)
    options = [*FAST, "--features", "logmel", "--n-mels", "32"]
    killed, alone = new_store(tmp_path / "killed"), new_store(tmp_path / "alone")
    args = cli.build_parser().parse_args(
        ["extract", str(root), str(killed), *options, "--dask", cluster]
    )
    job = extract_command.make_job(args, task=functools.partial(kill_once, str(tmp_path)))
    summary = job.run()
    pids = [int((tmp_path / f"block-{b}").read_text()) for b in (0, 1)]
    for pid in pids:  # both attempts were killed ...
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert summary["failed_in_scope"] == 0 and summary["errors"] == []  # ... and rerun
    assert summary["committed_in_scope"] == summary["done"] == 4
    assert extract(root, alone, *options, "--workers", "0")[0] == 0
    assert_same_store(contents(killed), contents(alone))


def fail_block_one(spec, blocks):
    """Task wrapper: block 1 always raises (a bug, not bad media)."""
    if blocks == [1]:
        raise RuntimeError("decoder exploded")
    return dask_job.extract_blocks(spec, blocks)


def other_dataset(spec, blocks):
    """Task wrapper: the worker sees a different manifest than the client."""
    return dask_job.extract_blocks({**spec, "manifest_checksum": "0" * 64}, blocks)


def dask_extraction(root, store, cluster, task, *options):
    args = cli.build_parser().parse_args(
        [
            "extract",
            str(root),
            str(store),
            *FAST,
            "--features",
            "logmel",
            "--n-mels",
            "16",
            *options,
            "--dask",
            cluster,
        ]
    )
    return extract_command.make_job(args, task=task)


def test_failed_tasks_leave_their_clips_pending_and_exit_1(dataset, cluster, tmp_path):
    from featurestore.errors import AvsceneError

    root = copies(dataset, tmp_path / "dataset", 3)
    summary = dask_extraction(root, new_store(tmp_path / "store"), cluster, fail_block_one).run()
    assert [error["block"] for error in summary["errors"]] == [1]
    assert "decoder exploded" in summary["errors"][0]["reason"]
    assert summary["committed_in_scope"] == 2 and summary["failed_in_scope"] == 1
    with FeatureStore.open(tmp_path / "store") as store:
        assert store.status("logmel").tolist() == [1, 0, 1]
    with pytest.raises(AvsceneError, match="differs from the client"):
        dask_extraction(root, new_store(tmp_path / "other"), cluster, other_dataset).run()


@pytest.mark.parametrize("argv", [["--shard", "0/2"], ["--prepare-only"]])
def test_options_that_do_not_combine_with_dask_exit_2(dataset, tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as stop:  # the usage error, before any work
        cli.main(["extract", str(dataset), str(tmp_path / "s"), "--dask-local", "2", *argv])
    assert stop.value.code == 2 and "do not combine" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit):
        cli.main(["extract", str(dataset), str(tmp_path / "s"), "--dask-local", "0"])
    with pytest.raises(SystemExit):
        cli.main(
            [
                "extract",
                str(dataset),
                str(tmp_path / "s"),
                "--dask-local",
                "2",
                "--dask",
                "tcp://x:1",
            ]
        )


@pytest.mark.slow
def test_dask_local_option_starts_its_own_cluster(dataset, tmp_path):
    status, summary = extract(
        dataset, new_store(tmp_path / "store"), *FAST, "--features", "logmel", "--dask-local", "2"
    )
    assert status == 1 and summary["dask"] == {
        "scheduler": "local",
        "workers": 2,
        "tasks": 4,
        "retries": dask_job.TASK_RETRIES,
    }
    assert summary["committed_in_scope"] == 3


# -- training ------------------------------------------------------------------------------------


def audio_times(duration):
    return np.arange(int(round(duration * 10)) - 4) * 0.1


def video_times(duration):
    return (np.arange(int(duration * 4)) + 0.5) / 4


def write_train_store(path, *, n_clips=80, dim=8, seed=0):
    """10-s clips of structured audio/video features (classifiers.synthetic), folds by location."""
    data = make_av_features(
        n_clips=n_clips,
        segments_per_clip=10,
        dim_audio=dim,
        dim_video=dim,
        locations_per_class=4,
        n_cities=3,
        pair_separation=6.0,
        within_pair_separation=4.0,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    clips, rows = [], {}
    for c in range(n_clips):
        row = 10 * c
        scene, location = str(data["y"][row]), str(data["location"][row])
        number = int(location.rsplit("-", 1)[1])
        clip = Clip(
            clip_id=f"{scene}-{location}-{c}",
            audio=f"audio/{c}.wav",
            video=f"video/{c}.mp4",
            scene=scene,
            city=str(data["city"][row]),
            location=location,
            folds=("evaluate",) if number % 4 == 3 else ("train",),
            duration=10.0,
        )
        clips.append(clip)
        rows[clip.clip_id] = row
    store = FeatureStore.open(path, mode="w", block_clips=8)
    store.add_clips(clips)
    for name, modality, times_of in (
        ("openl3_audio", "audio", audio_times),
        ("openl3_video", "video", video_times),
    ):
        store.create_feature(
            name, dim=dim, frame_rate=10.0, params={"modality": modality}, chunk_mib=0.01
        )
        for block in store.blocks():
            with store.block_writer(name, block) as writer:
                for clip_id in block.clip_ids:
                    times = times_of(10.0)
                    values = data[modality][rows[clip_id] + np.floor(times).astype(int)]
                    noise = 0.3 * rng.standard_normal(values.shape, dtype=np.float32)
                    writer.write(clip_id, values + noise, times)
    store.close()
    return path


@pytest.fixture(scope="module")
def train_store(tmp_path_factory):
    return write_train_store(tmp_path_factory.mktemp("train") / "store")


def run_train(store, out, *options):
    """``avscene train`` (in-memory, or through Dask with ``--dask``); its exit status."""
    return cli.main(
        [
            "-q",
            "train",
            str(store),
            "--out",
            str(out),
            "--preset",
            "fast",
            "--threads",
            "1",
            *options,
        ]
    )


def evaluation_proba(run_dir, store_path):
    bundle, _ = runs.load_run(run_dir)
    with FeatureStore.open(store_path) as store:
        segments = runs.read_segments(store, bundle["features"], fold="evaluate")
        return runs.scene_probabilities(bundle, runs.features_matrix(segments, bundle))[0]


def assert_same_run_layout(run_dir, reference):
    bundle, record = runs.load_run(run_dir)
    want_bundle, want = runs.load_run(reference)
    assert bundle.keys() == want_bundle.keys()
    assert set(record) - {"dask"} == set(want)
    assert record["estimator"] == want["estimator"]
    for key in ("system", "store", "training", "seen_cities"):
        assert record[key] == want[key], key
    assert type(bundle["estimator"].estimator_) is type(want_bundle["estimator"].estimator_)
    return record


@pytest.mark.parametrize("model", ["lgbm", pytest.param("lr", marks=pytest.mark.slow)])
def test_training_through_dask_matches_in_memory_and_evaluates(
    model, train_store, cluster, tmp_path, capsys
):
    options = ["--features", "openl3_audio,openl3_video", "--fusion", "early", "--model", model]
    assert run_train(train_store, tmp_path / "memory", *options) == 0
    assert run_train(train_store, tmp_path / "dask", *options, "--dask", cluster) == 0
    record = assert_same_run_layout(tmp_path / "dask", tmp_path / "memory")
    assert record["dask"]["workers"] == 2 and record["dask"]["chunks"] > 2
    got = evaluation_proba(tmp_path / "dask", train_store)
    want = evaluation_proba(tmp_path / "memory", train_store)
    if model == "lr":  # the same optimum (float64 gradients here, float32 in sklearn)
        np.testing.assert_allclose(got, want, atol=2e-3)
    else:  # data-parallel trees differ from one machine's: same decisions mostly
        assert np.mean(got.argmax(1) == want.argmax(1)) > 0.8
    capsys.readouterr()
    assert (
        cli.main(
            ["evaluate", str(tmp_path / "dask"), str(train_store), "--bootstrap", "20", "--json"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["segment"]["accuracy"] > 0.5


@pytest.mark.parametrize("options", [["--model", "mlp"], ["--fusion", "late"]])
def test_what_dask_does_not_train_is_refused_before_connecting(
    train_store, tmp_path, options, capsys
):
    argv = ["--features", "openl3_audio,openl3_video", "--fusion", "early", "--model", "lr"]
    assert run_train(train_store, tmp_path / "run", *argv, *options, "--dask", "tcp://x:1") == 2
    assert "--dask trains --model lr or lgbm" in capsys.readouterr().err


def test_lightgbm_on_one_partition_equals_in_memory_training(cluster):
    import dask.array as da
    from distributed import Client

    from classifiers.boosting import LightGBMClassifier
    from classifiers.dask_models import DaskLightGBMClassifier

    data = make_av_features(
        n_clips=120,
        segments_per_clip=5,
        dim_audio=6,
        dim_video=6,
        random_state=np.random.default_rng().integers(1000),
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    fit, val = data["location"] != data["location"][0], data["location"] == data["location"][0]
    val |= np.isin(data["location"], np.unique(data["location"])[::5])
    fit &= ~val
    params = {
        "n_components": 8,
        "n_estimators": 60,
        "learning_rate": 0.5,
        "num_leaves": 7,
        "min_child_samples": 5,
        "early_stopping_rounds": 3,
        "random_state": 1,
    }
    want = LightGBMClassifier(**params).fit(
        X[fit], data["y"][fit], eval_set=(X[val], data["y"][val])
    )
    with Client(cluster) as client:
        got = DaskLightGBMClassifier(**params, client=client).fit(
            da.from_array(X[fit], chunks=-1),
            data["y"][fit],
            eval_set=(da.from_array(X[val], chunks=7), data["y"][val]),
        )
    assert got.best_iteration_ == want.best_iteration_ < 60
    np.testing.assert_allclose(got.to_local().predict_proba(X), want.predict_proba(X), atol=1e-6)
