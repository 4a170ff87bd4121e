"""Hostile stores: every read is bounded before anything is decoded, a refusal is one line,
and ``avscene verify`` lists every problem whatever the store holds.

Each test builds its hostile store from a small valid one. The attacks that used to exhaust
memory run the command in a child process under an address-space limit (a safety net) and
assert the child's own peak resident memory stays under 1 GiB.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import zarr
import zarr.core.buffer
import zarr.core.sync
import zarr.storage
from crc32c import crc32c
from numcodecs.zstd import compress as zstd_compress
from zarr.codecs import BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec

from featurestore.errors import StoreFormatError
from featurestore.store import FeatureStore
from featurestore.store.layout import MAX_STRING_CHARS, compressors
from pipelines.commands import cli
from tests.helpers import audio_like, fill_store, make_clips, new_store
from tests.security.child import run_avscene

N_CLIPS, SEED = 12, 71
#: The address-space limit of a child (it only keeps a runaway child from taking the machine).
SAFETY_LIMIT = 3 << 30
PEAK_LIMIT = 1 << 30


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A valid store: 12 clips in blocks of 4, one 8-d feature, its stored mean segments."""
    where = tmp_path_factory.mktemp("victim") / "s.zarr"
    clips = make_clips(N_CLIPS, seed=SEED)
    store = new_store(where, clips)
    fill_store(store, "audio", clips, audio_like, dim=8, seed=1)
    store.write_segments(["audio"], poolings=("mean",))
    return where


def _copy(original, tmp_path):
    target = tmp_path / "hostile.zarr"
    shutil.copytree(original, target)
    return target


def _root(where):
    return zarr.open_group(where, mode="r+", use_consolidated=False)


def _replace(where, path, data, **options):
    """Write ``data`` as the array at ``path``, replacing it (same chunks unless given)."""
    parent, name = path.rsplit("/", 1)
    group = _root(where)
    options.setdefault("chunks", group[path].chunks)
    array = group[parent].create_array(
        name, shape=data.shape, dtype=data.dtype, overwrite=True, **options
    )
    array[...] = data
    return array


def _set_root_attr(where, key, value):
    group = _root(where)
    meta = dict(group.attrs["avscene"])
    meta[key] = value
    group.attrs["avscene"] = meta


def _run(args, tmp_path):
    """Run ``avscene ARGS`` in a child under :data:`SAFETY_LIMIT`; return (exit status,
    stdout, stderr, the child's peak resident memory in bytes)."""
    result = run_avscene(args, address_space=SAFETY_LIMIT, cwd=tmp_path)
    return result.returncode, result.stdout, result.stderr, result.peak


def _command(name, where, tmp_path):
    extra = ["--features", "audio", "--out", tmp_path / "run"] if name == "train" else []
    return [name, where, *extra]


def _assert_refused(name, result, fragment, tmp_path):
    """One-line refusal (info, train: exit 2) or a listed problem (verify: exit 1), within
    the memory bound, and no run written."""
    code, out, err, peak = result
    assert peak < PEAK_LIMIT, f"{name} peaked at {peak >> 20} MiB"
    assert "Traceback" not in err and "Traceback" not in out, err
    if name == "verify":
        assert code == 1 and fragment in out, (code, out, err)
    else:
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (code, err)
        assert lines[0].startswith(f"avscene {name}: error: ") and fragment in lines[0], err
    assert not (tmp_path / "run").exists()


# -- attacks that used to exhaust memory --------------------------------------------------------


@pytest.mark.parametrize(
    "megabytes, command", [(4, "info"), (4, "verify"), (4, "train"), (4, "segments"), (20, "info")]
)
def test_a_huge_string_in_the_clip_table_is_refused(original, tmp_path, megabytes, command):
    where = _copy(original, tmp_path)
    _root(where)["clips/audio"][3] = "x" * (megabytes << 20)  # a chunk of a few KiB
    assert sum(f.stat().st_size for f in (where / "clips/audio/c").iterdir()) < 1 << 20
    result = _run(_command(command, where, tmp_path), tmp_path)
    _assert_refused(
        command,
        result,
        f"clips/audio/c/0: entry 3 holds a string of {megabytes << 20} characters",
        tmp_path,
    )


