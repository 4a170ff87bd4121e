"""One-file zip archives: read by plain zarr, used in place by every reader, unpacked into a
writable store all-or-nothing; segments-only archives."""

import json
import zipfile

import numpy as np
import pytest
import zarr

from featurestore.errors import StoreError, StoreExistsError, StoreFormatError
from featurestore.store import FeatureStore
from featurestore.store.interchange.archive import pack_store, unpack_archive
from pipelines.commands import cli
from tests.helpers import (
    all_arrays,
    assert_same_arrays,
    audio_like,
    fill_store,
    make_clips,
    new_store,
    video_like,
)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archive")
    seed = int(np.random.SeedSequence().entropy % 2**31)
    clips = make_clips(17, seed=seed)
    store = new_store(folder / "s.zarr", clips, features=(("audio", 8, 10.0), ("video", 5, 5.0)))
    fill_store(store, "audio", clips, audio_like, dim=8, seed=seed)
    fill_store(store, "video", clips[:-2], video_like, dim=5, seed=seed)
    with store.block_writer("video", store.blocks()[-1]) as writer:
        writer.fail(clips[-1].clip_id, "no video stream")
    store.write_segments(poolings=("mean", "meanstd"))
    store.attrs["note"] = {"seed": seed}
    summary = pack_store(FeatureStore.open(folder / "s.zarr"), folder / "s.zarr.zip")
    return folder, folder / "s.zarr", folder / "s.zarr.zip", summary


def test_plain_zarr_reads_the_archive(packed):
    _, source, archive, _ = packed
    root = zarr.open_group(zarr.storage.ZipStore(archive, mode="r"), mode="r")
    n = root.attrs["avscene"]["n_clips"]
    original = zarr.open_group(str(source), mode="r")
    assert root.attrs.asdict() == original.attrs.asdict()
    for column in ("clip_id", "scene", "city", "duration"):
        assert np.array_equal(root["clips"][column][:n], original["clips"][column][:n])
    for path in (
        "features/audio/values",
        "features/video/timestamps",
        "features/audio/status",
        "segments/audio/mean/values",
        "segments/video/meanstd/position",
    ):
        assert np.array_equal(root[path][...], original[path][...], equal_nan=True), path
    assert root["features/audio"].attrs["params"] == original["features/audio"].attrs["params"]


def test_entries_are_stored_and_chunks_copied_byte_for_byte(packed):
    _, source, archive, summary = packed
    with zipfile.ZipFile(archive) as handle:
        entries = handle.infolist()
        assert {entry.compress_type for entry in entries} == {zipfile.ZIP_STORED}
        names = [entry.filename for entry in entries]
        assert names[-1] == "zarr.json" and len(names) == len(set(names)) == summary["entries"]
        on_disk = sorted(
            p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()
        )
        assert sorted(names) == on_disk
        for name in names:
            if name != "zarr.json":
                assert handle.read(name) == (source / name).read_bytes(), name
        root = json.loads(handle.read("zarr.json"))
    listed = set(root["consolidated_metadata"]["metadata"])
    assert {"clips/clip_id", "features/audio/values", "segments/video/mean/values"} <= listed


def test_packing_twice_gives_the_same_bytes(packed, tmp_path):
    folder, source, archive, _ = packed
    again = pack_store(FeatureStore.open(source), tmp_path / "again.zarr.zip")
    assert (tmp_path / "again.zarr.zip").read_bytes() == archive.read_bytes()
    assert again["bytes"] == archive.stat().st_size


def test_every_reader_uses_the_archive_in_place(packed):
    _, source, archive, _ = packed
    local, zipped = FeatureStore.open(source), FeatureStore.open(archive)
    assert zipped.features == local.features and len(zipped.clips) == len(local.clips)
    for pooling in ("mean", "max", "none"):
        a = local.segments(["audio", "video"], pooling=pooling)
        b = zipped.segments(["audio", "video"], pooling=pooling)
        assert np.array_equal(a.X(), b.X()) and a.clip_id.tolist() == b.clip_id.tolist()
    clip_id = local.clips.clip_id[2]
    assert all(
        np.array_equal(x, y, equal_nan=True)
        for x, y in zip(local.frames("audio", clip_id), zipped.frames("audio", clip_id))
    )
    assert zipped.failures() == local.failures()
    assert zipped.verify() == []
    info = zipped.info()
    arrays = {
        p.parent
        for p in source.rglob("zarr.json")
        if json.loads(p.read_text())["node_type"] == "array"
    }
    assert (
        info["bytes_on_disk"]
        == local.info()["bytes_on_disk"]
        == sum(
            p.stat().st_size for p in source.rglob("*") if p.is_file() and arrays & set(p.parents)
        )
    )
    assert [entry["fresh"] for entry in info["segments"]] == [True] * 4


@pytest.mark.parametrize("mode", ["r+", "a", "w"])
def test_an_archive_is_read_only(packed, mode):
    archive = packed[2]
    before = archive.read_bytes()
    with pytest.raises(StoreError, match="read-only"):
        FeatureStore.open(archive, mode=mode)
    assert archive.read_bytes() == before


