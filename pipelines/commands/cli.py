"""The ``avscene`` command line.

Each sub-command lives in its own module of :mod:`pipelines.commands` exposing
``add_arguments(parser)`` and ``run(args) -> int`` (parse, call a job of :mod:`pipelines.jobs`,
print, return the exit status); this file only lists them. Modules must stay cheap to import (torch is
imported inside ``run``), since ``avscene --help`` imports them all.

A module may also expose ``check_arguments(args)``, the checks of options that go together; a
UsageError it raises is the sub-command's usage error (exit status 2) before any work starts.

Exit statuses: 0 success; 1 the job finished but some items failed (each was reported on its
own line), or a full disk stopped it after it had kept some work (what it had committed stays,
and a rerun after freeing space goes on from there); 2 bad usage or input that stopped the job
before it did anything; 130 interrupted.
"""

import argparse
import importlib
import logging
import sys

from featurestore import __version__
from featurestore.errors import FULL_DISK, AvsceneError, full_disk
from pipelines.commands.options import http_settings, show_bounds

#: (command, module, one-line help), in the order of the data flow.
COMMANDS = (
    (
        "synth",
        "pipelines.commands.synth",
        "write a synthetic corpus in the TAU audio-visual 2021 layout",
    ),
    (
        "scan",
        "pipelines.commands.scan",
        "count a dataset's clips per scene, city, location, fold; list problems",
    ),
    (
        "extract",
        "pipelines.commands.extract",
        "decode a dataset into OpenL3 embeddings and log-mels in a store",
    ),
    (
        "info",
        "pipelines.commands.info",
        "describe a feature store: clips, features, sizes, provenance",
    ),
    ("verify", "pipelines.commands.verify", "re-read every chunk of a store and check its index"),
    ("export", "pipelines.commands.export", "copy a feature store into one HDF5 file"),
    (
        "import",
        "pipelines.commands.import_store",
        "rebuild a feature store from an exported HDF5 file",
    ),
    (
        "segments",
        "pipelines.commands.segments",
        "store the pooled 1-s segments of a store's features",
    ),
    (
        "pack",
        "pipelines.commands.pack",
        "write a store as one zip archive that every command reads in place",
    ),
    ("unpack", "pipelines.commands.unpack", "restore a writable feature store from a zip archive"),
    (
        "split",
        "pipelines.commands.split",
        "write a validation split (clip_id,role) of a store's training fold",
    ),
    (
        "train",
        "pipelines.commands.train",
        "train a classifier or fusion system on cached features",
    ),
    (
        "evaluate",
        "pipelines.commands.evaluate",
        "DCASE 2021 Task 1B metrics of a trained run on a fold",
    ),
    (
        "predict",
        "pipelines.commands.predict",
        "write the DCASE output file (one row per 1-s segment)",
    ),
    ("score", "pipelines.commands.score", "DCASE metrics of an output file against a labels file"),
    ("compare", "pipelines.commands.compare", "trained systems side by side"),
    ("report", "pipelines.commands.report", "write a Markdown report of evaluated systems"),
    ("demo", "pipelines.commands.demo", "the whole product on a synthetic corpus, in one command"),
)

#: Exit statuses of bad usage and of an interrupted command (see the module docstring).
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
#: Exit status of a command a full disk stopped (see the module docstring).
EXIT_FULL_DISK = 1


def build_parser():
    """Return the top-level argument parser with every sub-command attached."""
    parser = argparse.ArgumentParser(
        prog="avscene",
        description="Feature store and classifiers for audio-visual scene classification.",
    )
    parser.add_argument("--version", action="version", version=f"avscene {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        show_bounds(sub)
        sub.set_defaults(
            run=module.run, check=getattr(module, "check_arguments", None), command_parser=sub
        )
    return parser


def full_disk_message(error, args):
    """One line: what ran out and the file (or else the command's output) it was writing."""
    where = error.filename or getattr(args, "out", None) or getattr(args, "store", None)
    return f"{FULL_DISK[error.errno]} writing {where}" if where else FULL_DISK[error.errno]


def configure_logging(*, verbose=False, quiet=False):
    """Log to stderr as ``avscene: message``; level from -v/-q."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="avscene: %(message)s", stream=sys.stderr, force=True)


def main(argv=None):
    """Entry point of the ``avscene`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_ERROR
    if args.check is not None:
        try:
            args.check(args)
        except AvsceneError as error:
            args.command_parser.error(str(error))
    configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        with http_settings(args):
            return args.run(args)
    except AvsceneError as error:  # a full disk already in one line (StoreWriteError): 1
        print(f"avscene {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR if full_disk(error) is None else EXIT_FULL_DISK
    except Exception as error:  # a full disk, however a library words it; else a bug
        if full_disk(error) is None:
            raise
        print(
            f"avscene {args.command}: error: {full_disk_message(full_disk(error), args)}",
            file=sys.stderr,
        )
        return EXIT_FULL_DISK
    except KeyboardInterrupt:
        print(f"avscene {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
