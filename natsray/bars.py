"""Progress bars on stderr: how often tqdm redraws, on a terminal and in a log.

On a terminal a bar is redrawn in place (at most every 0.5 s). In a log file, a pipe, or the output of
a SLURM / ``ray job submit`` job, each redraw is appended, so a bar redrawn twice a second would fill
the log: there it is redrawn at most every :data:`LOG_INTERVAL_S` seconds (and when it ends). A
notebook's widget bar (``tqdm.auto``) is redrawn as on a terminal.
"""

from __future__ import annotations

from typing import IO, Any

__all__ = ["LOG_INTERVAL_S", "bar_options"]

LOG_INTERVAL_S = 30.0
"""Seconds between a bar's redraws when its stream is not a terminal."""


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def bar_options(stream: IO[str], bar_class: type | None = None) -> dict[str, Any]:
    """Keyword arguments for ``tqdm(...)`` writing to ``stream``.

    Args:
        stream: Where the bar goes (``sys.stderr``).
        bar_class: The tqdm class used, when it may be a notebook's (``tqdm.auto.tqdm``).

    Returns:
        ``file``, ``mininterval``, ``maxinterval`` and ``dynamic_ncols``: 0.5 s and the terminal's
        width on a terminal or in a notebook, :data:`LOG_INTERVAL_S` otherwise.
    """
    notebook = bar_class is not None and any("notebook" in cls.__module__ for cls in bar_class.__mro__)
    if notebook or _is_terminal(stream):
        return {"file": stream, "mininterval": 0.5, "dynamic_ncols": True}
    interval = LOG_INTERVAL_S
    return {"file": stream, "mininterval": interval, "maxinterval": interval, "dynamic_ncols": False}
