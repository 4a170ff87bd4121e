"""Stores and archives read over HTTP(S), from servers that may be hostile.

``http://`` and ``https://`` URLs are read with a small client of avscene's own (on aiohttp, the
``remote`` extra), not with fsspec's HTTP file system, which reads every answer whole, follows
redirects to any host and lists folders by parsing their HTML. Every request here is bounded:

- **Size.** An answer is streamed, and reading stops as soon as it passes what is expected: a
  metadata document (``zarr.json``) at most :data:`MAX_METADATA_BYTES`, a chunk at most
  :data:`MAX_CHUNK_BYTES`, a byte range exactly the bytes asked for. A ``Content-Length`` beyond
  the limit is refused before the body is read, and one larger than the body sent is an error.
  Compressed transfer encodings are not asked for, and refused.
- **Time.** Each request, from connecting to the last byte of its answer and through its
  redirects, has ``timeout`` seconds (:data:`DEFAULT_TIMEOUT`; ``--timeout`` or
  ``AVSCENE_HTTP_TIMEOUT``).
- **Place.** Redirects are followed within the origin of the URL (scheme, host and port), at most
  :data:`MAX_REDIRECTS` of them; a redirect to another origin is refused unless allowed
  (``--allow-redirects`` or ``AVSCENE_HTTP_ALLOW_REDIRECTS=1``), and then the request headers
  given in the storage options are not sent there.
- **Listing.** Never. A store is opened from its consolidated metadata, and ``info`` reads the
  sizes recorded there (:mod:`featurestore.store.sizes`); reading a store without consolidated
  metadata, or anything that must list a store (``verify``, ``export``, ``pack``), stops with
  one line.

Every failure is one :class:`~featurestore.errors.RemoteStoreError` line naming the URL.
"""

import asyncio
import atexit
import contextlib
import io
import math
import os
import threading
import zipfile
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, urljoin, urlsplit

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.sync import sync

from featurestore.errors import (
    RemoteStoreError,
    StoreFormatError,
    StoreNotFoundError,
    UsageError,
)
from featurestore.limits import HTTP_TIMEOUT

MiB = 1 << 20
#: The largest metadata document (``zarr.json``) read over HTTP.
MAX_METADATA_BYTES = 64 * MiB
#: The largest chunk read over HTTP: avscene decodes chunks of at most 1 GiB, plus codec headers.
MAX_CHUNK_BYTES = 1024 * MiB + MiB
#: The largest zip directory of an archive read over HTTP (about three million entries).
MAX_ZIP_DIRECTORY_BYTES = 256 * MiB
#: Seconds each request may take, from connecting to the last byte of the answer.
DEFAULT_TIMEOUT = 60.0
MAX_REDIRECTS = 5
TIMEOUT_ENV = "AVSCENE_HTTP_TIMEOUT"
REDIRECTS_ENV = "AVSCENE_HTTP_ALLOW_REDIRECTS"
#: Bytes read from the end of an archive first (its size, zip directory and root document) and
#: read ahead of each entry (its header and, for a small entry, its data: one request).
ARCHIVE_TAIL_BYTES = ARCHIVE_READ_AHEAD = MiB
OPTION_NAMES = ("timeout", "allow_redirects", "headers")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MISSING_STATUSES = (404, 410)


@dataclass(frozen=True)
class HttpOptions:
    """How to read over HTTP: seconds per request, redirects to other origins, extra headers
    (``(name, value)`` pairs, e.g. an ``Authorization`` header)."""

    timeout: float = DEFAULT_TIMEOUT
    allow_redirects: bool = False
    headers: tuple = ()


def is_http_url(text):
    """True for an ``http://`` or ``https://`` URL."""
    return str(text).lower().startswith(("http://", "https://"))


def checked_url(url, *, folder=True):
    """``url``, if it names a host; a ``folder`` (keys are appended to its path) may have no
    query or fragment."""
    _, host, _ = _origin(url)
    if not host:
        raise StoreFormatError(f"{url!r} is not an HTTP URL with a host")
    parts = urlsplit(url)
    if folder and (parts.query or parts.fragment):
        raise StoreFormatError(
            f"{url}: a store folder URL with a query or fragment is not "
            f"read (keys are appended to its path)"
        )
    return url


def refuse_chained_http(text):
    """Refuse a chained fsspec URL over HTTP (``blockcache::https://...``), which would be read
    without the limits of this module."""
    lower = str(text).lower()
    if not is_http_url(lower) and "::" in lower and ("http://" in lower or "https://" in lower):
        raise StoreFormatError(
            f"{text}: chained URLs over HTTP are not read; name the http(s) "
            f"URL of the store or archive itself"
        )


