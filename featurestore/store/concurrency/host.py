"""This machine and its processes: who holds a lease or a temporary build, and whether it runs.

A process is identified by its host name, the kernel's boot id, its pid namespace, its pid and
its start time (clock ticks since boot). Two records name the same machine when the first three
agree; a process of this machine is running when its pid exists, is not a zombie and started at
the recorded time (so a reused pid does not count).
"""

import os
import socket


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def boot_id():
    """The kernel's boot id ('' where there is none): changes at every reboot."""
    return (_read("/proc/sys/kernel/random/boot_id") or "").strip()


def pid_namespace():
    """Inode of this process's pid namespace (None where unknown): pids mean something only
    inside one namespace (two containers may both have a pid 7)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _stat(pid):
    """(state letter, start time in clock ticks) of a process, or None without /proc."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid):
    """Start time of process ``pid`` in clock ticks since boot, or None where unknown."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def identity():
    """This process, as recorded in a lease: host, boot_id, pid_ns, pid, pid_start."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot_id": boot_id(),
        "pid_ns": pid_namespace(),
        "pid": pid,
        "pid_start": process_start(pid),
    }


def same_machine(record):
    """True if ``record`` (from :func:`identity`) was made on this machine since its last boot,
    in this pid namespace, so that its pid can be checked here."""
    here = identity()
    return all(record.get(key) == here[key] for key in ("host", "boot_id", "pid_ns"))


def process_running(pid, start=None):
    """True if process ``pid`` of this machine runs (and, if ``start`` is given, started then);
    None where this cannot be told (Windows, where signal 0 would end the process)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if os.name == "nt":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except OverflowError:
        return False
    stat = _stat(pid)
    if stat is None:  # no /proc: the pid exists, trust it
        return True
    state, started = stat
    if state in ("Z", "X"):  # exited, not reaped yet: it writes nothing more
        return False
    return start is None or started == start
