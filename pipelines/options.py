"""Option types and option groups shared by the ``avscene`` sub-commands.

Every numeric option is parsed by one of these types, so a bad value stops the command with a
one-line ``argparse`` error and exit status 2; list options are always comma-separated.
"""

import argparse


def positive(kind):
    """Type for an option that must be > 0 (``kind`` is ``int`` or ``float``)."""
    def parse(text):
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def non_negative(kind):
    """Type for an option that must be >= 0."""
    def parse(text):
        value = _number(kind, text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return value
    parse.__name__ = f"non-negative {kind.__name__}"
    return parse


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: "
                                         f"{text!r}") from None
    if kind is float and value != value:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return value


def shard(text):
    """``I/N`` with ``0 <= I < N``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be I/N, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"I/N needs 0 <= I < N, got {text!r}")
    return index, count


def add_dask_arguments(parser, *, what):
    """``--dask ADDRESS`` and ``--dask-local N`` (mutually exclusive) for command ``what``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--dask", metavar="ADDRESS",
                       help=f"{what} on the Dask distributed scheduler at ADDRESS "
                            "(tcp://host:8786)")
    group.add_argument("--dask-local", type=positive(int), metavar="N",
                       help=f"{what} on a local Dask cluster of N worker processes, "
                            "1 thread each")