def http_options(storage_options=None):
    """The :class:`HttpOptions` of ``storage_options`` (``timeout``, ``allow_redirects``,
    ``headers``), the environment (:data:`TIMEOUT_ENV`, :data:`REDIRECTS_ENV`) and the defaults,
    in that order."""
    given = dict(storage_options or {})
    unknown = sorted(set(given) - set(OPTION_NAMES))
    if unknown:
        raise StoreFormatError(
            f"storage option {unknown[0]!r} does not apply to HTTP(S) URLs; "
            f"avscene's HTTP client takes {', '.join(OPTION_NAMES)}"
        )
    timeout = given.get("timeout", _environment_timeout())
    try:
        HTTP_TIMEOUT.check("the HTTP timeout (seconds)", timeout)
    except ValueError as error:
        raise UsageError(str(error)) from None
    allow = given.get("allow_redirects", _environment_redirects())
    if not isinstance(allow, bool):
        raise UsageError(f"allow_redirects must be true or false, not {allow!r}")
    headers = given.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise UsageError("the HTTP headers must be a dict of strings")
    return HttpOptions(float(timeout), allow, tuple(sorted(headers.items())))


def _environment_timeout():
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = None
    if (
        value is None
        or not math.isfinite(value)
        or not HTTP_TIMEOUT.low <= value <= HTTP_TIMEOUT.high
    ):
        raise UsageError(
            f"{TIMEOUT_ENV} must be a number of seconds from {HTTP_TIMEOUT.low:g} "
            f"to {HTTP_TIMEOUT.high:g}, not {text!r}"
        )
    return value