def test_verify_finds_a_corrupt_chunk_in_the_archive(packed, tmp_path):
    _, _, archive, _ = packed
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as handle:
        entry = handle.getinfo("features/audio/values/c/1/0")
    start = entry.header_offset + 30 + len(entry.filename) + len(entry.extra)
    data[start + entry.file_size // 2] ^= 0xFF
    broken = tmp_path / "broken.zarr.zip"
    broken.write_bytes(bytes(data))
    assert cli.main(["verify", str(broken)]) == 1
    problems = FeatureStore.open(broken).verify()
    assert (
        len(problems) == 1
        and problems[0].startswith("corrupt chunk features/audio/values/c/1/0: ")
        and "CRC" in problems[0]
    ), problems
    with pytest.raises(StoreFormatError, match="features/audio/values/c/1/0"):
        FeatureStore.open(broken).read("audio")


def test_unpack_restores_a_writable_store(packed, tmp_path):
    _, source, archive, _ = packed
    target = tmp_path / "back.zarr"
    summary = unpack_archive(archive, target)
    assert summary["segments_only"] is False
    assert_same_arrays(
        all_arrays(FeatureStore.open(target)), all_arrays(FeatureStore.open(source))
    )
    store = FeatureStore.open(target, mode="r+")
    store.add_clips(make_clips(3, seed=99))
    assert len(FeatureStore.open(target).clips) == len(FeatureStore.open(source).clips) + 3
    with pytest.raises(StoreExistsError):
        unpack_archive(archive, target)
    unpack_archive(archive, target, overwrite=True)
    assert_same_arrays(
        all_arrays(FeatureStore.open(target)), all_arrays(FeatureStore.open(source))
    )


def test_unpack_refuses_a_hostile_entry_name_and_leaves_nothing(packed, tmp_path):
    _, _, archive, _ = packed
    hostile = tmp_path / "hostile.zarr.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(hostile, "w") as dst:
        for entry in src.infolist():
            dst.writestr(entry, src.read(entry))
        dst.writestr("../escaped.txt", b"x")
    with pytest.raises(StoreFormatError, match="not a plain relative key"):
        unpack_archive(hostile, tmp_path / "out.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.zarr.zip"]


def test_unpack_refuses_an_archive_that_fails_verify(packed, tmp_path):
    _, _, archive, _ = packed
    damaged = tmp_path / "damaged.zarr.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as dst:
        for entry in src.infolist():
            if entry.filename != "features/audio/timestamps/c/0":
                dst.writestr(entry, src.read(entry))
    assert cli.main(["unpack", str(damaged), "--out", str(tmp_path / "out.zarr")]) == 2
    assert not (tmp_path / "out.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["damaged.zarr.zip"]


def test_segments_only_archive(packed, tmp_path):
    _, source, archive, _ = packed
    small = tmp_path / "seconds.zarr.zip"
    assert cli.main(["pack", str(source), "--out", str(small), "--segments-only"]) == 0
    with zipfile.ZipFile(small) as handle:
        names = handle.namelist()
    assert not [
        n for n in names if n.startswith(("features/audio/values", "features/video/timestamps"))
    ]
    assert "features/audio/status/c/0" in names and "segments/audio/mean/values/c/0/0" in names
    assert small.stat().st_size < archive.stat().st_size
    store, full = FeatureStore.open(small), FeatureStore.open(source)
    assert store.segments_only and store.info()["segments_only"]
    assert store.feature_fingerprint("audio") == full.feature_fingerprint("audio")
    for pooling in ("mean", "meanstd"):
        a = store.segments(
            ["audio", "video"], selection=store.select(fold="train"), pooling=pooling
        )
        b = full.segments(["audio", "video"], selection=full.select(fold="train"), pooling=pooling)
        assert np.array_equal(a.X(), b.X()) and a.clip_id.tolist() == b.clip_id.tolist()
    with pytest.raises(StoreFormatError, match="holds segments only"):
        store.segments("audio", pooling="max")
    with pytest.raises(StoreFormatError, match="segments only"):
        store.frames("audio", store.clips.clip_id[0])
    assert store.verify() == []
    back = tmp_path / "seconds.zarr"
    unpack_archive(small, back)
    with pytest.raises(StoreError, match="segments only"):
        FeatureStore.open(back, mode="r+").add_clips(make_clips(1, seed=3))


def test_segments_only_needs_up_to_date_segments(tmp_path):
    clips = make_clips(5, seed=4)
    store = new_store(tmp_path / "s.zarr", clips)
    fill_store(store, "audio", clips[:3], audio_like, dim=8, seed=4)
    with pytest.raises(StoreFormatError, match="no stored segments"):
        pack_store(store, tmp_path / "a.zarr.zip", segments_only=True)
    store.write_segments(poolings=("mean",))
    fill_store(store, "audio", clips, audio_like, dim=8, seed=4)
    with pytest.raises(StoreFormatError, match="made from other frames"):
        pack_store(store, tmp_path / "a.zarr.zip", segments_only=True)
    assert not list(tmp_path.glob("*.zip*"))


def test_pack_needs_a_zip_name_and_keeps_an_existing_file(packed, tmp_path):
    _, source, archive, _ = packed
    with pytest.raises(StoreFormatError, match="must end in .zip"):
        pack_store(FeatureStore.open(source), tmp_path / "s.tar")
    (tmp_path / "x.zarr.zip").write_bytes(b"old")
    assert cli.main(["pack", str(source), "--out", str(tmp_path / "x.zarr.zip")]) == 2
    assert (tmp_path / "x.zarr.zip").read_bytes() == b"old"
