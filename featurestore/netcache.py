"""Networks built once per process for a weight file and its settings."""

import pathlib
import threading

_CACHE: dict = {}
_LOCK = threading.Lock()


def cached_network(path, settings, build):
    """Return ``build()`` for the weight file ``path`` and ``settings``, built once per process.

    Parameters
    ----------
    path : str or os.PathLike
        The weight file; a file changed on disk (size or modification time) is built again.
    settings : tuple
        Hashable settings that change the network (architecture, device, dtype, ...).
    build : callable
        Makes the network (or a tuple of modules) when it is not in the cache.
    """
    path = pathlib.Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(settings))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]
