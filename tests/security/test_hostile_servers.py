"""Hostile web servers: a store or archive read over HTTP is read within bounds of size, time and
place, and never listed. Each server runs in threads of the test on 127.0.0.1 and stops writing
when the client goes; each victim is ``avscene`` in a child process under an address-space limit
(``--timeout 2``), which must stop with one ``avscene CMD: error:`` line and exit status 2.
"""

import contextlib
import functools
import http.server
import json
import os
import shutil
import threading
import time

import pytest
import zarr

from benchmarks.http_server import CountingHandler, running, serve
from featurestore.errors import AvsceneError, RemoteStoreError
from featurestore.store import FeatureStore
from featurestore.store.interchange.archive import pack_store
from featurestore.store.opening import drop_consolidated
from featurestore.store.remote import MAX_METADATA_BYTES
from featurestore.store.sizes import array_paths
from pipelines.commands import cli
from tests.helpers import audio_like, fill_store, make_clips, new_store, video_like
from tests.security.child import run_avscene

#: The victim's address space: enough for avscene, far below what the attacks would take.
ADDRESS_SPACE = 3 << 30


def avscene(*argv):
    """Run ``avscene ARGV`` in a child process; (exit status, peak RSS in KiB, stderr lines)."""
    result = run_avscene(argv, address_space=ADDRESS_SPACE, timeout=120)
    return result.returncode, result.peak // 1024, result.stderr.strip().splitlines()


def refused(command, url, *options):
    """The one error line of ``avscene COMMAND URL --timeout 2`` (exit status 2)."""
    status, _, lines = avscene(command, url, "--timeout", "2", *options)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"avscene {command}: error: "), lines
    return lines[0]


# -- servers ------------------------------------------------------------------------------------


class Scripted(CountingHandler):
    """Static files of ``directory`` (with byte ranges), except where ``answer(handler)``
    answers itself (it returns True)."""

    answer = staticmethod(lambda handler: False)
    timeout = 30  # no handler waits longer on a silent client

    def do_GET(self):
        if not self.answer(self):
            super().do_GET()
        else:
            self._record()


class HostileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, root, answer):
        handler = type("Handler", (Scripted,), {"answer": staticmethod(answer)})
        super().__init__(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.delay, self.requests, self.lock = 0.0, [], threading.Lock()

    def url(self, name=""):
        return f"http://127.0.0.1:{self.server_port}/{name}"


@contextlib.contextmanager
def hostile(root, answer):
    """A server of ``root`` whose ``answer(handler)`` may answer any GET its own way."""
    with running(HostileServer(root, answer)) as server:
        yield server


def write_headers(handler, status, headers):
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()


def stream(handler, piece, *, times, pause=0.0):
    """Write ``piece`` up to ``times`` times (until the client goes)."""
    try:
        for _ in range(times):
            handler.wfile.write(piece)
            handler.wfile.flush()
            time.sleep(pause)
    except OSError:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder with a store (2 features, stored segments) and its archive."""
    root = tmp_path_factory.mktemp("served")
    clips = make_clips(24, seed=4)
    store = new_store(
        root / "s.zarr",
        clips,
        features=[("audio", 8, 10.0), ("video", 4, 5.0)],
        block_clips=8,
        chunk_mib=0.01,
    )
    fill_store(store, "audio", clips, audio_like, dim=8, seed=1)
    fill_store(store, "video", clips, video_like, dim=4, seed=2)
    store.write_segments(poolings=("mean",))
    pack_store(FeatureStore.open(root / "s.zarr"), root / "s.zarr.zip")
    return root


# -- 1. an endless answer ------------------------------------------------------------------------


def endless_json(handler):
    if not handler.path.endswith("/zarr.json"):
        return False
    write_headers(handler, 200, {"Content-Type": "application/json"})
    handler.wfile.write(b"{")
    stream(handler, b" " * (1 << 20), times=8 << 10)  # 8 GiB at most
    return True


def test_an_endless_metadata_document_stops_at_its_limit(served):
    with hostile(served, endless_json) as server:
        status, maxrss_kib, lines = avscene("info", server.url("s.zarr"), "--timeout", "60")
    assert status == 2 and len(lines) == 1, lines
    assert lines[0] == (
        f"avscene info: error: {server.url('s.zarr/zarr.json')}: the answer "
        f"passes {MAX_METADATA_BYTES:,} bytes, the most expected of a metadata "
        f"document; stopped reading"
    )
    assert maxrss_kib < 1 << 20, maxrss_kib  # under 1 GiB


def huge_declared(handler):
    if not handler.path.endswith("/zarr.json"):
        return False
    write_headers(handler, 200, {"Content-Length": str(10**12)})
    stream(handler, b" " * 65536, times=16)
    return True


def test_a_declared_size_beyond_the_limit_is_refused_before_the_body(served):
    with hostile(served, huge_declared) as server:
        line = refused("info", server.url("s.zarr"))
    assert (
        "declares 1,000,000,000,000 bytes, more than the 67,108,864 expected of a "
        "metadata document" in line
    )


def longer_ranges(handler):
    """Answer a range request with the range asked for, then bytes without end."""
    if not handler.headers.get("Range"):
        return False
    size = os.path.getsize(handler.translate_path(handler.path))
    write_headers(handler, 206, {"Content-Range": f"bytes 0-{size - 1}/{size}"})
    stream(handler, b"\0" * (1 << 20), times=4 << 10)
    return True


def test_a_range_answer_longer_than_the_range_is_refused(served):
    with hostile(served, longer_ranges) as server:
        status, maxrss_kib, lines = avscene("info", server.url("s.zarr.zip"), "--timeout", "60")
    assert status == 2 and len(lines) == 1, lines
    assert (
        "s.zarr.zip: the answer passes 1,048,576 bytes, the most expected of the byte range "
        "asked for" in lines[0]
    )
    assert maxrss_kib < 1 << 20, maxrss_kib


# -- 2. a slow answer ----------------------------------------------------------------------------


def one_byte_every_2s(handler):
    write_headers(handler, 200, {"Content-Length": "30"})
    stream(handler, b" ", times=30, pause=2.0)
    return True


def silent(handler):
    time.sleep(20)
    return True


@pytest.mark.parametrize("answer", [one_byte_every_2s, silent], ids=["trickle", "silent"])
def test_a_slow_server_meets_the_timeout(served, answer):
    with hostile(served, answer) as server:
        line = refused("info", server.url("s.zarr"))
    assert line == (
        f"avscene info: error: {server.url('s.zarr/zarr.json')}: no complete answer "
        f"within 2 s (--timeout or AVSCENE_HTTP_TIMEOUT allow more)"
    )


def test_the_environment_sets_the_timeout(served, monkeypatch):
    monkeypatch.setenv("AVSCENE_HTTP_TIMEOUT", "1.5")
    with hostile(served, silent) as server:
        with pytest.raises(RemoteStoreError, match="no complete answer within 1.5 s"):
            FeatureStore.open(server.url("s.zarr"))
    for text in ("soon", "0", "1e9", "nan"):
        monkeypatch.setenv("AVSCENE_HTTP_TIMEOUT", text)
        with pytest.raises(
            AvsceneError,
            match="AVSCENE_HTTP_TIMEOUT must be a number of seconds from 0.001 to 86400",
        ):
            FeatureStore.open("http://127.0.0.1:9/s.zarr")


# -- 3. redirects ---------------------------------------------------------------------------------


def redirecting(elsewhere):
    """``/moved.zarr/...`` redirects within the server, ``/away.zarr/...`` to ``elsewhere``."""

    def answer(handler):
        for name, base in (("/moved.zarr/", "/s.zarr/"), ("/away.zarr/", f"{elsewhere}s.zarr/")):
            if handler.path.startswith(name):
                write_headers(
                    handler,
                    302,
                    {"Location": base + handler.path[len(name) :], "Content-Length": "0"},
                )
                return True
        return False

    return answer


def test_redirects_leave_the_origin_only_when_allowed(served):
    with serve(served) as other, hostile(served, redirecting(other.url())) as server:
        line = refused("info", server.url("away.zarr"))
        assert line == (
            f"avscene info: error: {server.url('away.zarr/zarr.json')}: redirected "
            f"to another origin (http://127.0.0.1:{other.server_port}); refused "
            f"(--allow-redirects or AVSCENE_HTTP_ALLOW_REDIRECTS=1 follows it)"
        )
        assert other.count() == 0
        status, _, _ = avscene("info", server.url("moved.zarr"), "--json", "--timeout", "10")
        assert status == 0 and other.count() == 0  # within the origin: followed
        status, _, _ = avscene(
            "info", server.url("away.zarr"), "--json", "--timeout", "10", "--allow-redirects"
        )
        assert status == 0 and other.count() > 0


# -- 4. a body shorter than its Content-Length ---------------------------------------------------


def short_body(handler):
    if not handler.path.endswith("/zarr.json"):
        return False
    write_headers(handler, 200, {"Content-Length": "100000"})
    handler.wfile.write(b'{"zarr_format": 3, "node_type": "group"')
    return True


def test_a_body_shorter_than_its_content_length_is_one_line(served):
    with hostile(served, short_body) as server:
        line = refused("info", server.url("s.zarr"))
    assert line == (
        f"avscene info: error: {server.url('s.zarr/zarr.json')}: the answer broke "
        f"off before its end (fewer bytes than its Content-Length, or a broken "
        f"transfer)"
    )


# -- 5. listings ---------------------------------------------------------------------------------


def endless_folders(handler):
    """Every folder lists a subfolder, forever (a listing-following client recursed to death)."""
    if not handler.path.endswith("/") and not os.path.isdir(handler.translate_path(handler.path)):
        return False
    body = b'<html><body><a href="sub/">sub/</a></body></html>'
    write_headers(handler, 200, {"Content-Type": "text/html", "Content-Length": str(len(body))})
    handler.wfile.write(body)
    return True


def test_a_store_over_http_is_never_listed(served):
    plain = served / "plain.zarr"
    if not plain.exists():
        shutil.copytree(served / "s.zarr", plain)
        drop_consolidated(zarr.open_group(str(plain), mode="r+"))
    with hostile(served, endless_folders) as server:
        line = refused("info", server.url("plain.zarr"))
        assert line.endswith(
            "has no consolidated metadata; over HTTP avscene reads a store only "
            "through it and never lists the server's folders "
            "(zarr.consolidate_metadata on the store adds it)"
        )
        line = refused("verify", server.url("s.zarr"))
        assert "avscene never lists a store over HTTP" in line
        server.requests.clear()
        status, _, _ = avscene("info", server.url("s.zarr"), "--json", "--timeout", "10")
        assert status == 0
        assert server.requests and not [
            path for _, path, _ in server.requests if path.endswith("/")
        ]


# -- 6. info costs at most arrays + 6 requests ---------------------------------------------------


def test_info_over_http_reads_recorded_sizes_without_listing(served, capsys):
    """The counting server lists folders (like nginx autoindex): info must not walk them."""
    local = FeatureStore.open(served / "s.zarr")
    n_arrays = len(array_paths(local._group))
    with serve(served) as server:
        capsys.readouterr()
        assert cli.main(["info", server.url("s.zarr"), "--json"]) == 0
        remote = json.loads(capsys.readouterr().out)
        paths = [path for _, path, _ in server.requests]
    assert len(paths) <= n_arrays + 6, (len(paths), n_arrays)
    assert len(set(paths)) == len(paths) and not [path for path in paths if path.endswith("/")]
    expected = local.info()
    assert remote["sizes"] == "recorded" and expected["sizes"] == "measured"
    assert remote["bytes_on_disk"] == expected["bytes_on_disk"] > 0
    for name, feature in expected["features"].items():
        assert remote["features"][name]["bytes_on_disk"] == feature["bytes_on_disk"] > 0
    assert [entry["bytes_on_disk"] for entry in remote["segments"]] == [
        entry["bytes_on_disk"] for entry in expected["segments"]
    ]
