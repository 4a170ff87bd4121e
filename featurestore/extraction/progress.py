"""Progress display for long jobs: a tqdm bar on a terminal, plain log lines otherwise.

>>> progress = Progress(total=120, label="extract")          # doctest: +SKIP
>>> progress.advance(media_seconds=10.0)                      # one clip done
>>> progress.add_time("decode", 0.08); progress.add_time("model", 1.9)
>>> summary = progress.finish()                               # final line(s) + dict for --json

The display shows items done/total (and failures), seconds of media per wall-clock second and
the ETA. The final summary splits the time into its parts: ``decode`` (time spent decoding and
preprocessing media, summed over worker processes, so it may exceed the wall time), ``model``
(network inference in this process), ``write`` (store writes) and ``wait`` (this process idle,
waiting for decoded input), each with the media throughput it alone would allow.
"""

import logging
import math
import sys
import time

LOG = logging.getLogger("avscene.progress")

#: Time categories reported in the summary, in display order.
PARTS = ("decode", "model", "write", "wait")


def format_seconds(seconds):
    """``93.4`` -> ``"1:33"``, ``4000`` -> ``"1:06:40"``, unknown -> ``"?"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Track and show the progress of a job over ``total`` items (clips).

    Parameters
    ----------
    total : int
        Items to process.
    label : str
        Prefix of every line (the command name).
    unit : str
        Name of the items ("clips").
    stream : file, optional
        Terminal stream for the updating line (default ``sys.stderr``).
    tty : bool, optional
        Force terminal (True) or log-line (False) mode; default ``stream.isatty()``.
    interval : float
        Seconds between log lines in log-line mode.
    refresh : float
        Seconds between redraws in terminal mode.
    clock : callable
        Monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        total,
        *,
        label="avscene",
        unit="clips",
        stream=None,
        tty=None,
        interval=10.0,
        refresh=0.2,
        clock=time.monotonic,
    ):
        self.total, self.label, self.unit = int(total), label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(
            tty if tty is not None else getattr(self.stream, "isatty", lambda: False)()
        )
        self.interval, self.refresh, self.clock = interval, refresh, clock
        self.done = self.failed = 0
        self.media_seconds = 0.0
        self.times = dict.fromkeys(PARTS, 0.0)
        self.started = clock()
        self._last_shown = self.started
        self._bar = None  # the tqdm bar, made at the first terminal redraw
        self._finished = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()

    def advance(self, items=1, *, media_seconds=0.0, failed=0):
        """Count ``items`` finished items (``failed`` of them failed) holding ``media_seconds``."""
        self.done += items
        self.failed += failed
        self.media_seconds += media_seconds
        self._maybe_show()

    def add_time(self, part, seconds):
        """Add ``seconds`` to one of :data:`PARTS`."""
        self.times[part] += seconds

    def elapsed(self):
        return self.clock() - self.started

    def eta(self):
        """Seconds left at the current item rate (None before the first item)."""
        elapsed = self.elapsed()
        if not self.done or elapsed <= 0:
            return None
        return (self.total - self.done) * elapsed / self.done

    def status_line(self):
        """One line: items, failures, media seconds per second, ETA."""
        elapsed = self.elapsed()
        rate = self.media_seconds / elapsed if elapsed > 0 else 0.0
        failed = f", {self.failed} failed" if self.failed else ""
        media = f"{rate:.1f} s media/s, " if self.media_seconds else ""
        return (
            f"{self.label}: {self.done}/{self.total} {self.unit}{failed}, {media}"
            f"elapsed {format_seconds(elapsed)}, ETA {format_seconds(self.eta())}"
        )

    def _maybe_show(self, force=False):
        now = self.clock()
        wait = self.refresh if self.tty else self.interval
        if not force and now - self._last_shown < wait:
            return
        self._last_shown = now
        line = self.status_line()
        if not self.tty:
            LOG.info(line)
        elif self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=line,
                file=self.stream,
                bar_format="{desc} |{bar:24}|",
                mininterval=0,
                leave=True,
            )
        else:
            self._bar.n = self.done
            self._bar.set_description_str(line, refresh=False)
            self._bar.refresh()

    def summary(self):
        """The final figures as a JSON-able dict (see the module docstring for the parts)."""
        wall = self.elapsed() if self._finished is None else self._finished

        def per_second(seconds):
            return self.media_seconds / seconds if seconds > 0 else None

        return {
            self.unit: self.total,
            "done": self.done,
            "failed": self.failed,
            "media_seconds": self.media_seconds,
            "wall_seconds": wall,
            "media_per_second": per_second(wall),
            **{f"{part}_seconds": self.times[part] for part in PARTS},
            **{f"{part}_media_per_second": per_second(self.times[part]) for part in PARTS[:3]},
        }

    def finish(self):
        """Show the last status, then the summary; return :meth:`summary` (idempotent)."""
        if self._finished is not None:
            return self.summary()
        self._maybe_show(force=True)
        if self._bar is not None:
            self._bar.close()  # draws the last line and ends it
        self._finished = self.elapsed()
        summary = self.summary()
        for line in summary_lines(summary, label=self.label, unit=self.unit):
            LOG.info(line)
        return summary


#: What each part of the summary means, shown after its figures.
PART_NOTES = {
    "decode": "decoding + preprocessing, summed over worker processes",
    "model": "network inference",
    "write": "store writes",
    "wait": "idle, waiting for decoded input",
}


def summary_lines(summary, *, label="avscene", unit="clips"):
    """Human-readable lines of a :meth:`Progress.summary` dict."""

    def rate(value):
        return "-" if value is None else f"{value:.1f} s media/s"

    head = f"{label}: {summary['done']}/{summary[unit]} {unit} ({summary['failed']} failed), "
    if not summary["media_seconds"]:  # a job over other items (e.g. systems)
        return [head + f"in {summary['wall_seconds']:.1f} s"]
    lines = [
        head + f"{summary['media_seconds']:.1f} s of media in "
        f"{summary['wall_seconds']:.1f} s = {rate(summary['media_per_second'])}"
    ]
    for part in PARTS:
        alone = summary.get(f"{part}_media_per_second")
        figures = f"{summary[f'{part}_seconds']:8.1f} s" + (f" = {rate(alone)}" if alone else "")
        lines.append(f"{label}:   {part:<6} {figures:<28} ({PART_NOTES[part]})")
    return lines
