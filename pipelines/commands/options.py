"""The one option convention of the ``avscene`` sub-commands, and the types that enforce it.

- Replacing existing output is ``--overwrite`` (:func:`add_overwrite`).
- A command checks that it can write its output (:func:`check_output`) before its work.
- A command that creates something names it with ``--out`` (:func:`add_out`); a command that
  extends a store (``extract``) or reads inputs takes them as positional arguments.
- Parallelism is ``--workers N`` for processes and ``--threads N`` for threads in one process
  (:func:`add_workers`, :func:`add_threads`); ``--dask``/``--dask-local`` for a Dask cluster.
- List options are comma-separated (:func:`comma_list`).
- Every numeric option is parsed by :func:`number` (or :func:`seed`, :func:`bounded`) with a
  lower and an upper bound, so a bad value stops the command with a one-line error and exit
  status 2; :func:`show_bounds` writes the bounds into each option's help.
- ``--json`` prints one JSON object with sorted keys (:func:`add_json`, :func:`print_json`).
- A command that reads a store or archive takes ``--timeout`` and ``--allow-redirects`` for
  HTTP(S) URLs (:func:`add_http`).

``tests/pipelines/test_cli_convention.py`` walks every command's parser and checks all of it.
"""

import argparse
import contextlib
import json
import math
import sys

from featurestore import outputs
from featurestore.limits import HTTP_TIMEOUT, SHARDS, WORKERS
from pipelines.jobs.runs import jsonable

#: The largest seed: every random generator avscene seeds (NumPy, scikit-learn, torch) takes it.
MAX_SEED = 2**32 - 1
#: The longest number an option takes, in characters (longer ones are not echoed back).
MAX_DIGITS = 40
#: Upper bounds of the parallelism options.
MAX_THREADS, MAX_DASK_WORKERS = 1024, 256
#: Bootstrap draws of ``evaluate`` and ``score`` (100,000 take minutes on the TAU evaluation set).
MAX_BOOTSTRAP = 100000


def number(kind, *, minimum=None, above=None, below=None, maximum=None):
    """An argparse type for an ``int`` or ``float`` option with bounds.

    Parameters
    ----------
    kind : int or float
    minimum : number, optional
        The value must be >= minimum.
    above : number, optional
        The value must be > above.
    below : number, optional
        The value must be < below.
    maximum : number, optional
        The value must be <= maximum.
    """

    def parse(text):
        if len(text) > MAX_DIGITS:
            raise argparse.ArgumentTypeError(
                f"expected a number of at most {MAX_DIGITS} characters, got {len(text)}"
            )
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {_show(minimum)}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {_show(above)}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be < {_show(below)}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {_show(maximum)}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    parse.bounds = {
        "kind": kind,
        "minimum": minimum,
        "above": above,
        "below": below,
        "maximum": maximum,
    }
    return parse


def bounded(limit):
    """:func:`number` of a :class:`featurestore.limits.Bounds` (the Python API's own bounds)."""
    return number(limit.kind, minimum=limit.low, maximum=limit.high)


def positive(kind, *, maximum):
    """:func:`number` > 0 (an integer: >= 1) and <= maximum."""
    if kind is int:
        return number(int, minimum=1, maximum=maximum)
    return number(kind, above=0, maximum=maximum)


def non_negative(kind, *, maximum):
    """:func:`number` >= 0 and <= maximum."""
    return number(kind, minimum=0, maximum=maximum)


def seed():
    """A random seed: an integer from 0 to :data:`MAX_SEED`."""
    return number(int, minimum=0, maximum=MAX_SEED)


def _show(value):
    """A bound as the user types it: 10 rather than 10.0, 0.01, 4294967295."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def bounds_text(bounds, name):
    """``0.01 <= HOP <= 10``: the bounds of a :func:`number` type, for the help."""
    low = (
        f"{_show(bounds['minimum'])} <= "
        if bounds["minimum"] is not None
        else f"{_show(bounds['above'])} < "
        if bounds["above"] is not None
        else ""
    )
    high = (
        f" <= {_show(bounds['maximum'])}"
        if bounds["maximum"] is not None
        else f" < {_show(bounds['below'])}"
        if bounds["below"] is not None
        else ""
    )
    return f"{low}{name}{high}"


def show_bounds(parser):
    """Append each numeric option's bounds to its help: ``(range: 0.01 <= HOP <= 10)``."""
    for action in parser._actions:
        bounds = getattr(action.type, "bounds", None)
        if bounds is None or action.help in (None, argparse.SUPPRESS):
            continue
        name = action.metavar or action.dest.upper()
        action.help = f"{action.help} (range: {bounds_text(bounds, name)})"


def list_type(parse):
    """Mark the argparse type ``parse`` as one of a comma-separated list (``--help`` shows
    ``list``; the CLI convention test reads the mark)."""
    parse.__name__ = "list"
    setattr(parse, "comma_list", True)  # noqa: B010 (a function attribute, for mypy)
    return parse


