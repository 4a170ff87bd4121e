"""Every numeric option is bounded, absurd values stop at once, and a full disk is one line.

- ``extract --hop 1e-9`` (and every other absurd number) is the usage error, exit status 2,
  before anything is created; options that do not go together (more mel bands than FFT bins)
  too. The Python API refuses the same values with one-line ValueErrors.
- A block whose reserved tail is huge is cleared in proportion to the chunks stored there.
- A full disk (the file-size limit, in a child process) during ``extract`` is one line on
  stderr; the clips committed before stay, and a rerun completes the store.
"""

import errno
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from zarr.storage import LocalStore

from featurestore.extraction import ExtractJob, Plan
from featurestore.extraction.dask_job import DaskExtraction
from featurestore.extractors import AUDIO, Extractor, VideoSampling
from featurestore.extractors.openl3_logmel import openl3_audio
from featurestore.frontends import logmel
from featurestore.store import COMMITTED, PENDING, FeatureStore
from featurestore.synth import synth_corpus
from pipelines.commands import cli
from tests.helpers import audio_like, make_clips, new_store

ROOT = str(pathlib.Path(__file__).resolve().parents[2])
LOGMEL = [
    "--features",
    "logmel",
    "--n-mels",
    "16",
    "--workers",
    "0",
    "--progress",
    "log",
    "--compression",
    "none",
]


def usage_error(argv, capsys):
    """Run the CLI; return the last stderr line of the usage error (exit status 2)."""
    with pytest.raises(SystemExit) as stop:
        cli.main([str(a) for a in argv])
    assert stop.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# -- the CLI: refused at once, nothing created -------------------------------------------------


def test_a_hop_of_a_nanosecond_is_refused_before_anything(tmp_path, capsys):
    line = usage_error(
        ["extract", tmp_path / "data", tmp_path / "s.zarr", "--hop", "1e-9"], capsys
    )
    assert line == "avscene extract: error: argument --hop: must be >= 0.01, got 1e-9"
    assert list(tmp_path.iterdir()) == []


HUGE = [
    (["extract", "d", "s"], "--hop", "1e6"),
    (["extract", "d", "s"], "--n-mels", "100000"),
    (["extract", "d", "s"], "--win-length", "1000000000"),
    (["extract", "d", "s"], "--hop-length", "1000000000"),
    (["extract", "d", "s"], "--batch", "1000000000"),
    (["extract", "d", "s"], "--workers", "100000"),
    (["extract", "d", "s"], "--fps", "1e9"),
    (["extract", "d", "s"], "--clip-timeout", "1e300"),
    (["extract", "d", "s"], "--limit", "9" * 5000),
    (["extract", "d", "s"], "--random-weights", str(2**64)),
    (["extract", "d", "s"], "--dask-local", "100000"),
    (["extract", "d", "s"], "--shard", "0/1000000000"),
    (["extract", "d", "s"], "--device", "cuda:99999999"),
    (["evaluate", "r", "s"], "--threads", "1000000"),
    (["evaluate", "r", "s"], "--bootstrap", "1000000000"),
    (["score", "p", "t"], "--bootstrap", "1e9"),
    (["train", "s", "--features", "a", "--out", "r"], "--seed", str(2**32)),
    (["synth", "--out", "o"], "--size", "100000x100000"),
    (["synth", "--out", "o"], "--seconds", "1e9"),
    (["synth", "--out", "o"], "--eval-clips", "1000000000"),
    (["demo"], "--clips-per-class", "1000000"),
    (["scan", "d"], "--max-problems", "1000000000"),
]


@pytest.mark.parametrize("argv, flag, value", HUGE, ids=[f"{a[0]}{f}" for a, f, _ in HUGE])
def test_huge_values_are_refused_in_one_line(argv, flag, value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = usage_error([*argv, flag, value], capsys)
    assert line.startswith(f"avscene {argv[0]}: error: argument {flag}: "), line
    assert len(line) < 200 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options, words",
    [
        (["--n-mels", "200", "--win-length", "256"], "n_mels must be <= n_fft // 2 + 1 = 129"),
        (["--dask-local", "1", "--shard", "0/2"], "do not combine"),
        (["--device", "cuda:7"], "CUDA devices"),
    ],
)
def test_options_that_do_not_go_together_are_the_usage_error(
    options, words, tmp_path, capsys, monkeypatch
):
    if "--device" in options:  # the same answer with or without a GPU
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    line = usage_error(["extract", tmp_path / "data", tmp_path / "s.zarr", *options], capsys)
    assert line.startswith("avscene extract: error: ") and words in line, line
    assert list(tmp_path.iterdir()) == []


