"""What a store may hold: the one definition of the files of the store format, checked before
anything is read from a local folder or a zip archive.

A store (a folder, or a zip archive written by ``avscene pack``) holds only these keys:

- **metadata**: ``zarr.json`` of the root and of every group and array;
- **chunks**: ``<array>/c/<i>[/<j>...]`` (zarr v3's default chunk key encoding, digits only),
  where ``<array>/zarr.json`` is a key of the store too;
- **leases**: anything under ``leases/`` at the root (writers' leases; never packed);
- **temporary files**: names ending in ``.partial`` (leftovers of writes; never packed).

Every key is a plain relative path: components neither empty nor ``.`` or ``..``, no
backslashes or control characters, at most :data:`MAX_NAME_BYTES` bytes each, at most
:data:`MAX_KEY_DEPTH` of them; no key is both a file and a folder. In a folder, every entry must
be a regular file or a directory: symbolic links, FIFOs, devices and sockets are refused and
never followed or opened (the folder is walked with ``os.scandir`` without following links).
Metadata documents and leases have bounded sizes.

A zip archive must hold **stored** (uncompressed, unencrypted) entries only, each inside the
archive's data area and overlapping no other, with a size no larger than its chunk can be, so
that reading an archive never inflates anything and never reads more than the archive holds.
"""

import json
import os
import stat
import struct
import zipfile

import numpy as np

from featurestore.errors import StoreFormatError
from featurestore.store.concurrency.files import is_temporary
from featurestore.store.concurrency.leases import LEASE_DIR
from featurestore.store.layout import MAX_CHUNK_BYTES, parse_chunk_key

METADATA_NAME = "zarr.json"
#: A store's deepest key has 7 components (``segments/<f>/<pooling>/values/c/<i>/<j>``).
MAX_KEY_DEPTH = 12
#: The longest file name most file systems can create.
MAX_NAME_BYTES = 255
MAX_KEY_BYTES = 1024
#: A metadata document (the root's carries the consolidated metadata of every node).
MAX_METADATA_BYTES = 16 << 20
MAX_LEASE_BYTES = 1 << 16
#: What a compressor and the checksum may add to a chunk's raw bytes, at most.
CHUNK_OVERHEAD = 4096
#: Strangers named in one refusal (verify lists them all).
SHOWN = 5

#: A zip entry's local header: signature, versions, flags, method (field 4), time, date, CRC,
#: sizes, then the lengths of the name (field 10) and of the extra field (field 11).
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def key_problem(key):
    """Why ``key`` is not a plain relative key a store can hold, or None."""
    parts = key.split("/")
    if (
        any(part in ("", ".", "..") for part in parts)
        or "\\" in key
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in key)
    ):
        return "is not a plain relative key"
    try:
        encoded = [part.encode("utf-8") for part in parts]
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if max(len(part) for part in encoded) > MAX_NAME_BYTES:
        return f"has a name longer than {MAX_NAME_BYTES} bytes"
    if len(parts) > MAX_KEY_DEPTH or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"nests deeper than a store ({MAX_KEY_DEPTH} levels, {MAX_KEY_BYTES} bytes)"
    return None


def key_kind(key, metadata_keys):
    """``metadata``, ``chunk``, ``lease``, ``temporary`` or None (not part of a store).

    ``metadata_keys``: the set of the store's keys that end in ``zarr.json``.
    """
    if key.split("/")[0] == LEASE_DIR:
        return "lease"
    if is_temporary(key):
        return "temporary"
    if key == METADATA_NAME or key.endswith("/" + METADATA_NAME):
        return "metadata"
    parsed = parse_chunk_key(key)
    if parsed and f"{parsed[0]}/{METADATA_NAME}" in metadata_keys:
        return "chunk"
    return None


def _kind_problem(key, kind, size):
    """Why a file of this kind and size does not belong to a store, or None."""
    if kind is None:
        return "not a file of the store format"
    if kind == "metadata" and size > MAX_METADATA_BYTES:
        return f"a metadata document of {size} bytes (at most {MAX_METADATA_BYTES})"
    if kind == "lease" and size > MAX_LEASE_BYTES:
        return f"a lease of {size} bytes (at most {MAX_LEASE_BYTES})"
    return None