def comma_list(*, choices=None, unique=True, check=None):
    """An argparse type for ``a,b,c``: a tuple of non-empty names, optionally from ``choices``
    or accepted by ``check(name)`` (which raises ValueError, e.g. UsageError, to refuse one)."""

    def parse(text):
        names = tuple(part.strip() for part in text.split(",") if part.strip())
        if not names:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        if unique and len(set(names)) != len(names):
            repeated = next(n for n in names if names.count(n) > 1)
            raise argparse.ArgumentTypeError(f"{repeated!r} is listed twice in {text!r}")
        unknown = [n for n in names if choices is not None and n not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {','.join(choices)}"
            )
        for name in names if check is not None else ():
            try:
                check(name)
            except ValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        return names

    return list_type(parse)


def shard(text):
    """``I/N`` with ``0 <= I < N <= SHARDS.high``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be I/N, got {text!r}") from None
    if not 0 <= index < count <= SHARDS.high:
        raise argparse.ArgumentTypeError(f"I/N needs 0 <= I < N <= {SHARDS.high}, got {text!r}")
    return index, count


def add_out(parser, *, what, required=True, default=None, metavar="PATH"):
    """``--out PATH``: where the command writes ``what``."""
    parser.add_argument(
        "--out", required=required, default=default, metavar=metavar, help=f"where to write {what}"
    )


def check_output(where, *, overwrite=True, folder=False, files=(), store=False):
    """Refuse, before the command's work, an output it could not or must not write.

    ``where`` is the output file (or, with ``folder``, the output directory, and ``files`` the
    names the command writes into it); see :func:`featurestore.outputs.check_writable`. URLs
    other than ``file://`` are left to the store code, and so is a ``store`` named like a zip
    archive (read-only). Raises an ``OutputError`` (one line, exit status 2).
    """
    path = outputs.local_path(where)
    if path is None:
        return
    if store:
        from featurestore.store.opening import is_archive_name

        if is_archive_name(path):
            return
    outputs.check_writable(path, overwrite=overwrite, folder=folder or store)
    for name in files:
        outputs.check_writable(path / name, overwrite=True, within=path)


def add_overwrite(parser, *, what):
    """``--overwrite``: replace ``what`` when it exists (otherwise the command refuses)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} if it exists (without it, an existing one is an error)",
    )


def add_workers(parser, *, default, what, zero="in this process"):
    """``--workers N``: processes doing ``what``; ``zero`` says what 0 means."""
    parser.add_argument(
        "--workers",
        type=bounded(WORKERS),
        default=default,
        metavar="N",
        help=f"worker processes {what} (0: {zero})",
    )


def add_threads(parser):
    """``--threads N``: CPU threads of this process's numerical libraries."""
    parser.add_argument(
        "--threads",
        type=positive(int, maximum=MAX_THREADS),
        default=None,
        metavar="N",
        help="CPU threads of this process (BLAS, OpenMP, torch, LightGBM; "
        "default: the libraries' own choice)",
    )


def add_json(parser, *, what="the result"):
    """``--json``: print ``what`` as one JSON object with sorted keys instead of text."""
    parser.add_argument(
        "--json", action="store_true", help=f"print {what} as one JSON object (sorted keys)"
    )


def add_dask_arguments(parser, *, what):
    """``--dask ADDRESS`` and ``--dask-local N`` (mutually exclusive) for command ``what``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--dask",
        metavar="ADDRESS",
        help=f"{what} on the Dask distributed scheduler at ADDRESS (tcp://host:8786)",
    )
    group.add_argument(
        "--dask-local",
        type=positive(int, maximum=MAX_DASK_WORKERS),
        metavar="N",
        help=f"{what} on a local Dask cluster of N worker processes, 1 thread each",
    )


def add_http(parser):
    """``--timeout SECONDS`` and ``--allow-redirects``: how stores and archives are read over
    HTTP(S) (:mod:`featurestore.store.remote`); :func:`http_settings` applies them."""
    parser.add_argument(
        "--timeout",
        type=positive(float, maximum=HTTP_TIMEOUT.high),
        default=None,
        metavar="SECONDS",
        help="seconds each HTTP(S) request may take, from connecting to the "
        "last byte of the answer (unset: $AVSCENE_HTTP_TIMEOUT, else 60)",
    )
    parser.add_argument(
        "--allow-redirects",
        action="store_true",
        help="follow HTTP(S) redirects to another scheme, host or port (without "
        "it they are refused)",
    )


def http_settings(args):
    """The context in which a command runs: its ``--timeout`` and ``--allow-redirects``, if it
    has them and they are given, for itself and the processes it starts."""
    timeout, allow = getattr(args, "timeout", None), getattr(args, "allow_redirects", False)
    if timeout is None and not allow:
        return contextlib.nullcontext()
    from featurestore.store.remote import http_settings as settings

    return settings(timeout=timeout, allow_redirects=allow)


def print_json(document, *, stream=None):
    """Print one JSON object with sorted keys (the ``--json`` output of every command)."""
    if not isinstance(document, dict):
        raise TypeError(f"--json prints one object, got {type(document).__name__}")
    stream = sys.stdout if stream is None else stream
    stream.write(json.dumps(document, indent=2, sort_keys=True, default=jsonable) + "\n")
