"""The per-process network cache: one build per weight file and settings; a changed file is rebuilt."""

import os

from featurestore.netcache import cached_network


def test_one_build_per_file_and_settings(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    builds = []

    def build():
        builds.append(object())
        return builds[-1]

    first = cached_network(path, ("a", "cpu"), build)
    assert cached_network(path, ("a", "cpu"), build) is first
    assert cached_network(str(path), ("a", "cpu"), build) is first
    other = cached_network(path, ("a", "cuda"), build)
    assert other is not first and len(builds) == 2


def test_a_rewritten_file_is_built_again(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    first = cached_network(path, ("b",), object)
    path.write_bytes(b"other weights")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cached_network(path, ("b",), object) is not first
