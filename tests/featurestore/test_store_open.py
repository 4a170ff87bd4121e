"""Opening feature stores: modes, locations (path, memory:// URL, zarr store), attrs."""

import numpy as np
import pytest
import zarr

from featurestore.errors import (
    ProvenanceMismatchError,
    StoreError,
    StoreExistsError,
    StoreFormatError,
    StoreNotFoundError,
)
from featurestore.store import FeatureStore
from tests.helpers import make_clips


def _where(kind, tmp_path, request):
    if kind == "path":
        return tmp_path / "store.zarr"
    if kind == "url":
        return f"memory://avscene-test-{request.node.name.replace('[', '-').replace(']', '')}"
    return zarr.storage.MemoryStore()


@pytest.fixture(params=["path", "url", "memorystore"])
def where(request, tmp_path):
    return _where(request.param, tmp_path, request)


def test_modes_on_every_kind_of_location(where):
    with pytest.raises(StoreNotFoundError):
        FeatureStore.open(where, mode="r")
    with pytest.raises(StoreNotFoundError):
        FeatureStore.open(where, mode="r+")
    with FeatureStore.open(where, mode="w-") as store:
        assert store.add_clips(make_clips(3)) == 3
        store.attrs["manifest_sha256"] = "ab" * 32
    with pytest.raises(StoreExistsError):
        FeatureStore.open(where, mode="w-")
    with FeatureStore.open(where, mode="r") as store:
        assert len(store.clips) == 3 and store.read_only
        assert store.attrs["manifest_sha256"] == "ab" * 32
        with pytest.raises(StoreError):
            store.add_clips(make_clips(4))
        with pytest.raises(StoreError):
            store.attrs["x"] = 1
    with FeatureStore.open(where, mode="r+") as store:  # r+ keeps the contents
        assert store.add_clips(make_clips(5)) == 2
    with FeatureStore.open(where, mode="a") as store:  # a opens an existing store
        assert len(store.clips) == 5
    with FeatureStore.open(where, mode="w") as store:  # w starts afresh
        assert len(store.clips) == 0 and store.features == ()
        assert "manifest_sha256" not in store.attrs


def test_mode_a_creates_and_errors_subclass_builtins(tmp_path):
    path = tmp_path / "new.zarr"
    with FeatureStore.open(path, mode="a") as store:
        assert len(store.clips) == 0
        assert store.attrs["avscene"]["format"] == "avscene.featurestore"
    with pytest.raises(FileNotFoundError):
        FeatureStore.open(tmp_path / "missing.zarr", mode="r")
    with pytest.raises(FileExistsError):
        FeatureStore.open(path, mode="w-")
    with pytest.raises(ValueError):
        FeatureStore.open(path, mode="x")


def test_a_zarr_group_that_is_not_a_store_is_refused(tmp_path):
    zarr.open_group(tmp_path / "plain.zarr", mode="w").attrs["hello"] = 1
    with pytest.raises(StoreFormatError, match="not an avscene feature store"):
        FeatureStore.open(tmp_path / "plain.zarr", mode="r")
    with pytest.raises(StoreExistsError):
        FeatureStore.open(tmp_path / "plain.zarr", mode="w-")


def test_attrs_are_json_and_avscene_is_reserved(tmp_path):
    store = FeatureStore.open(tmp_path / "s.zarr", mode="w")
    store.attrs["dataset"] = {"root": "/data/tau", "folds": ("train", "test")}
    assert store.attrs["dataset"] == {"root": "/data/tau", "folds": ["train", "test"]}
    with pytest.raises(StoreFormatError):
        store.attrs["avscene"] = {}
    with pytest.raises(StoreFormatError):
        store.attrs["bad"] = {"x": object()}
    del store.attrs["dataset"]
    assert set(store.attrs) == {"avscene"}
    reopened = FeatureStore.open(tmp_path / "s.zarr", mode="r")
    meta = reopened.attrs["avscene"]
    assert meta["n_clips"] == 0 and meta["created"] and meta["package_versions"]["zarr"]


def test_clip_table_round_trip_and_conflicts(tmp_path):
    clips = make_clips(9, seed=3)
    store = FeatureStore.open(tmp_path / "s.zarr", mode="w", block_clips=4)
    sources = {clips[0].clip_id: {"audio_bytes": 2_880_044, "audio_sha256": "f" * 64}}
    assert store.add_clips(clips, sources=sources) == 9
    assert store.add_clips(clips[:4] + clips[:2]) == 0  # identical: skipped
    reopened = FeatureStore.open(tmp_path / "s.zarr", mode="r")
    assert reopened.clips.records() == clips
    assert reopened.clips.audio_bytes[0] == 2_880_044 and reopened.clips.audio_bytes[1] == -1
    assert reopened.clips.audio_sha256[0] == "f" * 64
    assert [len(b) for b in reopened.blocks()] == [4, 4, 1]
    assert reopened.blocks()[2].clip_ids == (clips[8].clip_id,)
    changed = clips[1].with_duration(3.0)
    with pytest.raises(StoreFormatError, match="duration"):
        store.add_clips([changed])
    with pytest.raises(StoreFormatError, match="no positive duration"):
        store.add_clips([clips[0].__class__("x", None, None)])
    with pytest.raises(StoreFormatError, match="not in the store"):
        store.clips.positions(["nope"])


def test_create_feature_refuses_a_different_definition(tmp_path):
    store = FeatureStore.open(tmp_path / "s.zarr", mode="w")
    store.add_clips(make_clips(2))
    params = {"content_type": "env", "hop": 0.1, "weights_sha256": "0" * 64}
    store.create_feature("openl3_audio", dim=512, frame_rate=10, params=params)
    store.create_feature("openl3_audio", dim=512, frame_rate=10, params=dict(params))  # no-op
    fingerprint = store.feature_fingerprint("openl3_audio")
    assert store.feature_params("openl3_audio") == params
    with pytest.raises(ProvenanceMismatchError, match="params.weights_sha256") as refused:
        store.create_feature(
            "openl3_audio", dim=512, frame_rate=10, params={**params, "weights_sha256": "1" * 64}
        )
    assert isinstance(refused.value, ValueError)
    with pytest.raises(ProvenanceMismatchError, match=r"dim .*storage_dtype"):
        store.create_feature(
            "openl3_audio", dim=128, frame_rate=10, params=params, storage_dtype="float16"
        )
    with pytest.raises(ProvenanceMismatchError, match="params.extra"):
        store.create_feature("openl3_audio", dim=512, frame_rate=10, params={**params, "extra": 1})
    reopened = FeatureStore.open(tmp_path / "s.zarr", mode="r")
    assert reopened.feature_fingerprint("openl3_audio") == fingerprint
    attrs = reopened.feature_attrs("openl3_audio")
    assert attrs["package_versions"]["numpy"] == np.__version__ and attrs["created"]
    with pytest.raises(StoreFormatError):
        store.create_feature("bad/name", dim=1, frame_rate=1, params={})
