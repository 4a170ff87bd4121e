"""Store folders and zip archives from strangers.

Each test builds the hostile input itself and checks the one-line refusal: a store folder
holding links, FIFOs or unknown files is never followed, read or packed; an archive entry is
never inflated, never read beyond what the archive holds, and never written unless a store can
hold it; an archive's node documents and consolidated metadata describe one store; a full
disk ends pack, unpack, import and export with one line, leaving nothing half-written and a
previous target untouched. Commands run in child processes under an address-space limit, and
their peak memory is measured.
"""

import io
import json
import os
import secrets
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from featurestore.errors import StoreFormatError
from featurestore.store import FeatureStore, export_hdf5
from featurestore.store.interchange.archive import pack_store, unpack_archive
from tests.helpers import audio_like, fill_store, make_clips, new_store
from tests.security.child import run_avscene

GIB = 1 << 30
#: Address-space limit of every child: a safety net for the machine, above the peak allowed.
ADDRESS_SPACE = 4 * GIB
#: Peak resident memory allowed to a command reading an archive under 10 MB.
PEAK_LIMIT = GIB
#: What the zip bomb inflates to.
BOMB_BYTES = 3 * GIB


def run(*args, fsize=None, timeout=180):
    """``avscene ARGS`` in a child under :data:`ADDRESS_SPACE` (and a file-size limit
    ``fsize``); its exit status, output and peak resident memory in bytes (``VmHWM``)."""
    return run_avscene(args, address_space=ADDRESS_SPACE, fsize=fsize, timeout=timeout)


def refusal(result, command, *, status=2):
    """The one line of a refused command (exit status 2; a full disk: 1)."""
    assert result.returncode == status, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"avscene {command}: error: "), result.stderr
    return lines[0]


def files_under(folder):
    """{relative path: bytes} of every regular file under ``folder`` (links not followed)."""
    found = {}
    for path, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(path, name)
            if os.path.isfile(full) and not os.path.islink(full):
                found[os.path.relpath(full, folder)] = Path(full).read_bytes()
    return found


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store of 30 clips (feature ``audio``, stored mean segments) and its archive."""
    folder = tmp_path_factory.mktemp("source")
    clips = make_clips(30, seed=7)
    store = new_store(folder / "s.zarr", clips)
    fill_store(store, "audio", clips, audio_like, dim=8, seed=7)
    store.write_segments(poolings=("mean",))
    pack_store(store, folder / "s.zarr.zip")
    export_hdf5(store, folder / "s.h5", compression="none")
    store.close()
    return folder


@pytest.fixture
def victim(tmp_path):
    """A file of the user's outside any store, with bytes found nowhere else."""
    path = tmp_path / "victim.txt"
    path.write_bytes(b"VICTIM-" + secrets.token_hex(16).encode() + b"\n")
    return path


def assert_victim_untouched(victim, before, *, planted=()):
    """The victim is as it was, and its bytes are in no file but those ``planted`` by the test."""
    assert victim.read_bytes() == before
    leaks = [
        name
        for name, data in files_under(victim.parent).items()
        if before in data and name != victim.name and not name.startswith(tuple(planted))
    ]
    assert not leaks, f"the victim's bytes were copied into {leaks}"


# -- 1. links, FIFOs and unknown files in a store folder -----------------------------------------


def _plant_link(store, victim, key):
    path = store / key
    if path.exists():
        path.unlink()
    path.symlink_to(victim)


def _plant_folder_link(store, victim, key):
    """Move the folder ``key`` outside the store, put the victim's bytes in one of its chunks
    and link the folder back."""
    outside = victim.parent / "outside"
    shutil.move(store / key, outside)
    chunk = next(path for path in sorted(outside.rglob("*")) if path.is_file())
    chunk.write_bytes(victim.read_bytes())
    (store / key).symlink_to(outside, target_is_directory=True)


def _plant_fifo(store, victim, key):
    (store / key).unlink()
    os.mkfifo(store / key)


def _plant_dev_zero(store, victim, key):
    (store / key).unlink()
    (store / key).symlink_to("/dev/zero")