def test_the_largest_values_in_the_help_are_accepted():
    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "extract",
            "d",
            "s",
            "--hop",
            "10",
            "--n-mels",
            "512",
            "--win-length",
            "65536",
            "--hop-length",
            "48000",
            "--batch",
            "1024",
            "--fps",
            "120",
            "--workers",
            "256",
            "--clip-timeout",
            "86400",
            "--random-weights",
            str(2**32 - 1),
            "--shard",
            "99999/100000",
        ]
    )
    from pipelines.commands import extract

    extract.check_arguments(args)  # the plan is valid at the bounds
    assert args.shard == (99999, 100000)


# -- the Python API: the same bounds, one-line ValueErrors --------------------------------------


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Plan(hop=1e-9), "audio hop (seconds) must be from 0.01 to 10"),
        (lambda: Plan(fps=1e9), "video fps must be from 0.1 to 120"),
        (lambda: Plan(min_duration=float("nan")), "min_duration"),
        (lambda: Plan(decode_threads=10**6), "decode_threads"),
        (lambda: Plan(logmel={**logmel.logmel_params(), "n_mels": 10**6}), "n_mels"),
        (lambda: VideoSampling(mode="per-audio-window", hop=1e-9), "hop"),
        (lambda: logmel.logmel_params(n_mels=100000), "n_mels must be from 1 to 512"),
        (lambda: logmel.logmel_params(win_length=10**9), "win_length must be from 16 to 65536"),
        (lambda: logmel.logmel_params(hop_length=10**9), "hop_length (samples at 48000 Hz)"),
        (lambda: logmel.logmel_params(hop_length=1), "must be from 48 to 48000"),
        (lambda: logmel.logmel_params(n_mels=200, win_length=256), "n_fft // 2 + 1"),
        (lambda: logmel.logmel_params(sample_rate=10**12), "sample_rate"),
        (lambda: logmel.logmel_params(fmin=30000.0), "fmin < fmax"),
        (lambda: openl3_audio(hop=1e-9), "openl3_audio hop"),
        (
            lambda: Extractor(
                name="x",
                modality=AUDIO,
                frame_rate=1e9,
                timestamps="t",
                dim=1,
                params={},
                prepare=None,
                load=None,
            ),
            "at most 1000 rows per second",
        ),
    ],
)
def test_the_api_refuses_the_same_values(make, words):
    with pytest.raises(ValueError) as refused:
        make()
    message = str(refused.value)
    assert words in message and "\n" not in message, message


@pytest.mark.parametrize(
    "option",
    [
        {"batch": 10**9},
        {"workers": 10**6},
        {"limit": 0},
        {"clip_timeout": -1.0},
        {"shard": (5, 2)},
        {"shard": (0, 10**9)},
    ],
)
def test_the_job_refuses_bad_options_before_reading_or_writing(tmp_path, option):
    with pytest.raises(ValueError):
        ExtractJob(tmp_path / "data", tmp_path / "s.zarr", Plan(), **option)
    if "shard" not in option:
        with pytest.raises(ValueError):
            DaskExtraction(tmp_path / "data", tmp_path / "s.zarr", Plan(), **option)
    assert list(tmp_path.iterdir()) == []


# -- clearing a block's tail costs what was stored, not what was reserved ----------------------