def _environment_redirects():
    text = os.environ.get(REDIRECTS_ENV, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise UsageError(f"{REDIRECTS_ENV} must be 1 or 0, not {text!r}")


@contextlib.contextmanager
def http_settings(*, timeout=None, allow_redirects=False):
    """Within the block, reads over HTTP in this process and in the processes it starts use
    ``timeout`` and ``allow_redirects`` (set in the environment variables and restored after),
    unless storage options say otherwise. ``None`` and ``False`` leave the environment as it is."""
    changes = {}
    if timeout is not None:
        changes[TIMEOUT_ENV] = repr(float(timeout))
    if allow_redirects:
        changes[REDIRECTS_ENV] = "1"
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- one request -------------------------------------------------------------------------------


class Answer(NamedTuple):
    """A body (a bytearray) and, for a byte-range request, the size of the whole resource
    (from its Content-Range)."""

    data: bytearray
    total: object


async def fetch(url, options, *, limit, what, byte_range=None):
    """GET ``url`` within the limits of the module docstring.

    Parameters
    ----------
    url : str
    options : HttpOptions
    limit : int
        Most bytes the body may have.
    what : str
        What is read, for messages (``a metadata document``).
    byte_range : str, optional
        A ``Range`` header value (``bytes=0-99``, ``bytes=-100``): the answer must be ``206``.

    Returns
    -------
    Answer or None
        None when the server has no such resource (404, 410).
    """
    try:
        import aiohttp
    except ImportError:
        raise RemoteStoreError(
            f"{url}: reading over HTTP needs aiohttp (pip install 'avscene[remote]')"
        ) from None
    try:
        async with asyncio.timeout(options.timeout):
            return await _follow(url, options, limit=limit, what=what, byte_range=byte_range)
    except TimeoutError:
        raise RemoteStoreError(
            f"{url}: no complete answer within {options.timeout:g} s "
            f"(--timeout or {TIMEOUT_ENV} allow more)"
        ) from None
    except aiohttp.ClientPayloadError:
        raise RemoteStoreError(
            f"{url}: the answer broke off before its end (fewer bytes "
            f"than its Content-Length, or a broken transfer)"
        ) from None
    except aiohttp.ClientError as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RemoteStoreError(f"{url}: {text}") from None


async def _follow(url, options, *, limit, what, byte_range):
    """The answer at ``url``, following allowed redirects."""
    import aiohttp

    session = await _session()
    origin, current, headers = _origin(url), url, dict(options.headers)
    for _ in range(MAX_REDIRECTS + 1):
        sent = {**headers, "Accept-Encoding": "identity"}
        if byte_range:
            sent["Range"] = byte_range
        async with session.get(
            current,
            headers=sent,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=options.timeout),
        ) as answer:
            if answer.status not in REDIRECT_STATUSES:
                return await _body(current, answer, limit=limit, what=what, byte_range=byte_range)
            current = _redirect_target(url, current, answer, origin, options)
            if _origin(current) != origin:
                headers = {}  # the user's credentials stay with their origin
    raise RemoteStoreError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _origin(url):
    """(scheme, host, port) of ``url``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RemoteStoreError(f"{url.split('?')[0][:200]}: not a valid URL ({error})") from None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or default


def _redirect_target(url, current, answer, origin, options):
    """Where a redirect points; refused when it leaves ``origin`` and that is not allowed."""
    location = answer.headers.get("Location")
    if not location:
        raise RemoteStoreError(f"{current}: HTTP {answer.status} without a Location")
    try:
        target = urljoin(current, location)
    except ValueError:
        raise RemoteStoreError(f"{current}: redirected to an invalid URL") from None
    if not is_http_url(target):
        raise RemoteStoreError(
            f"{url}: redirected to {target.split('?')[0]!r}, not an HTTP URL; refused"
        )
    if _origin(target) != origin and not options.allow_redirects:
        scheme, host, port = _origin(target)
        raise RemoteStoreError(
            f"{url}: redirected to another origin ({scheme}://{host}:{port});"
            f" refused (--allow-redirects or {REDIRECTS_ENV}=1 follows it)"
        )
    return target


async def _body(url, answer, *, limit, what, byte_range):
    """The checked body of a final (not redirecting) answer."""
    if answer.status in MISSING_STATUSES:
        return None
    if byte_range and answer.status == 200:
        raise RemoteStoreError(
            f"{url}: the server ignores byte ranges (HTTP 200 to a Range "
            f"request); archives over HTTP need them"
        )
    if answer.status != (206 if byte_range else 200):
        raise RemoteStoreError(
            f"{url}: HTTP {answer.status} {(answer.reason or '')[:80]}".rstrip()
        )
    encoding = answer.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RemoteStoreError(
            f"{url}: the answer is encoded ({encoding[:40]}) although avscene "
            f"asks for identity; refused"
        )
    declared = answer.content_length
    if declared is not None and declared > limit:
        raise RemoteStoreError(
            f"{url}: the answer declares {declared:,} bytes, more than the "
            f"{limit:,} expected of {what}"
        )
    body = bytearray()
    async for piece in answer.content.iter_any():
        body += piece
        if len(body) > limit:
            raise RemoteStoreError(
                f"{url}: the answer passes {limit:,} bytes, the most "
                f"expected of {what}; stopped reading"
            )
    total = _content_range_total(url, answer, len(body)) if byte_range else None
    return Answer(body, total)  # a bytearray: a chunk is not copied again


def _content_range_total(url, answer, length):
    """The resource size of a ``206`` answer, checked against the bytes received."""
    text = answer.headers.get("Content-Range", "")
    try:
        unit, _, rest = text.partition(" ")
        span, _, total = rest.partition("/")
        first, _, last = span.partition("-")
        first, last, total = int(first), int(last), int(total)
    except ValueError:
        raise RemoteStoreError(
            f"{url}: a partial answer without a valid Content-Range ({text[:80]!r})"
        ) from None
    if unit != "bytes" or last - first + 1 != length or not 0 <= first <= last < total:
        raise RemoteStoreError(
            f"{url}: Content-Range {text[:80]!r} does not match the {length:,} bytes received"
        )
    return total


_client = {"loop": None, "session": None}


async def _session():
    """One aiohttp session per event loop (zarr runs one), closed when Python exits."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _client["session"]
    if session is None or session.closed or _client["loop"] is not loop:
        if _client["session"] is None:
            atexit.register(_close_session)
        session = aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        _client.update(loop=loop, session=session)
    return session


def _close_session():
    session = _client["session"]
    if session is not None and not session.closed:
        with contextlib.suppress(Exception):
            sync(session.close())


# -- a store folder ----------------------------------------------------------------------------


def is_metadata_key(key):
    """True for the key of a zarr metadata document."""
    return key == "zarr.json" or key.endswith("/zarr.json")


