"""A read-only static HTTP server on 127.0.0.1 that counts requests, for tests and benchmarks.

It serves one folder (stores as folders, archives as files) with ``GET`` and ``HEAD``, answers
``Range: bytes=a-b`` requests with ``206 Partial Content`` (fsspec reads zip archives that way),
and sleeps ``delay`` seconds before each answer to stand in for a network's latency. Every
request is recorded as ``(method, path, range)``.

>>> with serve("/data", delay=0.005) as server:
...     FeatureStore.open(server.url("tau.zarr"))
...     server.count()
"""

import contextlib
import functools
import http.server
import os
import re
import threading
import time

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges; records every request on its server."""

    def log_message(self, *args):
        pass

    def _record(self):
        server = self.server
        with server.lock:
            server.requests.append((self.command, self.path, self.headers.get("Range")))
        if server.delay:
            time.sleep(server.delay)

    def do_HEAD(self):
        self._record()
        super().do_HEAD()

    def do_GET(self):
        self._record()
        wanted = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not wanted or not os.path.isfile(path):
            return super().do_GET()
        match = RANGE.match(wanted.strip())
        size = os.path.getsize(path)
        if not match or not any(match.groups()):
            return self.send_error(416, "unsupported range")
        first, last = match.groups()
        if first == "":  # the last N bytes
            start, stop = max(0, size - int(last)), size
        else:
            start, stop = int(first), min(size, int(last) + 1 if last else size)
        if start >= size or stop <= start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read(stop - start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(data)
        return None

    def end_headers(self):
        if not self._headers_buffer or b"Accept-Ranges" not in b"".join(self._headers_buffer):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


class CountingServer(http.server.ThreadingHTTPServer):
    """The server object: ``url(name)``, ``count()``, ``reset()``, ``requests``."""

    daemon_threads = True

    def __init__(self, root, delay):
        handler = functools.partial(CountingHandler, directory=os.fspath(root))
        super().__init__(("127.0.0.1", 0), handler)
        self.delay = float(delay)
        self.requests = []
        self.lock = threading.Lock()

    def url(self, name=""):
        """``http://127.0.0.1:PORT/name``."""
        return f"http://127.0.0.1:{self.server_port}/{name}"

    def count(self):
        """Requests answered since the last :meth:`reset`."""
        with self.lock:
            return len(self.requests)

    def reset(self):
        """Forget the requests recorded so far; return how many there were."""
        with self.lock:
            n = len(self.requests)
            self.requests.clear()
        return n


@contextlib.contextmanager
def serve(root, *, delay=0.0):
    """Serve ``root`` read-only on 127.0.0.1 (a free port) until the block ends."""
    with running(CountingServer(root, delay)) as server:
        yield server


@contextlib.contextmanager
def running(server):
    """Run ``server`` (a ``socketserver`` server) in a thread until the block ends."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
