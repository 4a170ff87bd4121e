"""Worker functions that misbehave on one clip, for the extraction robustness tests.

They wrap the job's real probe and prepare functions and are unpickled in spawned worker
processes, so they live in a module of their own that imports nothing heavy (pytest does not
collect it). Use them with :func:`functools.partial`: ``partial(crash_on, "clip-id", probe_task)``.
"""

import os
import signal
import time


def crash_on(clip_id, function, task):
    """``function(task)``, except that the process segfaults on the task of clip ``clip_id``."""
    if task[0].clip_id == clip_id:
        os.kill(os.getpid(), signal.SIGSEGV)
    return function(task)


def hang_on(clip_id, function, task):
    """``function(task)``, except that the task of clip ``clip_id`` never ends (an hour)."""
    if task[0].clip_id == clip_id:
        time.sleep(3600)
    return function(task)
