"""A progress bar on stderr: evaluations, best fitness so far, evaluations/s, actors alive.

``tqdm.auto``: in Jupyter the notebook's widget bar (with ``ipywidgets`` installed:
``pip install natsray[notebook]``; a text bar otherwise), in a terminal the text bar."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from natsray.bars import bar_options

if TYPE_CHECKING:
    from tqdm.auto import tqdm

__all__ = ["Progress"]


class Progress:
    """A tqdm bar that is a no-op when disabled.

    The bar appears on the first :meth:`update`, so a run that fails while setting up its
    evaluators prints only its error.

    Args:
        enabled: Show it at all.
        total: Evaluation budget, when there is one.
        initial: Evaluations already done (a resumed run).
    """

    def __init__(self, enabled: bool, total: int | None, initial: int = 0) -> None:
        self._enabled = enabled
        self._total = total
        self._bar: tqdm | None = None
        self._count = initial

    def update(self, evaluations: int, best: float | None, actors: int | None = None) -> None:
        """Move the bar to ``evaluations`` and show the best first objective and live actors."""
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm.auto import tqdm  # imported with the first bar (~18 ms): runs without one never do

            self._bar = tqdm(
                total=self._total,
                initial=self._count,
                unit="eval",
                **bar_options(sys.stderr, tqdm),
            )
        postfix = {"best": "-" if best is None else f"{best:.4g}"}
        if actors is not None:
            postfix["actors"] = actors
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(evaluations - self._count)
        self._count = evaluations

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
