"""Stores over HTTP: a real server on 127.0.0.1 (read-only static files, byte ranges, a delay per
request) serving a store folder and a zip archive; requests are counted. Consolidated metadata
keeps an open at a constant number of requests, and is rewritten after every structural change.
"""

import json

import numpy as np
import pytest
import zarr

from benchmarks.http_server import serve
from featurestore.datasets import SCENES, Clip
from featurestore.errors import RemoteStoreError
from featurestore.store import FeatureStore
from featurestore.store.interchange.archive import pack_store
from featurestore.store.opening import drop_consolidated
from featurestore.store.sizes import measure, recorded
from pipelines.commands import cli
from tests.helpers import audio_like, fill_store, new_store

#: Requests of an open: the root document and one chunk per clip-table column, whatever the
#: number of features (tests/featurestore/test_store_remote.py shows the count).
OPEN_REQUESTS = 13
DELAY = 0.002


def city_clips(seed):
    """Lisbon's clips form the training fold, Lyon's the evaluation fold; 4 scenes."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(48):
        city = "lisbon" if i < 32 else "lyon"
        scene = SCENES[i % 4]
        clips.append(
            Clip(
                clip_id=f"{scene}-{city}-{i}",
                audio=f"audio/{i}.wav",
                video=None,
                scene=scene,
                city=city,
                location=f"{city}-{i % 8}",
                folds=("train",) if city == "lisbon" else ("evaluate",),
                duration=float(rng.choice([3.0, 4.0])),
            )
        )
    return clips


def labelled_like(clip, *, dim, seed):
    """audio_like frames shifted by the clip's scene, so that a classifier has something to
    learn."""
    values, times = audio_like(clip, dim=dim, seed=seed)
    values[:, SCENES.index(clip.scene) % dim] += 3.0
    return values, times


def make_store(where, n_features, clips, seed):
    names = [f"f{i}" for i in range(n_features)]
    store = new_store(
        where, clips, features=[(name, 8, 10.0) for name in names], block_clips=16, chunk_mib=0.01
    )
    for name in names:
        fill_store(store, name, clips, labelled_like, dim=8, seed=seed)
    return store


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    seed = int(np.random.SeedSequence().entropy % 2**31)
    clips = city_clips(seed)
    for n_features in (1, 5):
        store = make_store(root / f"s{n_features}.zarr", n_features, clips, seed)
        store.write_segments(poolings=("mean",))
        pack_store(
            FeatureStore.open(root / f"s{n_features}.zarr"), root / f"s{n_features}.zarr.zip"
        )
    with serve(root, delay=DELAY) as server:
        yield root, server


def open_cost(server, name):
    """Requests of opening a store and reading every feature's provenance."""
    server.reset()
    store = FeatureStore.open(server.url(name))
    for feature in store.features:
        store.feature_attrs(feature)
    return server.reset(), store


@pytest.mark.parametrize("suffix", [".zarr", ".zarr.zip"])
def test_an_open_costs_a_constant_number_of_requests(served, suffix):
    _, server = served
    one, store_one = open_cost(server, f"s1{suffix}")
    five, store_five = open_cost(server, f"s5{suffix}")
    assert len(store_five.features) == 5 and len(store_one.features) == 1
    assert one == five, (one, five)
    assert five <= OPEN_REQUESTS, server.requests


def test_without_consolidated_metadata_an_open_over_http_is_refused(served):
    """Reading such a store would need the server's folder listings, which avscene never reads."""
    root, server = served
    import shutil

    shutil.copytree(root / "s1.zarr", root / "plain1.zarr")
    drop_consolidated(zarr.open_group(str(root / "plain1.zarr"), mode="r+"))
    server.reset()
    with pytest.raises(RemoteStoreError, match="has no consolidated metadata"):
        FeatureStore.open(server.url("plain1.zarr"))
    assert [path for _, path, _ in server.requests] == ["/plain1.zarr/zarr.json"]
    assert len(FeatureStore.open(root / "plain1.zarr").features) == 1  # fine on disk


def test_remote_reads_equal_local_reads(served):
    root, server = served
    local = FeatureStore.open(root / "s5.zarr")
    for name in ("s5.zarr", "s5.zarr.zip"):
        remote = FeatureStore.open(server.url(name))
        selection = remote.select(city="lisbon")
        for pooling in ("mean", "max"):  # stored, and pooled from the frames
            a = remote.segments(list(remote.features), selection=selection, pooling=pooling)
            b = local.segments(list(local.features), selection=selection, pooling=pooling)
            assert np.array_equal(a.X(), b.X()) and a.clip_id.tolist() == b.clip_id.tolist()


