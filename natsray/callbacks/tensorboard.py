"""TensorBoard logger: one event-file directory per natsray run (``pip install 'natsray[tensorboard]'``).

Writes with :class:`torch.utils.tensorboard.SummaryWriter` (torch is a natsray dependency; the
``tensorboard`` package provides the event format): each evaluation's objectives and report metrics as
scalars at step = its journal line number, the flattened config as a text summary (``config``), and at
the end ``summary.json`` / ``best_arch.yaml`` / ``config.yaml`` as text and the PNG plots as images.
``tensorboard --logdir RUN_DIR/tensorboard`` shows it (or point ``--logdir`` at a sweep directory with
``log_dir`` left as default: every run directory's ``tensorboard/`` is one TensorBoard run). A resume
appends a new event file to the same directory; TensorBoard merges them. See ``docs/callbacks.md``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from natsray.callbacks.tracker import Tracker

if importlib.util.find_spec("tensorboard") is None:
    raise ImportError("the TensorBoard logger needs TensorBoard: pip install 'natsray[tensorboard]'")

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Tracker):
    """Logs a natsray run as TensorBoard event files (YAML: ``callbacks: [tensorboard]``).

    Args:
        log_dir: The event-file directory; None: ``RUN_DIR/tensorboard``. A relative path is relative
            to the current directory; with several runs (a sweep) each run gets
            ``log_dir/<run directory name>``.
        flush_every: Points buffered before they are written.
        flush_seconds: Seconds after which an arriving evaluation writes the buffer.
        artifacts: Write the run's summary, best cell, config and plots at the end.
    """

    state_file: ClassVar[str] = "tensorboard.json"

    def __init__(
        self,
        log_dir: str | None = None,
        *,
        flush_every: int = 1000,
        flush_seconds: float = 5.0,
        artifacts: bool = True,
    ) -> None:
        super().__init__(flush_every=flush_every, flush_seconds=flush_seconds, artifacts=artifacts)
        self.log_dir = log_dir
        self._writer: Any = None

    def _open(self, run_dir: Path, state: Mapping[str, Any]) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = state.get("log_dir")
        if log_dir is None:
            log_dir = run_dir / "tensorboard" if self.log_dir is None else Path(self.log_dir) / run_dir.name
            log_dir = str(Path(log_dir).resolve())
        self._writer = SummaryWriter(log_dir=log_dir)
        return {"log_dir": log_dir}

    def _log_params(self, params: Mapping[str, str]) -> None:
        rows = "\n".join(f"| {key} | {value} |" for key, value in params.items())
        self._writer.add_text("config", f"| key | value |\n| --- | --- |\n{rows}", 0)
        self._writer.flush()

    def _log_points(self, points: list[tuple[int, float, dict[str, float]]]) -> None:
        writer = self._writer
        for step, stamp, values in points:
            for name, value in values.items():
                writer.add_scalar(name, value, step, walltime=stamp)
        writer.flush()

    def _log_files(self, files: list[Path]) -> None:
        from matplotlib import image

        for path in files:
            if path.suffix == ".png":
                self._writer.add_image(path.stem, image.imread(path)[..., :3], 0, dataformats="HWC")
            else:  # a code block in TensorBoard's markdown: four spaces
                text = "\n".join("    " + line for line in path.read_text(encoding="utf-8").splitlines())
                self._writer.add_text(path.name, text, 0)
        self._writer.flush()

    def _close(self, finished: bool) -> None:
        self._writer.close()
        self._writer = None