@pytest.mark.parametrize("n_segments", [2**27, 2**40])
@pytest.mark.parametrize("command", ["verify", "train"])
def test_a_forged_segment_count_is_refused(original, tmp_path, n_segments, command):
    where = _copy(original, tmp_path)
    group = _root(where)["segments/audio/mean"]
    for name in ("position", "second", "count"):
        group[name].resize((n_segments,))
    group["values"].resize((n_segments, 8))
    group.attrs["n_segments"] = n_segments  # consistent with the (resized) arrays
    result = _run(_command(command, where, tmp_path), tmp_path)
    _assert_refused(
        command,
        result,
        f"segments/audio/mean: n_segments {n_segments} is not between 0 and the 66 segments",
        tmp_path,
    )


def _zstd_rle_frame(size, *, block=1 << 17):
    """A zstd frame declaring and holding ``size`` zero bytes as run-length blocks: 4 bytes
    per 128 KiB (65 KiB for 2 GiB), built without ever holding the decoded bytes."""
    frame = bytearray(b"\x28\xb5\x2f\xfd")
    frame.append(0b10100000)  # a 4-byte content size, one segment
    frame += size.to_bytes(4, "little")
    n_blocks = -(-size // block)
    for i in range(n_blocks):
        length = min(block, size - i * block)
        frame += ((i == n_blocks - 1) | (1 << 1) | (length << 3)).to_bytes(3, "little") + b"\0"
    return bytes(frame)


@pytest.mark.parametrize("command", ["verify", "train"])
def test_a_zstd_bomb_in_stored_segments_is_refused_before_decompressing(
    original, tmp_path, command
):
    where = _copy(original, tmp_path)
    position = np.asarray(_root(where)["segments/audio/mean/position"][:])
    array = _replace(
        where,
        "segments/audio/mean/position",
        position,
        serializer=BytesCodec(),
        compressors=[ZstdCodec(), Crc32cCodec()],
        dimension_names=("segment",),
    )
    bomb = _zstd_rle_frame(1 << 31)
    chunk = where / array.path / "c" / "0"
    chunk.write_bytes(bomb + crc32c(bomb).to_bytes(4, "little"))
    assert chunk.stat().st_size < 70_000
    result = _run(_command(command, where, tmp_path), tmp_path)
    _assert_refused(
        command,
        result,
        "segments/audio/mean/position/c/0: its zstd frame header "
        "declares 2147483648 bytes, the chunk holds",
        tmp_path,
    )


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_string_chunk_declaring_2_31_entries_is_refused(original, tmp_path, command):
    """A vlen-utf8 chunk whose entry count says 2**31 (numcodecs would make an object array of
    16 GiB before reading the first entry)."""
    where = _copy(original, tmp_path)
    forged = (2**31).to_bytes(4, "little") + (1).to_bytes(4, "little") + b"x"
    payload = zstd_compress(forged, 3)
    (where / "clips" / "scene" / "c" / "0").write_bytes(
        payload + crc32c(payload).to_bytes(4, "little")
    )
    result = _run(_command(command, where, tmp_path), tmp_path)
    _assert_refused(
        command,
        result,
        "clips/scene/c/0: declares 2147483648 strings, the chunk holds 16384",
        tmp_path,
    )


@pytest.mark.parametrize("command", ["info", "verify", "train", "segments"])
def test_a_forged_clip_count_is_refused(original, tmp_path, command):
    where = _copy(original, tmp_path)
    group = _root(where)
    for name in group["clips"].array_keys():
        group["clips"][name].resize((2**24,))
    for name in ("offset", "count", "status", "reason"):
        group["features/audio"][name].resize((2**24,))
    _set_root_attr(where, "n_clips", 2**24)
    result = _run(_command(command, where, tmp_path), tmp_path)
    _assert_refused(
        command,
        result,
        "the store declares 16777216 clips, whose table would "
        "take at least 960 MiB in memory; avscene reads clip "
        "tables of at most 256 MiB",
        tmp_path,
    )


@pytest.mark.parametrize("command", ["info", "train"])
def test_a_clip_table_too_wide_for_memory_is_refused(original, tmp_path, command):
    """16,384 clips whose city and location hold 4,096 characters each: a few KiB stored,
    512 MiB as a fixed-width table; refused at the first wide chunk."""
    where = _copy(original, tmp_path)
    n_clips, wide = 16384, np.full(16384, "y" * 4096, dtype=object)
    group = _root(where)
    for name in group["clips"].array_keys():
        group["clips"][name].resize((n_clips,))
    group["clips/clip_id"][:] = np.array([f"c{i}" for i in range(n_clips)], dtype=object)
    group["clips/duration"][:] = 10.0
    group["clips/city"][:] = wide
    group["clips/location"][:] = wide
    _set_root_attr(where, "n_clips", n_clips)
    result = _run(_command(command, where, tmp_path), tmp_path)
    _assert_refused(
        command,
        result,
        "clips/city: a table of 16384 clips with entries of up to "
        "4096 characters (in clips/city) would take",
        tmp_path,
    )


# -- metadata lies: one line, no traceback, for every reader and for verify ---------------------


def _clip_id_as_float(where):
    _replace(where, "clips/clip_id", np.arange(N_CLIPS, dtype=np.float32))


def _duration_as_int8(where):
    _replace(where, "clips/duration", np.full(N_CLIPS, 10, np.int8))


def _format_version_text(where):
    _set_root_attr(where, "format_version", "x")


def _zarr_v2_array(where):
    audio = np.asarray(_root(where)["clips/audio"][:])
    shutil.rmtree(where / "clips" / "audio")
    array = zarr.open_array(
        where / "clips" / "audio",
        mode="w",
        shape=audio.shape,
        dtype=str,
        chunks=(16384,),
        zarr_format=2,
    )
    array[:] = audio


def _zarr_v2_group(where):
    shutil.rmtree(where / "segments" / "audio" / "mean" / "second")
    (where / "segments" / "audio" / "mean" / "second").mkdir()
    (where / "segments" / "audio" / "mean" / "second" / ".zgroup").write_text('{"zarr_format": 2}')


def _rank_3_values(where):
    values = _root(where)["features/audio/values"]
    _replace(
        where,
        "features/audio/values",
        np.zeros(values.shape + (2,), np.float32),
        chunks=values.chunks + (2,),
    )


def _rank_3_segments(where):
    values = _root(where)["segments/audio/mean/values"]
    _replace(
        where,
        "segments/audio/mean/values",
        np.zeros(values.shape + (1,), np.float32),
        chunks=values.chunks + (1,),
    )


def _gzip_segments(where):
    position = np.asarray(_root(where)["segments/audio/mean/position"][:])
    _replace(where, "segments/audio/mean/position", position, compressors=[GzipCodec()])


LIES = {
    "clip_id as float32": (
        _clip_id_as_float,
        "clips/clip_id holds float32; the clip table stores strings there",
    ),
    "duration as int8": (
        _duration_as_int8,
        "clips/duration holds int8; the clip table stores float64 there",
    ),
    "format_version 'x'": (_format_version_text, "has store format 'x'; this avscene reads"),
    # In a folder, a v2 node's files are refused before zarr opens it (store/inventory.py);
    # test_zarr_v2_nodes_outside_a_folder_are_refused reads the same nodes from memory.
    "a zarr v2 array": (_zarr_v2_array, "clips/audio/.zarray: not a file of the store format"),
    "a zarr v2 group": (
        _zarr_v2_group,
        "segments/audio/mean/second/.zgroup: not a file of the store format",
    ),
    "rank-3 values": (_rank_3_values, "features/audio: values (720, 8, 2) chunks (16, 8, 2)"),
    "rank-3 segments": (_rank_3_segments, "segments/audio/mean: arrays {'values': (66, 8, 1)"),
    "gzip in segments": (_gzip_segments, "segments/audio/mean/position uses codec 'gzip'"),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_metadata_lies_are_refused_with_one_line(original, tmp_path, capsys, lie):
    forge, fragment = LIES[lie]
    where = _copy(original, tmp_path)
    forge(where)
    assert (
        cli.main(["train", str(where), "--features", "audio", "--out", str(tmp_path / "run")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("avscene train: error: ") and fragment in err[-1], err
    assert not (tmp_path / "run").exists()
    code = cli.main(["verify", str(where)])
    out, err = capsys.readouterr()
    if lie == "format_version 'x'":  # not readable as a store at all
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    else:
        assert code == 1 and fragment in out, (out, err)


V2_NODES = {
    "a zarr v2 array": (
        _zarr_v2_array,
        "clips/audio is a zarr v2 array; avscene reads zarr v3 stores only",
    ),
    "a zarr v2 group": (_zarr_v2_group, "segments/audio/mean/second is a zarr v2 group"),
}


@pytest.mark.parametrize("lie", sorted(V2_NODES))
def test_zarr_v2_nodes_outside_a_folder_are_refused(original, tmp_path, lie):
    # Stores read without a folder to walk (over HTTP, from memory) meet the node check itself.
    forge, fragment = V2_NODES[lie]
    where = _copy(original, tmp_path)
    forge(where)
    memory = zarr.storage.MemoryStore()
    prototype = zarr.core.buffer.default_buffer_prototype()
    for path in where.rglob("*"):
        if path.is_file():
            key, data = path.relative_to(where).as_posix(), path.read_bytes()
            if key == "zarr.json":  # each node read from its own documents
                root = json.loads(data)
                root.pop("consolidated_metadata", None)
                data = json.dumps(root).encode()
            zarr.core.sync.sync(memory.set(key, prototype.buffer.from_bytes(data)))
    try:  # refused at open, or listed by verify
        with FeatureStore.open(memory, mode="r") as store:
            found = store.verify()
    except StoreFormatError as error:
        found = [str(error)]
    assert any(fragment in line and "\n" not in line for line in found), found


# -- verify lists every problem -----------------------------------------------------------------


def test_verify_lists_a_corrupt_clip_id_chunk(original, tmp_path, capsys):
    where = _copy(original, tmp_path)
    chunk = where / "clips" / "clip_id" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x40
    chunk.write_bytes(bytes(data))
    assert cli.main(["verify", str(where)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "corrupt chunk clips/clip_id/c/0: crc32c checksum mismatch (corrupt chunk)" in out
    assert cli.main(["verify", str(where), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (
        report["ok"] is False
        and "corrupt chunk clips/clip_id/c/0: crc32c checksum mismatch (corrupt chunk)"
        in report["problems"]
    )
    assert cli.main(["info", str(where)]) == 2  # a reader refuses it with one line
    assert capsys.readouterr().err.strip() == (
        "avscene info: error: clips/clip_id/c/0: crc32c checksum mismatch (corrupt chunk)"
    )


def _forge_count(where, position, count):
    counts = np.asarray(_root(where)["features/audio/count"][:], np.int64)
    counts[position] = count
    _replace(
        where,
        "features/audio/count",
        counts,
        compressors=compressors("zstd", 8),
        dimension_names=("clip",),
    )


@pytest.mark.parametrize("count", [-1, 2**40])
def test_verify_lists_forged_counts_in_a_store_with_stored_segments(
    original, tmp_path, capsys, count
):
    where = _copy(original, tmp_path)
    _forge_count(where, 5, count)
    _forge_count(where, 9, count)
    ids = FeatureStore.open(where, mode="r", clip_table=False).clips.clip_id
    assert cli.main(["verify", str(where)]) == 1
    out = capsys.readouterr().out
    for position in (5, 9):
        assert (
            f"features/audio: clip {str(ids[position])!r} has " in out
            or f"features/audio: clip {str(ids[position])!r} rows" in out
        ), out
    assert cli.main(["verify", str(where), "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems == out.strip().splitlines()
    assert cli.main(["info", str(where)]) == 2
    assert "avscene verify lists them" in capsys.readouterr().err


def test_verify_lists_problems_of_every_array_at_once(original, tmp_path, capsys):
    """A refused array, a corrupt chunk and a forged count, in three places: all listed."""
    where = _copy(original, tmp_path)
    _gzip_segments(where)
    _forge_count(where, 5, -1)
    chunk = where / "features" / "audio" / "values" / "c" / "3" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\0")
    assert cli.main(["verify", str(where)]) == 1
    out = capsys.readouterr().out
    assert "segments/audio/mean/position uses codec 'gzip'" in out
    assert "corrupt chunk features/audio/values/c/3/0: crc32c checksum mismatch" in out
    assert "features/audio: clip " in out and " has -1 rows" in out


def test_a_store_never_gets_a_string_it_would_refuse_to_read(tmp_path):
    clips = make_clips(3)
    clips[2] = dataclasses.replace(clips[2], audio="a" * (MAX_STRING_CHARS + 1))
    store = FeatureStore.open(tmp_path / "s.zarr", mode="w")
    with pytest.raises(
        StoreFormatError,
        match=f"clip 'clip-0-0002': its audio has {MAX_STRING_CHARS + 1} characters",
    ):
        store.add_clips(clips)
    assert len(FeatureStore.open(tmp_path / "s.zarr", mode="r").clips) == 0


def test_the_untouched_store_reads_and_verifies(original, capsys):
    assert cli.main(["verify", str(original)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    store = FeatureStore.open(original, mode="r")
    assert len(store.segments(["audio"])) == 66 and store.verify() == []
