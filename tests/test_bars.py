"""Progress bars: redrawn in place on a terminal, rarely in a log (natsray.bars)."""

from __future__ import annotations

import io
import time

from tqdm import tqdm

from natsray.bars import LOG_INTERVAL_S, bar_options


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Closed(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


def _draws(stream: io.StringIO, seconds: float) -> int:
    """How many times a bar writing to ``stream`` draws itself in ``seconds`` of busy updates."""
    bar = tqdm(total=None, unit="cell", **bar_options(stream))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        bar.update(1)
    bar.close()
    return stream.getvalue().count("\r")


def test_a_log_gets_a_few_lines_a_terminal_a_live_bar() -> None:
    assert bar_options(io.StringIO())["mininterval"] == LOG_INTERVAL_S == 30.0
    assert bar_options(_Closed())["mininterval"] == LOG_INTERVAL_S  # a stream that cannot say: a log
    assert bar_options(_Terminal())["mininterval"] == 0.5
    assert _draws(io.StringIO(), 1.2) <= 3  # first draw, final draw (and at most one between)
    assert _draws(_Terminal(), 1.2) >= 3  # redrawn every 0.5 s


def test_a_notebook_bar_is_redrawn_as_on_a_terminal() -> None:
    notebook_bar = type("tqdm_notebook", (tqdm,), {"__module__": "tqdm.notebook"})
    assert bar_options(io.StringIO(), notebook_bar)["mininterval"] == 0.5
    assert bar_options(io.StringIO(), tqdm)["mininterval"] == LOG_INTERVAL_S
