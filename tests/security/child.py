"""The avscene command line in a child process under an address-space limit (and a file-size
limit), with the child's own peak resident memory.

The peak is ``VmHWM`` of the child's address space, read by the child itself: the rusage of a
child would not do, since Linux counts in its ``ru_maxrss`` the parent's memory shared before
``exec``. The limits are set by the child (no ``preexec_fn`` in a parent that runs threads).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers import ROOT

CHILD = """
import os, resource, signal, sys
space, fsize = int(sys.argv.pop(1)), int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_AS, (space, space))
if fsize:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)        # writes past it fail: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
from pipelines.commands import cli
try:
    status = cli.main(sys.argv[1:])
finally:
    with open("/proc/self/status") as lines:
        peak = next(line.split()[1] for line in lines if line.startswith("VmHWM"))
    with open(os.environ["AVSCENE_TEST_PEAK"], "w") as out:
        out.write(peak)
sys.exit(status)
"""


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    peak: int | None  # bytes; None: the child died before it could write it


def run_avscene(argv, *, address_space, fsize=None, timeout=180, cwd=ROOT):
    """``avscene ARGV`` in a child limited to ``address_space`` bytes (and files of at most
    ``fsize`` bytes); fails the test if it runs for more than ``timeout`` seconds."""
    argv = [str(a) for a in argv]
    with tempfile.NamedTemporaryFile() as peak:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
            "AVSCENE_TEST_PEAK": peak.name,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(address_space), str(fsize or 0), *argv],
                capture_output=True,
                text=True,
                env=env,
                cwd=cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"avscene {' '.join(argv)} ran for {timeout} s")
        written = Path(peak.name).read_text()
    return Result(
        done.returncode, done.stdout, done.stderr, int(written) * 1024 if written else None
    )