def test_a_huge_reserved_tail_is_cleared_by_the_chunks_stored_there(tmp_path, monkeypatch):
    clips = make_clips(4, seed=5)
    store = new_store(tmp_path / "s.zarr", clips, features=(("audio", 8, 1000.0),))
    feature = store._feature("audio")
    rows = feature.chunk_rows
    _, stops = feature.regions(store.clips.duration)
    leftover = [int(stops[0]) // rows - 3, int(stops[0]) // rows - 1]  # a crashed run's
    for chunk in leftover:
        feature.values[chunk * rows : (chunk + 1) * rows] = np.ones((rows, 8), np.float32)
        feature.timestamps[chunk * rows : (chunk + 1) * rows] = np.zeros(rows)
    deleted = []
    delete = LocalStore.delete

    async def counted(self, key):
        deleted.append(key)
        return await delete(self, key)

    monkeypatch.setattr(LocalStore, "delete", counted)
    with store.block_writer("audio", 0) as writer:
        assert int(stops[0]) // rows > 1000  # reserved: over a thousand chunks
        writer.write(clips[0].clip_id, *audio_like(clips[0], dim=8, seed=1))
        for clip in clips[1:]:
            writer.fail(clip.clip_id, "bad media")
    chunks = sorted(key for key in deleted if "/c/" in key)
    expected = sorted(f"{feature.values.path}/c/{chunk}/0" for chunk in leftover) + sorted(
        f"{feature.timestamps.path}/c/{chunk}" for chunk in leftover
    )
    assert sorted(chunks) == sorted(expected)
    after = FeatureStore.open(tmp_path / "s.zarr", mode="r")
    assert after.verify() == [] and after.status("audio")[0] == COMMITTED


# -- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_anywhere_is_one_line_with_status_1(monkeypatch, capsys):
    from pipelines.commands import info

    def full(args):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/s.zarr/zarr.json")
        except OSError as error:
            raise RuntimeError("a library's own words") from error

    monkeypatch.setattr(info, "run", full)
    assert cli.main(["info", "s.zarr"]) == 1
    assert capsys.readouterr().err == (
        "avscene info: error: no space left on device writing /data/s.zarr/zarr.json\n"
    )


LIMITED = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {root!r})
    from pipelines.commands import cli

    limit = int(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # writes past it raise EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(cli.main(sys.argv[2:]))
""").format(root=ROOT)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    synth_corpus(
        out,
        clips_per_class=2,
        seconds=1.0,
        size=(64, 48),
        fps=5,
        seed=11,
        classes=("airport", "bus"),
        workers=1,
    )
    return out / "development"


def test_a_full_disk_during_extract_is_one_line_and_keeps_committed_clips(corpus, tmp_path):
    store_path = tmp_path / "s.zarr"
    assert cli.main(["-q", "extract", str(corpus), str(store_path), *LOGMEL, "--limit", "2"]) == 0
    before = FeatureStore.open(store_path, mode="r")
    committed = [
        clip_id
        for clip_id, status in zip(before.clips.clip_id, before.status("logmel"))
        if status == COMMITTED
    ]
    frames = {clip_id: before.frames("logmel", clip_id) for clip_id in committed}
    assert len(committed) == 2
    script = tmp_path / "limited.py"
    script.write_text(LIMITED)
    # 1 MiB: every index and metadata file fits, an uncompressed 4 MiB chunk does not
    full = subprocess.run(
        [
            sys.executable,
            str(script),
            str(2**20),
            "-q",
            "extract",
            str(corpus),
            str(store_path),
            *LOGMEL,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 1, full.stderr
    assert full.stderr == f"avscene extract: error: file-size limit reached writing {store_path}\n"
    after = FeatureStore.open(store_path, mode="r")
    status = dict(zip(after.clips.clip_id, after.status("logmel")))
    assert len(status) == 4 and sorted(status.values()) == [PENDING, PENDING, COMMITTED, COMMITTED]
    for clip_id, (values, times) in frames.items():
        got_values, got_times = after.frames("logmel", clip_id)
        np.testing.assert_array_equal(got_values, values)
        np.testing.assert_array_equal(got_times, times)
    assert after.verify() == [] and after.temporary_files() == []
    assert not (store_path / "leases").exists() or not any((store_path / "leases").iterdir())
    assert cli.main(["-q", "extract", str(corpus), str(store_path), *LOGMEL]) == 0
    done = FeatureStore.open(store_path, mode="r")
    assert list(done.status("logmel")) == [COMMITTED] * 4 and done.verify() == []


def documented_rows(name, flag):
    """The rows of the bounds tables (docs/extraction.md for extract, docs/index.md for the
    other commands) that document option ``flag`` of command ``name``."""
    page = "extraction.md" if name == "extract" else "index.md"
    rows = [
        line.split(" | ")
        for line in (pathlib.Path(ROOT) / "docs" / page).read_text().splitlines()
        if line.startswith("| ")
    ]
    if name == "extract":
        return [" | ".join(row) for row in rows if row[0] == f"| `{flag}`"]
    return [
        " | ".join(row)
        for row in rows
        if len(row) > 2
        and f"`{flag}`" in row[1]
        and (f"`{name}`" in row[0] or "every command" in row[0])
    ]


def numeric_options():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return [
        (name, action.option_strings[0], action.type.bounds)
        for name, sub in commands.items()
        for action in sub._actions
        if getattr(action.type, "bounds", None)
    ]


def test_the_docs_tables_give_every_numeric_option_its_bounds():
    checked = 0
    for name, flag, bounds in numeric_options():
        rows = documented_rows(name, flag)
        assert len(rows) == 1, (name, flag, rows)
        low = next(bounds[key] for key in ("minimum", "above") if bounds[key] is not None)
        high = next(bounds[key] for key in ("maximum", "below") if bounds[key] is not None)
        for value in (low, high):
            assert f"{value:g}" in rows[0] or str(value) in rows[0], (name, flag, rows[0])
        checked += 1
    assert checked >= 30
