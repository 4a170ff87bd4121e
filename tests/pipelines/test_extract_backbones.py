"""One ``avscene extract`` run writes OpenL3, log-mel, a torchvision backbone, CLIP, PANNs CNN14
and a HEAR module into one store (RANDOM weights); it resumes, shards, shows each feature's
provenance in ``avscene info``, and a late fusion of two of the new features trains and
evaluates.

The numbers of each backbone are checked against their reference implementations in
``tests/featurestore/test_backbones_parity.py``; here the stored rows are checked against the
extractors called directly on the files, and the sharded store against the unsharded one.
"""

import contextlib
import io
import json

import numpy as np
import pytest

from featurestore.extraction import Plan, plan_extractors
from featurestore.extraction.prepare import prepare_clip
from featurestore.store import FeatureStore
from featurestore.synth import synth_corpus
from pipelines.commands import cli

FEATURES = [
    "openl3_audio",
    "openl3_video",
    "efficientnet_b0",
    "clip_vit_b32",
    "panns_cnn14",
    "hear:tests.hear_module",
]
STORED = [
    "openl3_audio",
    "openl3_video",
    "efficientnet_b0",
    "clip_vit_b32",
    "panns_cnn14",
    "hear-tests.hear_module",
]
OPTIONS = [
    "--features",
    ",".join(FEATURES),
    "--random-weights",
    "5",
    "--hop",
    "1",
    "--no-center",
    "--fps",
    "1",
    "--device",
    "cpu",
    "--progress",
    "log",
    "--batch",
    "8",
]


