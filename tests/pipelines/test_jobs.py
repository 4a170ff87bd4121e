"""The jobs of :mod:`pipelines.jobs` called directly, without argparse: typed inputs in, records out.

Each job is given its inputs as Python values (a :class:`TrainSpec`, keyword arguments), and
must return what it wrote (the run record, the report, a summary) and print nothing: printing
and exit statuses belong to :mod:`pipelines.commands`.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from featurestore.errors import RunFormatError, UsageError
from featurestore.store import FeatureStore
from pipelines.commands import cli
from pipelines.commands import train as train_command
from pipelines.jobs import (
    dask_training,
    demo_run,
    evaluation,
    pooled_segments,
    prediction,
    reporting,
    runs,
    split_files,
    training,
)
from pipelines.jobs.training import TrainSpec
from tests.pipelines.test_train import build_store

pytestmark = pytest.mark.usefixtures("single_thread")

AUDIO, VIDEO = "openl3_audio", "openl3_video"


def as_json(document):
    """``document`` as it reads back from a JSON file."""
    return json.loads(json.dumps(document, default=runs.jsonable))


def assert_silent(capsys):
    captured = capsys.readouterr()
    assert captured.out == "", captured.out


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store") / "features.zarr")[0]


@pytest.fixture(scope="module")
def run_dir(store_path, tmp_path_factory):
    """One run trained by the job (late fusion of both features) for the module."""
    out = tmp_path_factory.mktemp("runs") / "late"
    training.train(
        TrainSpec(
            store=str(store_path),
            features=(AUDIO, VIDEO),
            out=out,
            fusion="late",
            preset="fast",
            threads=1,
            command="test",
        )
    )
    return out


def test_train_returns_the_record_it_writes_and_prints_nothing(store_path, tmp_path, capsys):
    capsys.readouterr()
    spec = TrainSpec(
        store=str(store_path),
        features=[AUDIO],
        out=tmp_path / "run",
        model="lr",
        preset="fast",
        seed=3,
        threads=1,
        command="avscene train (test)",
    )
    record = training.train(spec)
    assert_silent(capsys)
    assert as_json(record) == json.loads((tmp_path / "run" / runs.RECORD_FILE).read_text())
    assert record["command"] == "avscene train (test)"
    assert record["system"]["features"] == [AUDIO] and record["system"]["seed"] == 3
    assert record["system"]["temperature"] is True and record["validation"]["n_clips"] > 0
    lines = (tmp_path / "run" / training.SPLIT_FILE).read_text().splitlines()
    assert lines[0] == "clip_id,role"
    assert len(lines) - 1 == record["training"]["n_clips"] + record["validation"]["n_clips"]
    bundle, _ = runs.load_run(tmp_path / "run")
    assert bundle["features"] == [AUDIO] and bundle["pooling"] == "mean"


def test_the_command_prints_the_record_of_the_same_job(store_path, tmp_path, capsys):
    spec = TrainSpec(
        store=str(store_path),
        features=(AUDIO,),
        out=tmp_path / "job",
        preset="fast",
        temperature=False,
        threads=1,
    )
    record = as_json(training.train(spec))
    capsys.readouterr()
    status = cli.main(
        [
            "train",
            str(store_path),
            "--features",
            AUDIO,
            "--preset",
            "fast",
            "--no-temperature",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "cli"),
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert status == 0
    varying = ("created", "timings", "command")
    assert {k: v for k, v in printed.items() if k not in varying} == {
        k: v for k, v in record.items() if k not in varying
    }
    assert record["system"]["temperature"] is False


def test_the_command_builds_the_spec_from_every_option():
    args = cli.build_parser().parse_args(
        [
            "train",
            "s.zarr",
            "--features",
            f"{AUDIO},{VIDEO}",
            "--model",
            "video=lgbm,audio=lr",
            "--fusion",
            "early",
            "--preset",
            "small",
            "--pooling",
            "max",
            "--train-fold",
            "dev",
            "--val-fraction",
            "0.2",
            "--split",
            "split.csv",
            "--mean-std",
            "audio=a.npz",
            "--no-temperature",
            "--seed",
            "4",
            "--threads",
            "2",
            "--out",
            "r",
            "--overwrite",
            "--dask-local",
            "3",
        ]
    )
    spec = train_command.train_spec(args)
    assert spec == TrainSpec(
        store="s.zarr",
        features=(AUDIO, VIDEO),
        out="r",
        model="video=lgbm,audio=lr",
        fusion="early",
        preset="small",
        pooling="max",
        train_fold="dev",
        val_fraction=0.2,
        split="split.csv",
        from_checkpoint=None,
        mean_std=(("audio", "a.npz"),),
        temperature=False,
        seed=4,
        threads=2,
        overwrite=True,
        dask=None,
        dask_local=3,
        command=spec.command,
    )
    assert spec.uses_dask


def test_a_spec_is_frozen_and_keyword_only(tmp_path):
    spec = TrainSpec(store="s", features=[AUDIO], out=tmp_path)
    assert spec.features == (AUDIO,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.preset = "paper"
    with pytest.raises(TypeError):
        TrainSpec("s", (AUDIO,), tmp_path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mean_std": (("audio", "m.npz"),)}, "--mean-std normalises the dcase2021 recipe"),
        ({"dask_local": 1, "split": "split.csv"}, "--dask trains avscene's segment systems"),
        ({"model": "knn"}, "unknown model 'knn'"),
        ({"from_checkpoint": ("a.pt",), "model": "lr"}, "--from-checkpoint loads the baseline's"),
    ],
)
def test_check_spec_refuses_what_does_not_go_together(changes, message, tmp_path):
    spec = TrainSpec(store="s", features=(AUDIO,), out=tmp_path, **changes)
    with pytest.raises(RunFormatError, match=message):
        training.check_spec(spec)


def test_a_checkpoint_spec_trains_under_the_recipe_preset(tmp_path):
    spec = TrainSpec(
        store="s", features=(AUDIO,), out=tmp_path, model="baseline", from_checkpoint=("audio.pt",)
    )
    checked = training.check_spec(spec)
    assert checked.preset == "dcase2021" and spec.preset == "default"
    assert dataclasses.replace(checked, preset="default") == spec


def test_each_training_job_refuses_the_other_ones_spec(store_path, tmp_path):
    with pytest.raises(ValueError, match="dask_training.train"):
        training.train(
            TrainSpec(store=str(store_path), features=(AUDIO,), out=tmp_path, dask_local=1)
        )
    with pytest.raises(ValueError, match="training.train"):
        dask_training.train(TrainSpec(store=str(store_path), features=(AUDIO,), out=tmp_path))
    assert not (tmp_path / runs.RECORD_FILE).exists()


def test_dask_training_returns_the_record_it_writes(store_path, tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        capsys.readouterr()
        record = dask_training.train(
            TrainSpec(
                store=str(store_path),
                features=(AUDIO,),
                out=tmp_path / "run",
                preset="fast",
                threads=1,
                dask=cluster.scheduler_address,
            )
        )
    assert_silent(capsys)
    assert record["dask"]["scheduler"] == cluster.scheduler_address
    assert as_json(record) == json.loads((tmp_path / "run" / runs.RECORD_FILE).read_text())


def test_evaluate_returns_the_report_it_writes(run_dir, store_path, capsys):
    capsys.readouterr()
    report = evaluation.evaluate_run(
        run_dir, str(store_path), fold="evaluate", bootstrap=5, seed=1, threads=1
    )
    assert_silent(capsys)
    assert as_json(report) == json.loads((run_dir / "evaluation-evaluate.json").read_text())
    assert report["bootstrap"]["n"] == 5 and report["fold"] == "evaluate"
    assert all((run_dir / name).is_file() for name in report["plots"].values())
    record = runs.load_record(run_dir)
    assert record["evaluations"]["evaluate"] == as_json(evaluation.summary(report))


def test_predict_returns_a_summary_of_the_file_it_writes(run_dir, store_path, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "out" / "output.csv"
    summary = prediction.predict_run(run_dir, str(store_path), out=out, fold="eval", threads=1)
    assert_silent(capsys)
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == summary["columns"]
    assert summary["rows"] == len(lines) - 1 == summary["clips"] == 12  # 1-s clips
    assert summary["output"] == str(out)


def test_report_returns_its_systems_and_the_best(run_dir, store_path, tmp_path, capsys):
    evaluation.evaluate_run(run_dir, str(store_path), bootstrap=0)
    capsys.readouterr()
    summary = reporting.write_report([run_dir], out=tmp_path / "report.md", title="jobs")
    assert_silent(capsys)
    assert summary["best"] == str(run_dir) and len(summary["systems"]) == 1
    assert (tmp_path / "report.md").read_text().startswith("# jobs\n")
    with pytest.raises(UsageError, match="not evaluated on fold 'dev'"):
        reporting.write_report([run_dir], out=tmp_path / "other.md", fold="dev")


def test_split_returns_a_summary_of_the_file_it_writes(store_path, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "split.csv"
    summary = split_files.write_store_split(
        str(store_path), out=out, method="location", val_fraction=0.2
    )
    assert_silent(capsys)
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    roles = [role for _, role in rows]
    assert summary["seed"] == split_files.DEFAULT_SEEDS["location"]
    assert (summary["clips"], summary["train"], summary["validation"]) == (
        len(rows),
        roles.count("train"),
        roles.count("validation"),
    )
    assert sum(summary["validation_per_scene"].values()) == summary["validation"] > 0
    before = out.read_text()
    with pytest.raises(UsageError, match="exists already"):
        split_files.write_store_split(str(store_path), out=out, method="dcase2021")
    assert out.read_text() == before


def test_segment_jobs_return_what_they_stored(store_path, tmp_path, capsys):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store_path, copy)
    capsys.readouterr()
    done = pooled_segments.write_segments(str(copy), poolings=("mean", "max"), features=[AUDIO])
    again = pooled_segments.store_segments(str(copy), [AUDIO, VIDEO, "absent"], ("mean",))
    assert_silent(capsys)
    assert [(d["feature"], d["pooling"], d["written"]) for d in done] == [
        (AUDIO, "mean", True),
        (AUDIO, "max", True),
    ]
    assert [(d["feature"], d["written"]) for d in again["stored"]] == [
        (AUDIO, False),
        (VIDEO, True),
    ]
    assert again["skipped"] == ["absent"]
    with FeatureStore.open(copy) as store:
        stored = store.segments([AUDIO], pooling="max").X()
        pooled = FeatureStore.open(store_path).segments([AUDIO], pooling="max").X()
    np.testing.assert_array_equal(stored, pooled)


def test_demo_refuses_a_folder_that_is_not_a_demo_before_running_anything(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    ran = []
    with pytest.raises(UsageError, match="is not a demo folder"):
        demo_run.run_demo(
            demo_run.DemoSpec(out=tmp_path),
            run_command=lambda *a, **k: ran.append(a),
            notice=ran.append,
        )
    assert_silent(capsys)
    assert ran == [] and (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "steps, trained, expected",
    [
        ({"synth": 0, "predict": 0}, "all", True),
        ({"synth": 0, "predict": 1}, "all", False),
        ({"synth": 0, "predict": 0}, "one less", False),
    ],
)
def test_demo_succeeds_when_every_step_and_system_worked(steps, trained, expected):
    classes = ("airport", "bus")
    n_systems = len(demo_run.systems(classes)) - (trained == "one less")
    summary = {
        "steps": {
            **{name: {"status": status, "seconds": 0.1} for name, status in steps.items()},
            "train": {"systems": n_systems, "seconds": 1.0},
        }
    }
    assert demo_run.succeeded(summary, classes) is expected
