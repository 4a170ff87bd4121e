"""Number formatting shared by the commands that print metrics (evaluate, compare, report)."""


def number(value, *, width=0, digits=3):
    """``0.12345`` -> ``"0.123"`` right-aligned in ``width``; None -> ``"-"``."""
    return "-".rjust(width) if value is None else f"{value:{width}.{digits}f}"


def percent(value, *, width=0):
    """``0.8123`` -> ``"81.2%"`` right-aligned in ``width``; None -> ``"-"``."""
    return "-".rjust(width) if value is None else f"{100 * value:{max(width - 1, 0)}.1f}%"


def interval(ci, *, as_percent=False):
    """``[0.61, 0.92]`` -> ``" [0.610, 0.920]"`` (``" [61.0, 92.0]"`` as percent); none -> ``""``."""
    if not ci or ci[0] is None:
        return ""
    if as_percent:
        return f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]"
