"""layout.chunk_key names the files zarr itself writes for the chunks of the store's arrays."""

import os

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from featurestore.store.chunks import ChunkReader, stored_chunk_indices
from featurestore.store.layout import (
    chunk_key,
    chunk_prefix,
    compressors,
    parse_chunk_key,
)
from tests.helpers import audio_like, fill_store, make_clips, new_store


def fresh_seed():
    return int.from_bytes(os.urandom(4), "little")


def stored_files(root):
    """Keys (relative, with ``/``) of every chunk file under ``root`` (no zarr.json)."""
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and path.name != "zarr.json"
    }


@pytest.mark.parametrize("run", range(4))  # fresh shapes each run (the seed is reported)
def test_chunk_key_names_the_files_zarr_writes(tmp_path, run):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    root = zarr.open_group(LocalStore(tmp_path), mode="w", zarr_format=3)
    group = root.create_group("features").create_group(f"f{rng.integers(100)}")
    expected = set()
    for number, ndim in enumerate((1, 2, int(rng.integers(1, 4)))):
        rows = int(rng.integers(1, 9))
        shape = (int(rng.integers(1, 60)),) + tuple(int(n) for n in rng.integers(1, 7, ndim - 1))
        compression = str(rng.choice(["lz4", "zstd", "none"]))
        array = group.create_array(
            f"a{number}",
            shape=shape,
            chunks=(rows,) + shape[1:],
            dtype="float32",
            fill_value=0,
            compressors=compressors(compression, 4),
        )
        array[...] = rng.random(shape, dtype=np.float32) + 1  # every chunk stored
        n_chunks = -(-shape[0] // rows)
        keys = [chunk_key(array.path, index, ndim=ndim) for index in range(n_chunks)]
        expected |= set(keys)
        reader = ChunkReader(array)
        assert [reader.key(index) for index in range(n_chunks)] == keys, seed
        assert [parse_chunk_key(key) for key in keys] == [
            (array.path, (index,) + (0,) * (ndim - 1)) for index in range(n_chunks)
        ], seed
        assert all(key.startswith(chunk_prefix(array.path) + "/") for key in keys), seed
        assert stored_chunk_indices(reader) == set(range(n_chunks)), seed
    assert stored_files(tmp_path) == expected, (seed, sorted(stored_files(tmp_path) ^ expected))


def test_chunk_key_names_the_chunks_of_a_store(tmp_path):
    seed = fresh_seed()
    clips = make_clips(6, seed=seed)
    store = new_store(tmp_path / "s.zarr", clips)
    fill_store(store, "audio", clips, audio_like, dim=8, seed=seed)
    feature = store.feature("audio")
    for name in ("values", "timestamps", "offset", "status"):
        array = feature.arrays[name]
        folder = tmp_path / "s.zarr" / array.path / "c"
        on_disk = {
            f"{array.path}/{path.relative_to(folder.parent).as_posix()}"
            for path in folder.rglob("*")
            if path.is_file()
        }
        indices = {parse_chunk_key(key)[1][0] for key in on_disk}
        assert on_disk and on_disk == {
            chunk_key(array.path, index, ndim=array.ndim) for index in indices
        }, seed
    store.close()


def test_chunk_key_refuses_what_names_no_chunk():
    with pytest.raises(ValueError):
        chunk_key("a/values", -1)
    with pytest.raises(ValueError):
        chunk_key("a/values", 0, ndim=0)
    assert chunk_key("a/values", 7) == "a/values/c/7"
    assert chunk_key("a/values", 7, ndim=2) == "a/values/c/7/0"
    for key in (
        "a/values/c",
        "a/values/c/",
        "a/values/c/x",
        "a/values/c/1/",
        "c/1",
        "a/values/c/1\n",
        "a/values/cx/1",
        "a/values/c/" + "9" * 5000,
    ):
        assert parse_chunk_key(key) is None, key