def run(argv):
    args = cli.build_parser().parse_args([str(a) for a in argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.run(args)
    text = out.getvalue()
    return status, (json.loads(text) if text.strip().startswith("{") else text)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth_corpus(
        out,
        clips_per_class=2,
        seconds=2.0,
        size=(256, 224),
        fps=10,
        seed=4,
        classes=("airport", "bus", "park"),
        workers=1,
    )
    return out / "development"


@pytest.fixture(scope="module")
def store(corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("stores") / "all.zarr"
    status, summary = run(["extract", corpus, path, *OPTIONS, "--workers", "1", "--json"])
    assert status == 0, summary
    return path, summary


def test_one_run_writes_every_kind_of_feature(store, corpus):
    path, summary = store
    assert summary["features"] == STORED and summary["done"] == 6
    with FeatureStore.open(path, mode="r") as opened:
        assert set(opened.features) == set(STORED)
        for name in STORED[:-1]:
            assert opened.feature_params(name)["model"]["random_weights"] == 5, name
        # rows of each feature equal its extractor run directly on the clip
        extractors = plan_extractors(
            Plan(features=tuple(FEATURES), hop=1.0, center=False, fps=1.0), random_weights=5
        )
        clip = opened.clips.records()[0]
        prepared = prepare_clip(clip, corpus, Plan(hop=1.0, center=False, fps=1.0), extractors)
        assert not prepared.failures
        for extractor in extractors:
            embed = extractor.load(device="cpu", batch=8)
            out = embed([prepared.inputs[extractor.name].items])
            if isinstance(out, list):
                ((values, stamps),) = out
            else:
                values, stamps = out, prepared.inputs[extractor.name].timestamps
            got, got_stamps = opened.frames(extractor.name, clip.clip_id)
            np.testing.assert_allclose(got_stamps, stamps, atol=1e-9)
            scale = max(1.0, float(np.abs(values).max()))
            np.testing.assert_allclose(
                got, values, rtol=1e-5, atol=1e-5 * scale, err_msg=extractor.name
            )
        # one clock: the windowed audio features share timestamps, the video features too
        for clip_id in opened.clips.clip_id[:3]:
            audio = opened.frames("openl3_audio", str(clip_id))[1]
            np.testing.assert_array_equal(opened.frames("panns_cnn14", str(clip_id))[1], audio)
            video = opened.frames("openl3_video", str(clip_id))[1]
            for name in ("efficientnet_b0", "clip_vit_b32"):
                np.testing.assert_array_equal(opened.frames(name, str(clip_id))[1], video)


def test_rerun_resumes_and_shards_fill_the_same_store(store, corpus, tmp_path):
    path, _ = store
    status, again = run(["extract", corpus, path, *OPTIONS, "--workers", "0", "--json"])
    assert status == 0 and again["done"] == 0 and again["committed_in_scope"] == 6
    sharded = tmp_path / "sharded.zarr"
    FeatureStore.open(sharded, mode="w-", block_clips=2).close()
    assert run(["extract", corpus, sharded, *OPTIONS, "--prepare-only", "--json"])[0] == 0
    done = 0
    for index in range(2):
        status, part = run(
            [
                "extract",
                corpus,
                sharded,
                *OPTIONS,
                "--shard",
                f"{index}/2",
                "--workers",
                "0",
                "--json",
            ]
        )
        assert status == 0
        done += part["done"]
    assert done == 6
    with FeatureStore.open(path, mode="r") as a, FeatureStore.open(sharded, mode="r") as b:
        for name in STORED:
            assert a.feature_fingerprint(name) == b.feature_fingerprint(name)
            for clip_id in a.clips.clip_id:  # other batches: equal up to float rounding
                x, y = a.frames(name, str(clip_id)), b.frames(name, str(clip_id))
                np.testing.assert_array_equal(x[1], y[1])
                np.testing.assert_allclose(
                    x[0], y[0], rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(x[0]).max()))
                )


def test_info_shows_each_extractors_provenance(store):
    path, _ = store
    status, info = run(["info", path, "--json"])
    assert status == 0
    params = {name: info["features"][name]["params"] for name in STORED}
    assert params["efficientnet_b0"]["model"]["weight_set"] == "IMAGENET1K_V1"
    assert params["clip_vit_b32"]["preprocessing"]["interpolation"] == "bicubic"
    assert params["panns_cnn14"]["frontend"]["fmax"] == 14000.0
    assert params["hear-tests.hear_module"]["module_version"] == "0.3"
    status, text = run(["info", path])
    assert "RANDOM" not in text and '"random_weights": 5' in text


def test_late_fusion_of_clip_and_cnn14_trains_and_evaluates(store, tmp_path):
    path, _ = store
    run_dir = tmp_path / "run"
    status = cli.main(
        [
            "train",
            str(path),
            "--features",
            "clip_vit_b32,panns_cnn14",
            "--model",
            "clip=mlp,cnn14=lr",
            "--fusion",
            "late",
            "--preset",
            "fast",
            "--val-fraction",
            "0",
            "--no-temperature",
            "--threads",
            "1",
            "--out",
            str(run_dir),
        ]
    )
    assert status == 0
    status, report = run(["evaluate", run_dir, path, "--bootstrap", "20", "--json"])
    assert status == 0
    segment = report["segment"]
    assert np.isfinite(segment["log_loss"]) and 0 <= segment["accuracy"] <= 1
    record = json.loads((run_dir / "run.json").read_text())
    assert record["system"]["features"] == ["clip_vit_b32", "panns_cnn14"]
    assert record["system"]["models"] == {"clip_vit_b32": "mlp", "panns_cnn14": "lr"}


def test_weights_option_names_each_features_file():
    parser = cli.build_parser()
    args = parser.parse_args(
        ["extract", "r", "s", "--weights", "/w/openl3,resnet50=/w/r.pth,hear:pkg.mod=/w/h.npy"]
    )
    assert args.weights == {None: "/w/openl3", "resnet50": "/w/r.pth", "hear:pkg.mod": "/w/h.npy"}
    for bad in ("resnet50=/a,resnet50=/b", "/a,/b", "resnet51=/a", "resnet50="):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["extract", "r", "s", "--weights", bad])
        assert exited.value.code == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["extract", "r", "s", "--features", "openl3_audio,resnet51"])


def test_a_backbone_without_weights_is_bad_usage(corpus, tmp_path, capsys):
    status = cli.main(
        ["extract", str(corpus), str(tmp_path / "s"), "--features", "resnet50", "--device", "cpu"]
    )
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resnet50: no weights; avscene never downloads" in err[0]
    assert not (tmp_path / "s").exists()


def test_a_wrong_weight_file_is_bad_usage(corpus, tmp_path, capsys):
    import torch

    wrong = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(2, 8)}, wrong)
    status = cli.main(
        [
            "extract",
            str(corpus),
            str(tmp_path / "s"),
            "--features",
            "resnet50",
            "--weights",
            f"resnet50={wrong}",
            "--device",
            "cpu",
        ]
    )
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not torchvision resnet50 weights" in err[0]