def _plant_file(store, victim, key):
    (store / key).write_bytes(b"notes of the sender")


STRANGERS = {
    "a link named README.txt": (_plant_link, "README.txt", "a symbolic link"),
    "a chunk linked out": (_plant_link, "features/audio/values/c/0/0", "a symbolic link"),
    "a folder linked out": (_plant_folder_link, "features/audio/values/c", "a symbolic link"),
    "a chunk linked to /dev/zero": (_plant_dev_zero, "clips/clip_id/c/0", "a symbolic link"),
    "a FIFO chunk": (_plant_fifo, "features/audio/timestamps/c/0", "a FIFO"),
    "an unknown file": (_plant_file, "features/audio/notes.txt", "not a file of the store"),
}


@pytest.mark.parametrize("case", list(STRANGERS))
def test_a_store_folder_holding_a_stranger_is_refused_and_never_followed(
    source, tmp_path, victim, case
):
    plant, key, what = STRANGERS[case]
    store = tmp_path / "s.zarr"
    shutil.copytree(source / "s.zarr", store)
    before = victim.read_bytes()
    plant(store, victim, key)
    for command, out in (("pack", tmp_path / "out.zarr.zip"), ("export", tmp_path / "out.h5")):
        line = refusal(run(command, store, "--out", out), command)
        assert key in line and what in line and "not part of a feature store" in line
        assert not out.exists()
    assert key in refusal(run("info", store), "info")
    verified = run("verify", store)
    assert verified.returncode == 1, verified
    listed = [
        line
        for line in verified.stdout.splitlines()
        if line.endswith("; not part of a feature store")
    ]
    assert len(listed) == 1 and listed[0].startswith(f"{key}: {what}"), verified.stdout
    assert_victim_untouched(victim, before, planted=["outside"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.zarr", "victim.txt"] + (["outside"] if case == "a folder linked out" else [])
    )


def test_every_reader_of_a_local_store_refuses_a_stranger_in_one_line(source, tmp_path, victim):
    store = tmp_path / "s.zarr"
    shutil.copytree(source / "s.zarr", store)
    _plant_link(store, victim, "features/audio/values/c/1/0")
    with pytest.raises(StoreFormatError) as refused:
        FeatureStore.open(store)
    assert "\n" not in str(refused.value) and "features/audio/values/c/1/0" in str(refused.value)
    line = refusal(
        run("train", store, "--features", "audio", "--preset", "fast", "--out", tmp_path / "run"),
        "train",
    )
    assert "features/audio/values/c/1/0: a symbolic link" in line
    assert not (tmp_path / "run").exists()


# -- 2. zip bombs and entries that reach beyond what they declare --------------------------------


def _rewrite(archive, out, *, replace=None, add=None):
    """Copy ``archive`` to ``out`` entry by entry (stored), with entries replaced or added."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for entry in src.infolist():
            data = replace.get(entry.filename, src.read(entry))
            if data is not None:
                dst.writestr(entry, data)
        for name, data in add.items():
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out


def _central_records(data):
    """{name: offset} of the central directory records of the zip file ``data``."""
    with zipfile.ZipFile(io.BytesIO(data)) as handle:
        offset, records = handle.start_dir, {}
        for _ in handle.infolist():
            sizes = struct.unpack_from("<3H", data, offset + 28)
            name = data[offset + 46 : offset + 46 + sizes[0]].decode()
            records[name] = offset
            offset += 46 + sum(sizes)
    return records


def _patch(path, name, **fields):
    """Set fields of entry ``name``'s local header and central record (method, crc,
    compress_size, file_size, header_offset)."""
    data = bytearray(path.read_bytes())
    local = zipfile.ZipFile(path).getinfo(name).header_offset
    central = _central_records(bytes(data))[name]
    layout = {
        "method": ("<H", 8, 10),
        "crc": ("<I", 14, 16),
        "compress_size": ("<I", 18, 20),
        "file_size": ("<I", 22, 24),
        "header_offset": ("<I", None, 42),
    }
    for field, value in fields.items():
        form, in_local, in_central = layout[field]
        if in_local is not None:
            struct.pack_into(form, data, local + in_local, value)
        struct.pack_into(form, data, central + in_central, value)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def bomb_stream():
    """A raw DEFLATE stream of :data:`BOMB_BYTES` zero bytes (about 3 MB) and their CRC-32.

    After a full flush, deflate starts afresh, so one compressed MiB repeats as is."""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    n_blocks = BOMB_BYTES >> 20
    stream = first + block * (n_blocks - 1) + compressor.flush()
    crc = 0
    for _ in range(n_blocks):
        crc = zlib.crc32(zeros, crc)
    return stream, crc


def _bomb(source, tmp_path, bomb_stream, name):
    """The archive with entry ``name`` replaced by the DEFLATE bomb (a valid entry: an
    unchecked reader inflates all of it)."""
    stream, crc = bomb_stream
    bomb = _rewrite(source / "s.zarr.zip", tmp_path / "bomb.zarr.zip", replace={name: stream})
    _patch(bomb, name, method=zipfile.ZIP_DEFLATED, crc=crc, file_size=BOMB_BYTES)
    with zipfile.ZipFile(bomb) as handle:
        entry = handle.getinfo(name)
        assert entry.file_size == BOMB_BYTES and entry.compress_type == zipfile.ZIP_DEFLATED
        with handle.open(name) as inflating:  # a real bomb: it inflates
            assert inflating.read(1 << 20) == bytes(1 << 20)
    assert bomb.stat().st_size < 10 << 20
    return bomb


@pytest.mark.parametrize("name", ["zarr.json", "clips/clip_id/c/0"])
def test_a_zip_bomb_is_refused_before_anything_is_inflated(source, tmp_path, bomb_stream, name):
    bomb = _bomb(source, tmp_path, bomb_stream, name)
    commands = {
        "info": [bomb],
        "verify": [bomb],
        "train": [bomb, "--features", "audio", "--preset", "fast", "--out", tmp_path / "run"],
        "unpack": [bomb, "--out", tmp_path / "out.zarr"],
    }
    for command, args in commands.items():
        result = run(command, *args)
        line = refusal(result, command)
        assert f"entry '{name}' is compressed" in line
        assert result.peak < PEAK_LIMIT, f"{command}: peak {result.peak >> 20} MiB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zarr.zip"]


def test_reading_the_clean_archive_stays_far_below_the_memory_limit(source, tmp_path):
    """The measurement above is of the same commands doing real work."""
    archive = source / "s.zarr.zip"
    for args in (
        ["verify", archive],
        ["train", archive, "--features", "audio", "--preset", "fast", "--out", tmp_path / "run"],
        ["unpack", archive, "--out", tmp_path / "out.zarr"],
    ):
        result = run(*args)
        assert result.returncode == 0, result
        assert result.peak < PEAK_LIMIT
    assert FeatureStore.open(tmp_path / "out.zarr").verify() == []


def test_a_store_zipped_without_compression_by_another_tool_is_read(source, tmp_path):
    """Entries with real times and folder entries, as zip tools write them, pass the checks."""
    archive = tmp_path / "other.zarr.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as handle:
        for path in sorted((source / "s.zarr").rglob("*")):
            handle.write(path, path.relative_to(source / "s.zarr").as_posix())
    with zipfile.ZipFile(archive) as handle:
        assert any(entry.is_dir() for entry in handle.infolist())
        assert all(entry.date_time != (1980, 1, 1, 0, 0, 0) for entry in handle.infolist())
    assert FeatureStore.open(archive).verify() == []
    unpack_archive(archive, tmp_path / "out.zarr")
    assert files_under(tmp_path / "out.zarr") == files_under(source / "s.zarr")


def _overlapping(archive, out):
    """Entry ``clips/city/c/0`` stretched over the entry after it."""
    copy = _rewrite(archive, out)
    with zipfile.ZipFile(copy) as handle:
        entries = sorted(handle.infolist(), key=lambda entry: entry.header_offset)
        first = next(i for i, entry in enumerate(entries) if entry.filename == "clips/city/c/0")
        stretched, following = entries[first], entries[first + 1]
    data_start = stretched.header_offset + 30 + len(stretched.filename) + len(stretched.extra)
    size = (
        following.header_offset
        + 30
        + len(following.filename)
        + len(following.extra)
        + following.compress_size
        - data_start
    )
    _patch(copy, "clips/city/c/0", compress_size=size, file_size=size)
    return copy, f"entry 'clips/city/c/0' overlaps entry '{following.filename}'"


def _size_mismatch(archive, out):
    copy = _rewrite(archive, out)
    size = zipfile.ZipFile(copy).getinfo("clips/city/c/0").compress_size
    _patch(copy, "clips/city/c/0", file_size=size * 1000)
    return copy, f"entry 'clips/city/c/0' declares {size * 1000} bytes but stores {size}"


def _oversized_chunk(archive, out):
    """A chunk of 16 x 8 float32 values (512 bytes) stored as 1 MiB."""
    name = "features/audio/values/c/0/0"
    copy = _rewrite(archive, out, replace={name: os.urandom(1 << 20)})
    return copy, f"entry '{name}' declares {1 << 20} bytes, more than a chunk of its array"


def _past_the_end(archive, out):
    copy = _rewrite(archive, out)
    _patch(copy, "clips/city/c/0", header_offset=copy.stat().st_size + 1000)
    return copy, "entry 'clips/city/c/0'"


@pytest.mark.parametrize("forge", [_overlapping, _size_mismatch, _oversized_chunk, _past_the_end])
def test_an_entry_is_read_only_within_the_archive_and_its_declared_size(source, tmp_path, forge):
    archive, expected = forge(source / "s.zarr.zip", tmp_path / "forged.zarr.zip")
    with pytest.raises(StoreFormatError) as refused:
        FeatureStore.open(archive)
    assert expected in str(refused.value) and "\n" not in str(refused.value), refused.value
    with pytest.raises(StoreFormatError, match="refused"):
        unpack_archive(archive, tmp_path / "out.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forged.zarr.zip"]


def test_a_deeply_nested_metadata_document_is_refused_in_one_line(source, tmp_path):
    archive = _rewrite(
        source / "s.zarr.zip", tmp_path / "deep.zarr.zip", replace={"zarr.json": b"[" * 200_000}
    )
    for command, args in (("info", []), ("unpack", ["--out", tmp_path / "out.zarr"])):
        line = refusal(run(command, archive, *args), command)
        assert "is not a zarr v3 group" in line and "recursion" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.zarr.zip"]


# -- 3. leases and temporary files in an archive -------------------------------------------------


def test_unpack_drops_leases_and_temporary_files(source, tmp_path):
    lease = json.dumps({"token": "0" * 32, "host": "elsewhere", "pid": 1}).encode()
    archive = _rewrite(
        source / "s.zarr.zip",
        tmp_path / "leased.zarr.zip",
        add={
            "leases/store.json": lease,
            "leases/features/audio/0.json": lease,
            "features/audio/values/c/0/0.0123456789abcdef0123456789abcdef.partial": b"half",
            "zarr.json.89abcdef.partial": b"{",
        },
    )
    assert FeatureStore.open(archive).verify() == []
    result = run("unpack", archive, "--out", tmp_path / "out.zarr")
    assert result.returncode == 0, result
    names = files_under(tmp_path / "out.zarr")
    assert not [name for name in names if name.startswith("leases") or ".partial" in name]
    assert set(names) == set(files_under(source / "s.zarr"))
    store = FeatureStore.open(tmp_path / "out.zarr", mode="r+")
    assert store.verify() == [] and store.temporary_files() == []
    store.block_writer("audio", 0).close()  # no lease of the archive's is in the way


# -- 4. names a store cannot hold ----------------------------------------------------------------

UNCREATABLE = {
    "a 300-character name": ("features/" + "a" * 300 + "/zarr.json", "longer than 255 bytes"),
    "3,000 levels": ("/".join(["a"] * 3000) + "/zarr.json", "nests deeper than a store"),
    "a file and a folder": ("features/audio/values/c/0", "is both a file and a folder"),
}


@pytest.mark.parametrize("case", list(UNCREATABLE))
def test_unpack_refuses_a_name_it_cannot_create_before_writing(source, tmp_path, case):
    name, expected = UNCREATABLE[case]
    archive = _rewrite(source / "s.zarr.zip", tmp_path / "names.zarr.zip", add={name: b"{}"})
    result = run("unpack", archive, "--out", tmp_path / "out.zarr")
    line = refusal(result, "unpack")
    assert expected in line and len(line) < 1000, line
    assert refusal(run("info", archive), "info") == line.replace("unpack", "info", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.zarr.zip"]


def test_unpack_refuses_chunks_outside_their_arrays_before_writing(source, tmp_path):
    """Thousands of such entries would each become a file before verify refused them."""
    outside = {f"features/audio/values/c/{10_000 + i}/0": b"x" for i in range(3)}
    archive = _rewrite(source / "s.zarr.zip", tmp_path / "grid.zarr.zip", add=outside)
    line = refusal(run("unpack", archive, "--out", tmp_path / "out.zarr"), "unpack")
    assert (
        "3 entries are chunks outside their arrays, e.g. 'features/audio/values/c/10000/0'" in line
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.zarr.zip"]


# -- 5. node documents against the consolidated metadata -----------------------------------------


def _with_params(document, hop):
    document = json.loads(document)
    document["attributes"]["params"] = {"hop": hop}
    return json.dumps(document).encode()


def _node_changed(archive):
    with zipfile.ZipFile(archive) as handle:
        return {
            "features/audio/zarr.json": _with_params(handle.read("features/audio/zarr.json"), 0.5)
        }


def _copy_changed(archive):
    with zipfile.ZipFile(archive) as handle:
        root = json.loads(handle.read("zarr.json"))
    copies = root["consolidated_metadata"]["metadata"]
    copies["features/audio"]["attributes"]["params"] = {"hop": 0.5}
    return {"zarr.json": json.dumps(root).encode()}


@pytest.mark.parametrize("change", [_node_changed, _copy_changed])
def test_an_archive_whose_documents_disagree_with_its_consolidated_copy(source, tmp_path, change):
    archive = _rewrite(
        source / "s.zarr.zip", tmp_path / "two.zarr.zip", replace=change(source / "s.zarr.zip")
    )
    expected = "features/audio/zarr.json differs from its copy in the root's consolidated metadata"
    verified = run("verify", archive)
    assert verified.returncode == 1 and expected in verified.stdout, verified
    line = refusal(run("unpack", archive, "--out", tmp_path / "out.zarr"), "unpack")
    assert expected in line and "would see different stores" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.zarr.zip"]


# -- 6. a full disk ------------------------------------------------------------------------------


def _full_disk_case(source, tmp_path, command):
    """(arguments, target, file-size limit, the existing target) of a command whose largest
    file is twice the limit."""
    store, archive, h5 = source / "s.zarr", source / "s.zarr.zip", source / "s.h5"
    root_document = (store / "zarr.json").stat().st_size
    return {
        "pack": ([store], tmp_path / "out.zarr.zip", archive.stat().st_size // 2),
        "export": ([store, "--compression", "none"], tmp_path / "out.h5", h5.stat().st_size // 2),
        "unpack": ([archive], tmp_path / "out.zarr", root_document // 2),
        "import": ([h5], tmp_path / "out.zarr", root_document // 2),
    }[command]


def _existing_target(source, target):
    if target.suffix in (".zip", ".h5"):
        target.write_bytes(b"the previous file")
    else:
        shutil.copytree(source / "s.zarr", target)
        FeatureStore.open(target, mode="r+").attrs["note"] = "the previous store"


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("command", ["pack", "export", "unpack", "import"])
def test_a_full_disk_ends_a_writer_in_one_line_with_nothing_half_written(
    source, tmp_path, command, existing
):
    args, target, limit = _full_disk_case(source, tmp_path, command)
    if existing:
        _existing_target(source, target)
    before = files_under(tmp_path)
    result = run(
        command, *args, "--out", target, *(["--overwrite"] if existing else []), fsize=limit
    )
    line = refusal(result, command, status=1)
    assert "File too large" in line and "nothing was left half-written" in line
    assert files_under(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ([target.name] if existing else [])
