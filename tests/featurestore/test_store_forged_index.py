"""A hostile store: a forged index is refused with one line naming the feature and the clip,
before anything is allocated, by every reader (Python API, Dask views, writers, CLI)."""

import numpy as np
import pytest
import zarr

from featurestore.errors import StoreFormatError
from featurestore.store import FeatureStore
from featurestore.store.dask_views import open_views
from featurestore.store.layout import compressors
from pipelines.commands import cli
from tests.helpers import audio_like, fill_store, make_clips, new_store

N_CLIPS, SEED = 12, 71


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    where = tmp_path_factory.mktemp("forged") / "s.zarr"
    clips = make_clips(N_CLIPS, seed=SEED)
    store = new_store(where, clips)
    fill_store(store, "audio", clips, audio_like, dim=8, seed=1)
    return where


def _forge(source, target, *, position, count=None, offset=None):
    """Copy the store and forge one clip's index entry (``count`` stored as int64, so that it
    can hold 2**40, as a hostile store may declare)."""
    import shutil

    shutil.copytree(source, target)
    feature = zarr.open_group(target, mode="r+")["features/audio"]
    if count is not None:
        counts = np.asarray(feature["count"][:], np.int64)
        counts[position] = count
        forged = feature.create_array(
            "count",
            shape=counts.shape,
            chunks=feature["count"].chunks,
            dtype="int64",
            fill_value=0,
            compressors=compressors("zstd", 8),
            dimension_names=("clip",),
            overwrite=True,
        )
        forged[:] = counts
    if offset is not None:
        feature["offset"][position] = offset
    return str(target)


def _region(where, position):
    store = FeatureStore.open(where, mode="r")
    starts, stops = store._feature("audio").regions(store.clips.duration)
    block = position // store.block_clips
    return int(starts[block]), int(stops[block])


FORGERIES = {
    "count 2**40": dict(count=2**40),
    "count -1": dict(count=-1),
    "offset past the region": dict(offset="stop"),
    "offset before the region": dict(offset="start-1"),
    "offset 2**62": dict(offset=2**62),
}


@pytest.fixture(params=sorted(FORGERIES))
def forged(request, original, tmp_path):
    position = 5  # block 1 of blocks of 4 clips
    forgery = dict(FORGERIES[request.param])
    start, stop = _region(original, position)
    if forgery.get("offset") == "stop":
        forgery["offset"] = stop
    elif forgery.get("offset") == "start-1":
        forgery["offset"] = start - 1
    where = _forge(original, tmp_path / "forged.zarr", position=position, **forgery)
    clip_id = str(FeatureStore.open(where, mode="r").clips.clip_id[position])
    return where, clip_id


def _one_line_naming(error, clip_id):
    text = str(error)
    assert "\n" not in text and "features/audio" in text and repr(clip_id) in text, text


def test_every_reader_refuses_a_forged_index(forged):
    where, clip_id = forged
    store = FeatureStore.open(where, mode="r")
    readers = [
        lambda: store.read("audio"),
        lambda: store.segments(["audio"]),
        lambda: store.frames("audio", store.clips.clip_id[0]),
        lambda: store.status("audio"),
        lambda: store.failures(),
        lambda: store.info(),
        lambda: open_views(where, ["audio"]),
    ]
    for read in readers:
        with pytest.raises(StoreFormatError) as refused:
            read()
        _one_line_naming(refused.value, clip_id)
    writable = FeatureStore.open(where, mode="r+")
    with pytest.raises(StoreFormatError) as refused:  # a writer resuming the block too
        writable.block_writer("audio", 1)
    _one_line_naming(refused.value, clip_id)
    writable.block_writer("audio", 0).close()  # other blocks are fine


def test_the_cli_refuses_a_forged_index_with_one_line(forged, tmp_path, capsys):
    where, clip_id = forged
    assert cli.main(["info", where]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avscene info: error:") and "\n" not in err and repr(clip_id) in err
    assert cli.main(["train", where, "--features", "audio", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("avscene train: error:") and repr(clip_id) in err
    assert not (tmp_path / "run").exists()
    assert cli.main(["verify", where]) == 1  # verify finds and reports it
    out = capsys.readouterr().out
    assert f"features/audio: clip {clip_id!r}" in out


def test_the_untouched_store_reads(original):
    store = FeatureStore.open(original, mode="r")
    assert store.verify() == [] and store.read("audio").values.shape[1] == 8


def test_arrays_with_unknown_codecs_or_huge_chunks_are_refused(original, tmp_path):
    import shutil

    where = tmp_path / "gzip.zarr"
    shutil.copytree(original, where)
    feature = zarr.open_group(where, mode="r+")["features/audio"]
    status = feature["status"][:]
    from zarr.codecs import GzipCodec

    feature.create_array(
        "status",
        shape=status.shape,
        chunks=feature["status"].chunks,
        dtype="int8",
        compressors=[GzipCodec()],
        overwrite=True,
    )[:] = status
    with pytest.raises(StoreFormatError, match="features/audio/status uses codec 'gzip'"):
        FeatureStore.open(where, mode="r").status("audio")
    huge = tmp_path / "huge.zarr"
    shutil.copytree(original, huge)
    feature = zarr.open_group(huge, mode="r+")["features/audio"]
    feature.create_array(
        "offset",
        shape=(N_CLIPS,),
        chunks=(2**31,),
        dtype="int64",
        compressors=compressors("zstd", 8),
        overwrite=True,
    )
    with pytest.raises(StoreFormatError, match="features/audio/offset has chunks"):
        FeatureStore.open(huge, mode="r").status("audio")