class HttpStore(Store):
    """A read-only zarr store over a folder served by a web server (``http://host/tau.zarr``).

    Every key is one GET of ``<url>/<key>`` with the limits of the module docstring; nothing is
    ever listed.

    Parameters
    ----------
    url : str
    options : HttpOptions
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = False

    def __init__(self, url, options):
        super().__init__(read_only=True)
        self.url = checked_url(url).rstrip("/")
        self.options = options

    def __eq__(self, other):
        return isinstance(other, HttpStore) and (self.url, self.options) == (
            other.url,
            other.options,
        )

    def __hash__(self):
        return hash((HttpStore, self.url, self.options))

    def __repr__(self):
        return f"HttpStore({self.url!r})"

    def with_read_only(self, read_only=True):
        if not read_only:
            raise RemoteStoreError(f"{self.url}: a store over HTTP is read-only")
        return HttpStore(self.url, self.options)

    def key_url(self, key):
        """The URL of one key."""
        return f"{self.url}/{quote(key, safe='/')}"

    async def get(self, key, prototype, byte_range=None):
        header, limit = _range_header(byte_range, MAX_CHUNK_BYTES)
        if limit == 0:
            return prototype.buffer.from_bytes(b"")
        metadata = is_metadata_key(key)
        if header is None and metadata:
            limit = MAX_METADATA_BYTES
        answer = await fetch(
            self.key_url(key),
            self.options,
            limit=limit,
            byte_range=header,
            what="a metadata document" if metadata else "a chunk",
        )
        return None if answer is None else prototype.buffer.from_bytes(answer.data)

    async def get_partial_values(self, prototype, key_ranges):
        return await asyncio.gather(
            *(self.get(key, prototype, byte_range) for key, byte_range in key_ranges)
        )

    async def exists(self, key):
        return await self.get(key, _bytes_prototype()) is not None

    async def set(self, key, value):
        raise RemoteStoreError(f"{self.url}: a store over HTTP is read-only")

    async def delete(self, key):
        raise RemoteStoreError(f"{self.url}: a store over HTTP is read-only")

    async def getsize(self, key):
        raise self._no_listing()

    async def getsize_prefix(self, prefix):
        raise self._no_listing()

    def list(self):
        return self._refuse_listing()

    def list_prefix(self, prefix):
        return self._refuse_listing()

    def list_dir(self, prefix):
        return self._refuse_listing()

    async def _refuse_listing(self):
        raise self._no_listing()
        yield  # an async generator, as zarr expects

    def _no_listing(self):
        return RemoteStoreError(
            f"{self.url}: avscene never lists a store over HTTP (verify, export "
            f"and pack need a local or object-storage copy)"
        )


def _range_header(byte_range, limit):
    """(``Range`` header or None, most bytes of the answer) of a zarr byte request."""
    if byte_range is None:
        return None, limit
    if isinstance(byte_range, RangeByteRequest):
        length = max(0, byte_range.end - byte_range.start)
        return f"bytes={byte_range.start}-{byte_range.end - 1}", length
    if isinstance(byte_range, OffsetByteRequest):
        return f"bytes={byte_range.offset}-", limit
    if isinstance(byte_range, SuffixByteRequest):
        return f"bytes=-{byte_range.suffix}", byte_range.suffix
    raise TypeError(f"unexpected byte request {byte_range!r}")


def _bytes_prototype():
    from zarr.core.buffer import default_buffer_prototype

    return default_buffer_prototype()


def require_consolidated(group, label):
    """Refuse a store over HTTP without consolidated metadata: reading it would need listings."""
    if getattr(group.metadata, "consolidated_metadata", None) is None:
        raise RemoteStoreError(
            f"{label} has no consolidated metadata; over HTTP avscene reads a "
            f"store only through it and never lists the server's folders "
            f"(zarr.consolidate_metadata on the store adds it)"
        )


# -- a zip archive -----------------------------------------------------------------------------


class HttpFile(io.RawIOBase):
    """A read-only, seekable file over byte-range requests (a zip archive over HTTP).

    The first use reads the last :data:`ARCHIVE_TAIL_BYTES` (the size, the zip directory and
    the root document of most archives); every other read fetches at least
    :data:`ARCHIVE_READ_AHEAD` bytes, or the whole entry when it starts where ``spans``
    (``{offset: bytes}``, from the zip directory) says an entry starts, and keeps them for the
    next read. A read longer than ``max_read`` is refused before it is asked for.
    """

    def __init__(
        self, url, options, *, max_read=MAX_CHUNK_BYTES + ARCHIVE_READ_AHEAD, reading="an entry"
    ):
        super().__init__()
        self.url, self.options = url, options
        self.max_read, self.reading = max_read, reading
        self.spans = {}
        self._position = 0
        self._size = None
        self._blocks = {}  # "tail" and "ahead": (start, bytes)
        self._lock = threading.RLock()

    def readable(self):
        return True

    def seekable(self):
        return True

    @property
    def size(self):
        """Bytes of the file (from the first answer's Content-Range)."""
        if self._size is None:
            self._read_tail()
        return self._size

    def tell(self):
        return self._position

    def seek(self, offset, whence=io.SEEK_SET):
        with self._lock:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: None}[whence]
            position = (self.size if base is None else base) + offset
            if position < 0:
                raise OSError(f"{self.url}: seek before the start of the file")
            self._position = position
            return position

    def read(self, n=-1):
        with self._lock:
            start = min(self._position, self.size)
            stop = self.size if n is None or n < 0 else min(self.size, start + n)
            if stop - start > self.max_read:
                raise RemoteStoreError(
                    f"{self.url}: reading {self.reading} needs {stop - start:,}"
                    f" bytes, more than the {self.max_read:,} allowed"
                )
            data = b"" if stop <= start else self._cached(start, stop)
            if data is None:
                data = self._fetch_ahead(start, stop)
            self._position = stop
            return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self):
        return self.read(-1)

    def _cached(self, start, stop):
        for first, data in self._blocks.values():
            if first <= start and stop <= first + len(data):
                return data[start - first : stop - first]
        return None

    def _fetch_ahead(self, start, stop):
        wanted = max(stop - start, ARCHIVE_READ_AHEAD, self.spans.get(start, 0))
        stop_ahead = min(self.size, start + wanted)
        data = self._get(f"bytes={start}-{stop_ahead - 1}", stop_ahead - start)
        if len(data) != stop_ahead - start:
            raise RemoteStoreError(
                f"{self.url}: asked for {stop_ahead - start:,} bytes at "
                f"{start:,}, received {len(data):,}"
            )
        self._blocks["ahead"] = (start, data)
        return data[: stop - start]

    def _read_tail(self):
        answer = self._answer(f"bytes=-{ARCHIVE_TAIL_BYTES}", ARCHIVE_TAIL_BYTES)
        self._size = answer.total
        self._blocks["tail"] = (answer.total - len(answer.data), answer.data)

    def _get(self, byte_range, limit):
        return self._answer(byte_range, limit).data

    def _answer(self, byte_range, limit):
        answer = sync(
            fetch(
                self.url,
                self.options,
                limit=limit,
                byte_range=byte_range,
                what=f"the byte range asked for ({self.reading})",
            )
        )
        if answer is None:
            raise StoreNotFoundError(f"no archive at {self.url}")
        return Answer(bytes(answer.data), answer.total)