def test_info_train_and_predict_over_http(served, tmp_path, capsys):
    root, server = served
    outputs = {}
    for label, where in (
        ("local", str(root / "s5.zarr")),
        ("folder", server.url("s5.zarr")),
        ("archive", server.url("s5.zarr.zip")),
    ):
        capsys.readouterr()
        assert cli.main(["info", where, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["clips"]["total"] == 48 and sorted(info["features"]) == [
            f"f{i}" for i in range(5)
        ]
        run = tmp_path / f"run-{label}"
        server.reset()
        assert (
            cli.main(
                [
                    "-q",
                    "train",
                    where,
                    "--features",
                    "f0,f1",
                    "--fusion",
                    "early",
                    "--train-fold",
                    "train",
                    "--preset",
                    "fast",
                    "--val-fraction",
                    "0",
                    "--no-temperature",
                    "--out",
                    str(run),
                ]
            )
            == 0
        )
        record = json.loads((run / "run.json").read_text())
        assert record["seen_cities"] == ["lisbon"] and record["training"]["n_clips"] == 32
        output = tmp_path / f"out-{label}.csv"
        assert (
            cli.main(
                ["-q", "predict", str(run), where, "--fold", "evaluate", "--out", str(output)]
            )
            == 0
        )
        outputs[label] = output.read_text()
        if label != "local":
            assert server.count() > 0
    assert outputs["folder"] == outputs["local"] == outputs["archive"]
    local = FeatureStore.open(root / "s5.zarr")
    expected = local.segments(["f0", "f1"], selection=local.select(fold="evaluate"))
    assert len(outputs["local"].splitlines()) == 1 + len(expected)


def test_the_server_answers_byte_ranges(served):
    import urllib.request

    root, server = served
    data = (root / "s1.zarr.zip").read_bytes()
    request = urllib.request.Request(server.url("s1.zarr.zip"), headers={"Range": "bytes=10-29"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 206 and answer.read() == data[10:30]
    request = urllib.request.Request(server.url("s1.zarr.zip"), headers={"Range": "bytes=-7"})
    with urllib.request.urlopen(request) as answer:
        assert answer.read() == data[-7:]


# -- consolidated metadata stays current -------------------------------------------------------


def assert_consolidated_current(where):
    """The consolidated copy in the root document equals every node's own metadata, and the
    recorded sizes equal the stored bytes of every array."""
    fresh = zarr.open_group(str(where), mode="r", use_consolidated=False)
    kept = zarr.open_group(str(where), mode="r", use_consolidated=True)
    assert kept.metadata.consolidated_metadata is not None
    assert recorded(kept, str(where)) == measure(fresh)

    def walk(a, b, path):
        assert a.attrs.asdict() == b.attrs.asdict(), path
        assert sorted(a.array_keys()) == sorted(b.array_keys()), path
        assert sorted(a.group_keys()) == sorted(b.group_keys()), path
        for key in a.array_keys():
            assert (
                a[key].shape == b[key].shape and a[key].attrs.asdict() == b[key].attrs.asdict()
            ), f"{path}/{key}"
        for key in a.group_keys():
            walk(a[key], b[key], f"{path}/{key}")

    walk(fresh, kept, "")


def test_every_structural_change_rewrites_the_consolidated_metadata(tmp_path):
    clips = city_clips(3)
    where = tmp_path / "s.zarr"
    store = FeatureStore.open(where, mode="w", block_clips=8)
    assert_consolidated_current(where)
    store.add_clips(clips[:20])
    assert_consolidated_current(where)
    store.create_feature("f0", dim=8, frame_rate=10.0, params={"hop": 0.1}, chunk_mib=0.01)
    assert_consolidated_current(where)
    fill_store(store, "f0", clips[:20], labelled_like, dim=8, seed=1)
    store.write_segments(poolings=("mean", "max"))
    assert_consolidated_current(where)
    store.add_clips(clips[20:])
    assert_consolidated_current(where)
    store.attrs["note"] = "x"
    assert_consolidated_current(where)
    store.write_segments(poolings=("mean",))
    assert_consolidated_current(where)
