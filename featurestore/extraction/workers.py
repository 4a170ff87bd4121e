"""Run a function over many tasks in worker processes, overlapping with the caller's own work.

:class:`WorkerPool` is a small process pool made for the extraction job:

- each worker sends its result through its own pipe and blocks until the caller reads it, so
  at most one finished result per worker waits in memory (back-pressure: workers stop when the
  consumer, the model, falls behind) and no result sits in a buffer that a crash could lose;
- results are yielded in completion order, each with the index of its task;
- a worker that dies (a decoder crash, the OOM killer) costs only its current task, which is
  reported as :class:`WorkerCrash`; a replacement worker is started;
- a worker busy with one task for longer than ``timeout`` seconds (a hanging decoder) is killed
  and replaced the same way, its task reported as :class:`WorkerCrash` saying so (the time a
  finished result waits for the consumer does not count);
- workers exit by themselves within a second when the parent process disappears
  (``kill -9`` of the job), so no orphans keep decoding;
- ``workers=0`` runs everything inline in the caller (no processes), for debugging and timing:
  no isolation from crashes and no time limit.

Workers are started with the ``spawn`` method: the parent has torch (and its thread pools)
loaded, which ``fork`` does not copy safely.
"""

import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import time
import traceback

POLL_SECONDS = 0.5


class WorkerCrash(RuntimeError):
    """A worker process died while running a task, or was killed for overrunning the time
    limit (the message says which: signal or exit code, or the limit)."""


class TaskError(RuntimeError):
    """A task raised an unexpected exception in a worker; the message holds its last line."""


def _worker_main(function, initializer, initargs, tasks, conn, current, running, slot, parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)
    while os.getppid() == parent:
        try:
            item = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if item is None:
            break
        index, task = item
        current[slot] = index
        running[slot] = 1
        try:
            outcome = (index, True, function(task))
        except Exception as error:  # reported to the parent, never raised in the worker
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            outcome = (index, False, last)
        running[slot] = 0  # waiting for the parent to read is not the task's time
        try:
            conn.send(outcome)  # blocks until the parent reads; EPIPE once it is gone
        except OSError:
            break
        current[slot] = -1
    conn.close()


class WorkerPool:
    """A pool of ``workers`` processes running ``function(task)``.

    Parameters
    ----------
    function : callable
        Module-level function (picklable) of one task.
    workers : int
        Processes to start; 0 runs tasks inline in the caller.
    queue_size : int, optional
        Results that may wait for the consumer (default ``2 * workers``).
    initializer, initargs
        Called once in every worker before its first task.
    timeout : float, optional
        Seconds one task may run in a worker before the worker is killed and replaced (None or
        0: no limit). Measured by this process, to within :data:`POLL_SECONDS`.
    """

    def __init__(self, function, *, workers, initializer=None, initargs=(), timeout=None):
        self.function, self.workers = function, int(workers)
        self.initializer, self.initargs = initializer, tuple(initargs)
        self.timeout = float(timeout) if timeout else None
        self._context = multiprocessing.get_context("spawn")
        self._processes = {}  # slot -> (process, reader)
        self._busy = {}  # slot -> (task index, first seen running)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def imap_unordered(self, tasks):
        """Yield ``(index, result)`` for every task, in completion order.

        ``result`` is the function's return value, or a :class:`TaskError` / :class:`WorkerCrash`
        instance (returned, not raised) when the task failed unexpectedly.
        """
        tasks = list(tasks)
        if not tasks:
            return
        if self.workers == 0:
            yield from self._run_inline(tasks)
            return
        yield from self._run_processes(tasks)

    def _run_inline(self, tasks):
        if self.initializer is not None:
            self.initializer(*self.initargs)
        for index, task in enumerate(tasks):
            try:
                result = self.function(task)
            except Exception as error:
                last = traceback.format_exception_only(type(error), error)[-1].strip()
                result = TaskError(last)
            yield index, result

    def _start(self, slot):
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            daemon=True,
            name=f"avscene-worker-{slot}",
            args=(
                self.function,
                self.initializer,
                self.initargs,
                self._tasks,
                writer,
                self._current,
                self._running,
                slot,
                os.getpid(),
            ),
        )
        process.start()
        writer.close()  # the child holds the only writer: EOF when it exits
        self._processes[slot] = (process, reader)

    def _run_processes(self, tasks):
        n = min(self.workers, len(tasks))
        self._tasks = self._context.Queue()
        self._current = self._context.Array("q", [-1] * n, lock=False)
        self._running = self._context.Array("b", [0] * n, lock=False)
        for item in enumerate(tasks):
            self._tasks.put(item)
        for _ in range(n):
            self._tasks.put(None)
        for slot in range(n):
            self._start(slot)
        remaining = set(range(len(tasks)))
        while remaining and self._processes:
            readers = {reader: slot for slot, (_, reader) in self._processes.items()}
            for reader in multiprocessing.connection.wait(list(readers), timeout=POLL_SECONDS):
                slot = readers[reader]
                try:
                    index, ok, value = reader.recv()
                except (EOFError, OSError):
                    yield from self._worker_gone(slot, remaining)
                    continue
                remaining.discard(index)
                yield index, (value if ok else TaskError(value))
            yield from self._stop_overdue(remaining)
        for index in sorted(remaining):  # cannot happen unless the task queue was lost
            yield index, WorkerCrash("no worker left to run the task")
        self.close()

    def _worker_gone(self, slot, remaining):
        """A worker's pipe closed: normal exit, or a crash that costs its current task."""
        process, reader = self._processes.pop(slot)
        reader.close()
        process.join(timeout=5)
        code = process.exitcode
        if code == 0:
            return
        index = self._current[slot]
        self._current[slot], self._running[slot] = -1, 0
        self._busy.pop(slot, None)
        self._start(slot)  # takes over the dead worker's place (and its sentinel)
        if index in remaining:
            remaining.discard(index)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            yield index, WorkerCrash(f"decoding worker died ({how})")

    def _stop_overdue(self, remaining):
        """Kill and replace every worker busy with one task for longer than the time limit."""
        if self.timeout is None:
            return
        now = time.monotonic()
        for slot in list(self._processes):
            index = self._current[slot] if self._running[slot] else -1
            if index < 0 or self._busy.get(slot, (None,))[0] != index:
                self._busy[slot] = (index, now)  # idle, or a new task: restart the clock
                continue
            if now - self._busy[slot][1] <= self.timeout or index not in remaining:
                continue
            process, reader = self._processes.pop(slot)
            process.kill()
            process.join(timeout=5)
            reader.close()
            self._current[slot], self._running[slot] = -1, 0
            self._busy.pop(slot)
            self._start(slot)  # the replacement takes over the killed worker's sentinel
            remaining.discard(index)
            yield (
                index,
                WorkerCrash(f"decoding took longer than {self.timeout:g} s (worker stopped)"),
            )

    def close(self):
        """Stop the workers (idempotent)."""
        for process, reader in self._processes.values():
            if process.is_alive():
                process.terminate()
            reader.close()
        for process, _ in self._processes.values():
            process.join(timeout=5)
        self._processes = {}