def open_http_archive(url, storage_options=None):
    """A read-only zarr store over the zip archive at an HTTP(S) URL, read in place.

    The zip directory is read once (at most :data:`MAX_ZIP_DIRECTORY_BYTES`); an entry that
    declares more than a metadata document or a chunk may hold is refused before anything is
    read from it.

    Raises
    ------
    StoreNotFoundError
        The server has no file at ``url``.
    StoreFormatError
        The file is not a zip archive, or an entry is too large.
    RemoteStoreError
        The server broke a limit of the module docstring.
    """
    import fsspec
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    from zarr.storage import FsspecStore

    remote = HttpFile(
        checked_url(url, folder=False),
        http_options(storage_options),
        max_read=MAX_ZIP_DIRECTORY_BYTES,
        reading="the zip directory",
    )
    _ = remote.size  # zipfile would turn a RemoteStoreError here into BadZipFile
    try:
        fs = fsspec.filesystem("zip", fo=remote)
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        raise StoreFormatError(f"{url} is not a readable zip archive: {error}") from None
    remote.max_read, remote.reading = MAX_CHUNK_BYTES + ARCHIVE_READ_AHEAD, "an entry"
    check_entry_sizes(fs.zip, url)
    remote.spans = entry_spans(fs.zip)
    return FsspecStore(AsyncFileSystemWrapper(fs, asynchronous=True), read_only=True, path="")


def entry_spans(archive):
    """``{offset of an entry's header: bytes of the header and the entry}`` (an estimate: the
    header's extra field is taken from the directory, with some room to spare)."""
    return {
        entry.header_offset: 30
        + len(entry.filename.encode())
        + len(entry.extra)
        + 1024
        + entry.compress_size
        for entry in archive.infolist()
    }


def check_entry_sizes(archive, url):
    """Refuse an archive entry larger than a metadata document or a chunk may be."""
    for entry in archive.infolist():
        limit = MAX_METADATA_BYTES if is_metadata_key(entry.filename) else MAX_CHUNK_BYTES
        if max(entry.file_size, entry.compress_size) > limit:
            raise StoreFormatError(
                f"{url}: entry {entry.filename[:200]!r} declares "
                f"{max(entry.file_size, entry.compress_size):,} bytes, more "
                f"than the {limit:,} allowed"
            )
