"""The progress display: terminal line, log lines, ETA, summary split by time parts."""

import io
import json
import logging

import pytest

from featurestore.extraction import progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_mode_redraws_one_line_with_rate_and_eta():
    clock, term = FakeClock(), FakeTerminal()
    bar = progress.Progress(10, label="extract", stream=term, clock=clock, refresh=0.5)
    assert bar.tty
    clock.now += 2.0
    bar.advance(media_seconds=10.0)
    clock.now += 0.1
    bar.advance(media_seconds=10.0)  # within refresh: not drawn
    clock.now += 1.9
    bar.advance(media_seconds=10.0, failed=1)
    text = term.getvalue()
    assert text.count("\r") == 2 and "\n" not in text
    last = text.split("\r")[-1]
    assert "3/10 clips, 1 failed" in last
    assert "7.5 s media/s" in last  # 30 s of media in 4 s
    assert "ETA 0:09" in last  # 7 clips left at 4/3 s per clip
    summary = bar.finish()
    assert term.getvalue().endswith("\n")
    assert summary["done"] == 3 and summary["failed"] == 1 and summary["media_per_second"] == 7.5


def test_log_mode_writes_a_line_every_interval(caplog):
    clock = FakeClock()
    bar = progress.Progress(4, label="extract", stream=io.StringIO(), clock=clock, interval=10)
    assert not bar.tty
    with caplog.at_level(logging.INFO, logger="avscene.progress"):
        for _ in range(4):
            clock.now += 6.0
            bar.advance(media_seconds=1.0)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and lines[0].startswith("extract: 2/4 clips")
        bar.add_time("decode", 3.0)
        bar.add_time("model", 12.0)
        bar.add_time("wait", 1.5)
        summary = bar.finish()
        assert bar.finish() == summary  # idempotent
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "4/4 clips (0 failed), 4.0 s of media in 24.0 s" in text
    assert "decode" in text and "summed over worker processes" in text
    assert summary["decode_media_per_second"] == pytest.approx(4 / 3)
    assert summary["model_media_per_second"] == pytest.approx(1 / 3)
    assert summary["write_media_per_second"] is None
    json.dumps(summary)


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0:00"), (93.4, "1:33"), (4000, "1:06:40"), (None, "?"), (float("inf"), "?")],
)
def test_format_seconds(seconds, text):
    assert progress.format_seconds(seconds) == text


def test_jobs_without_media_show_no_media_figures():
    clock, term = FakeClock(), FakeTerminal()
    bar = progress.Progress(4, label="train", unit="systems", stream=term, clock=clock)
    clock.now += 3.0
    bar.advance()
    assert "media" not in bar.status_line() and "1/4 systems" in bar.status_line()
    lines = progress.summary_lines(bar.summary(), label="train", unit="systems")
    assert lines == ["train: 1/4 systems (0 failed), in 3.0 s"]