def classify(sizes):
    """({key: kind} of the store's files, [(key, why)] of the others) for {key: size}."""
    metadata = {key for key in sizes if key == METADATA_NAME or key.endswith("/" + METADATA_NAME)}
    kinds, strangers = {}, []
    for key in sorted(sizes):
        problem = key_problem(key)
        kind = None if problem else key_kind(key, metadata)
        problem = problem or _kind_problem(key, kind, sizes[key])
        if problem:
            strangers.append((key, problem))
        else:
            kinds[key] = kind
    return kinds, strangers


def shown(name, limit=120):
    """``name`` as it goes into a one-line message: printable, and cut at ``limit``."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= limit else f"{text[:limit]}..."


def refusal(label, strangers, *, what=("file", "files")):
    """The one-line error naming the first few strangers; ``what``: (singular, plural)."""
    listed = "; ".join(f"{shown(key)}: {why}" for key, why in strangers[:SHOWN])
    more = f"; and {len(strangers) - SHOWN} more" if len(strangers) > SHOWN else ""
    count = (
        f"1 {what[0]} that is" if len(strangers) == 1 else f"{len(strangers)} {what[1]} that are"
    )
    return StoreFormatError(
        f"{label} holds {count} not part of a feature store "
        f"({listed}{more}); refused, nothing was read from them"
    )


# -- local folders ------------------------------------------------------------------------------


def _entry_problem(entry):
    """Why a directory entry is neither a regular file nor a directory, or None."""
    if entry.is_symlink():
        try:
            return f"a symbolic link (to {shown(os.readlink(entry.path))}), never followed"
        except OSError:
            return "a symbolic link, never followed"
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"{kind}, never opened"


def scan_folder(root):
    """Walk the store folder ``root`` without following links.

    Returns
    -------
    kinds : dict
        {key: kind} of the files of the store format (see the module docstring).
    strangers : list of (str, str)
        (key, why) of everything else, sorted by key.
    """
    sizes, strangers, pending = {}, [], [("", 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            with os.scandir(os.path.join(root, folder) if folder else root) as entries:
                listed = list(entries)
        except (FileNotFoundError, NotADirectoryError):  # removed meanwhile (a lease folder)
            continue
        for entry in listed:
            key = f"{folder}/{entry.name}" if folder else entry.name
            try:
                problem = _entry_problem(entry)
                if problem is None and entry.is_dir(follow_symlinks=False):
                    if depth + 1 >= MAX_KEY_DEPTH:
                        problem = f"a folder nested deeper than a store ({MAX_KEY_DEPTH} levels)"
                    else:
                        pending.append((key, depth + 1))
                        continue
                elif problem is None:
                    sizes[key] = entry.stat(follow_symlinks=False).st_size
                    continue
            except FileNotFoundError:  # a temporary file renamed meanwhile
                continue
            strangers.append((key, problem))
    kinds, others = classify(sizes)
    return kinds, sorted(strangers + others)


def check_folder(root, label):
    """Refuse the store folder ``root`` (one line) if it holds anything but a store's files.

    Returns
    -------
    dict
        {key: kind} of its files.
    """
    kinds, strangers = scan_folder(root)
    if strangers:
        raise refusal(label, strangers)
    return kinds


def folder_problems(root):
    """One line per entry of the store folder ``root`` that is not part of a store."""
    _, strangers = scan_folder(root)
    return [f"{shown(key)}: {why}; not part of a feature store" for key, why in strangers]


# -- zip archives -------------------------------------------------------------------------------


def check_zip_directory(archive, label, *, local_headers):
    """Refuse (one line) a zip archive that is not a plain store archive.

    Checks the central directory against itself and the archive's data area before any entry
    is read: every entry stored (not compressed, not encrypted), with equal declared and stored
    sizes; names that are plain, distinct, creatable store keys (no key both a file and a
    folder); no entry reaching past the start of the central directory or into another; no
    entry larger than its chunk (or a metadata document) can be. With ``local_headers`` (a
    local file: cheap to read) each entry's own header must agree with the directory.

    Parameters
    ----------
    archive : zipfile.ZipFile
    label : str
        The archive's path or URL, for messages.
    local_headers : bool
    """
    entries = archive.infolist()
    _check_names(entries, label)
    spans = []
    for entry in entries:
        _check_stored(entry, label)
        start = entry.header_offset
        header = (
            _local_header_size(archive, entry, label)
            if local_headers
            else _ZIP_LOCAL_HEADER.size + len(_raw_name(entry)) + len(entry.extra)
        )
        what = f"entry '{shown(entry.filename)}'"
        spans.append((start, start + header + entry.compress_size, what))
    spans.sort()
    following = [(start, what) for start, _, what in spans[1:]] + [
        (archive.start_dir, "the central directory")
    ]
    for (start, stop, what), (next_start, next_what) in zip(spans, following):
        if start < 0 or stop > next_start:
            raise StoreFormatError(
                f"{label}: {what} overlaps {next_what}; refused (not an "
                f"archive written by avscene pack)"
            )
    _check_sizes(archive, entries, label)


def _raw_name(entry):
    encoding = "utf-8" if entry.flag_bits & 0x800 else "cp437"
    try:
        return entry.orig_filename.encode(encoding)
    except UnicodeEncodeError:
        return entry.orig_filename.encode("utf-8")


def _check_names(entries, label):
    names, seen = [entry.filename for entry in entries], set()
    for name in names:
        if name in seen:
            raise StoreFormatError(f"{label}: entry '{shown(name)}' appears twice; refused")
        seen.add(name)
    files = {name for name in names if not name.endswith("/")}
    for name in names:
        key = name.removesuffix("/")
        problem = key_problem(key) if key else "is not a plain relative key"
        if problem:
            raise StoreFormatError(
                f"{label}: entry '{shown(name)}' {problem}; refusing to read or unpack it"
            )
        parts = key.split("/")
        clash = next(
            ("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in files),
            None,
        )
        if clash is not None or (name.endswith("/") and key in files):
            raise StoreFormatError(
                f"{label}: '{shown(clash or key)}' is both a file and a folder; refused"
            )
    sizes = dict.fromkeys(files, 0)
    _, strangers = classify(sizes)
    if strangers:
        raise refusal(label, strangers, what=("entry", "entries"))


def _check_stored(entry, label):
    if entry.flag_bits & 0x1:
        raise StoreFormatError(f"{label}: entry '{shown(entry.filename)}' is encrypted; refused")
    if entry.compress_type != zipfile.ZIP_STORED:
        raise StoreFormatError(
            f"{label}: entry '{shown(entry.filename)}' is compressed (method "
            f"{entry.compress_type}); a store archive holds stored entries "
            f"only (avscene pack writes them); refused"
        )
    if entry.file_size != entry.compress_size:
        raise StoreFormatError(
            f"{label}: entry '{shown(entry.filename)}' declares "
            f"{entry.file_size} bytes but stores {entry.compress_size}; "
            f"refused"
        )


def _local_header_size(archive, entry, label):
    """Size of ``entry``'s local header, which must name the entry and store it as the
    directory says."""
    archive.fp.seek(entry.header_offset)
    header = archive.fp.read(_ZIP_LOCAL_HEADER.size)
    if len(header) != _ZIP_LOCAL_HEADER.size:
        raise StoreFormatError(
            f"{label}: entry '{shown(entry.filename)}' starts past the end of the archive; refused"
        )
    fields = _ZIP_LOCAL_HEADER.unpack(header)
    name = archive.fp.read(fields[10])
    if fields[0] != b"PK\x03\x04" or fields[4] != zipfile.ZIP_STORED or name != _raw_name(entry):
        raise StoreFormatError(
            f"{label}: the local header of entry '{shown(entry.filename)}' "
            f"disagrees with the archive's directory; refused"
        )
    return _ZIP_LOCAL_HEADER.size + fields[10] + fields[11]


def _check_sizes(archive, entries, label):
    """No metadata document above :data:`MAX_METADATA_BYTES`; no chunk larger than its array's
    chunk can be encoded (from the root's consolidated metadata, when it has any)."""
    for entry in entries:
        if key_kind(entry.filename, ()) == "metadata" and entry.file_size > MAX_METADATA_BYTES:
            raise StoreFormatError(
                f"{label}: entry '{shown(entry.filename)}' declares "
                f"{entry.file_size} bytes, more than a metadata document may "
                f"hold ({MAX_METADATA_BYTES}); refused"
            )
    bounds = _chunk_bounds(archive)
    for entry in entries:
        parsed = parse_chunk_key(entry.filename)
        if parsed is None:
            continue
        bound = bounds.get(parsed[0], MAX_CHUNK_BYTES + CHUNK_OVERHEAD)
        if entry.file_size > bound:
            raise StoreFormatError(
                f"{label}: entry '{shown(entry.filename)}' declares "
                f"{entry.file_size} bytes, more than a chunk of its array "
                f"can hold ({bound}); refused"
            )


def _chunk_bounds(archive):
    """{array path: largest encoded chunk} from the consolidated metadata of the root
    ``zarr.json`` (empty if it has none or cannot be parsed: zarr refuses it later)."""
    try:
        root = json.loads(archive.read(METADATA_NAME))
        nodes = root["consolidated_metadata"]["metadata"]
        return {
            path: encoded_chunk_bound(node)
            for path, node in nodes.items()
            if isinstance(node, dict) and node.get("node_type") == "array"
        }
    except (KeyError, TypeError, ValueError, RecursionError, zipfile.BadZipFile):
        return {}


def encoded_chunk_bound(node):
    """Largest size in bytes a stored chunk of the array described by ``node`` (its zarr.json
    as a dict) can have: its raw size plus what a compressor and the checksum add, at most
    :data:`~featurestore.store.layout.MAX_CHUNK_BYTES` plus that (strings: that bound)."""
    try:
        shape = node["chunk_grid"]["configuration"]["chunk_shape"]
        itemsize = np.dtype(node["data_type"]).itemsize
        raw = int(np.prod([int(n) for n in shape], dtype=np.float64)) * itemsize
    except (KeyError, TypeError, ValueError):
        return MAX_CHUNK_BYTES + CHUNK_OVERHEAD
    return min(raw, MAX_CHUNK_BYTES) + (min(raw, MAX_CHUNK_BYTES) >> 7) + CHUNK_OVERHEAD


# -- consolidated metadata ----------------------------------------------------------------------


def consolidated_mismatches(documents):
    """Node documents that differ from their copy in the root's consolidated metadata.

    Parameters
    ----------
    documents : dict
        {key: bytes} of every ``zarr.json`` of the store (the root's included).

    Returns
    -------
    list of str
        One line per difference; empty if they agree or the root carries no consolidated
        metadata (readers then read every node's own document).
    """
    try:
        root = json.loads(documents[METADATA_NAME])
        copies = root.get("consolidated_metadata") or {}
        copies = copies.get("metadata") if isinstance(copies, dict) else None
    except (KeyError, AttributeError, ValueError, RecursionError):
        return []
    if not isinstance(copies, dict):
        return []
    problems = []
    nodes = {
        key[: -len(METADATA_NAME) - 1]: data
        for key, data in documents.items()
        if key != METADATA_NAME
    }
    for path in sorted(set(nodes) | set(copies)):
        document = f"{shown(str(path))}/{METADATA_NAME}"
        if path not in nodes:
            problems.append(f"{document}: absent, but listed in the root's consolidated metadata")
        elif path not in copies:
            problems.append(f"{document}: absent from the root's consolidated metadata")
        elif _document(nodes[path]) != _document(copies[path]):
            problems.append(
                f"{document} differs from its copy in the root's consolidated metadata"
            )
    return problems


def chunks_outside(keys, root_document):
    """Chunk keys that lie outside their array's chunk grid, as the consolidated metadata of
    ``root_document`` (the root ``zarr.json``, bytes) declares it; none if it has no such
    metadata."""
    try:
        nodes = json.loads(root_document)["consolidated_metadata"]["metadata"]
    except (KeyError, TypeError, ValueError, RecursionError):
        return []
    outside = []
    for key in keys:
        parsed = parse_chunk_key(key)
        node = nodes.get(parsed[0]) if parsed and isinstance(nodes, dict) else None
        if isinstance(node, dict) and not _inside_grid(parsed[1], node):
            outside.append(key)
    return outside


def _inside_grid(coords, node):
    """True if the chunk coordinates (``(3, 0)``) address a chunk of the array ``node``
    declares."""
    try:
        shape, chunks = node["shape"], node["chunk_grid"]["configuration"]["chunk_shape"]
        grid = [-(-int(size) // int(chunk)) for size, chunk in zip(shape, chunks)]
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return True  # zarr refuses such metadata itself
    parts = list(coords)
    return len(parts) == len(grid) and all(part < size for part, size in zip(parts, grid))


def _document(data):
    """A node's metadata as a dict, without the (nested) consolidated metadata of groups."""
    try:
        document = json.loads(data) if isinstance(data, (bytes, str)) else dict(data)
    except (TypeError, ValueError, RecursionError):
        return None
    if isinstance(document, dict):
        document.pop("consolidated_metadata", None)
    return document
