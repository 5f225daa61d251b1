"""TensorBoard logger: one event-file directory per natsray run (``pip install 'natsray[tensorboard]'``).

Writes with TensorBoard's own event-file writer (``tensorboard.summary.writer``; neither TensorFlow nor
torch is imported): each evaluation's objectives and numeric report metrics as scalars at step = its
journal line number (one event per evaluation), the flattened config as the text ``config``, and at
the end ``summary.json`` / ``best_arch.yaml`` / ``config.yaml`` as text and the PNG plots as images.
``tensorboard --logdir RUN_DIR/tensorboard`` shows it (or point ``--logdir`` at a sweep directory:
every run directory's ``tensorboard/`` is one TensorBoard run). A resume appends a new event file to
the same directory; TensorBoard merges them. See ``docs/callbacks.md``.
"""

from __future__ import annotations

import importlib.util
import struct
import time
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
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        log_dir = state.get("log_dir")
        if log_dir is None:
            log_dir = run_dir / "tensorboard" if self.log_dir is None else Path(self.log_dir) / run_dir.name
            log_dir = str(Path(log_dir).resolve())
        self._writer = EventFileWriter(log_dir)
        return {"log_dir": log_dir}

    def _write(self, values: list[Any], step: int, stamp: float | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=values)
        self._writer.add_event(Event(wall_time=stamp or time.time(), step=step, summary=summary))

    def _log_params(self, params: Mapping[str, str]) -> None:
        rows = "\n".join(f"| {key} | {value} |" for key, value in params.items())
        self._write([_text("config", f"| key | value |\n| --- | --- |\n{rows}")], 0)
        self._writer.flush()

    def _log_points(self, points: list[tuple[int, float, dict[str, float]]]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        for step, stamp, values in points:
            self._write([Summary.Value(tag=k, simple_value=v) for k, v in values.items()], step, stamp)
        self._writer.flush()

    def _log_files(self, files: list[Path]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        for path in files:
            if path.suffix == ".png":
                data = path.read_bytes()
                width, height = struct.unpack(">II", data[16:24])  # the PNG header's IHDR chunk
                image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=data)
                self._write([Summary.Value(tag=path.stem, image=image)], 0)
            else:  # a code block in TensorBoard's markdown: four spaces
                text = "\n".join("    " + line for line in path.read_text(encoding="utf-8").splitlines())
                self._write([_text(path.name, text)], 0)
        self._writer.flush()

    def _close(self, finished: bool) -> None:
        self._writer.close()
        self._writer = None


def _text(tag: str, text: str) -> Any:
    """A summary value of TensorBoard's text plugin (markdown), tagged ``<tag>/text_summary``."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData

    content = TextPluginData(version=0).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text", content=content))
    tensor = TensorProto(
        dtype="DT_STRING",
        string_val=[text.encode("utf-8")],
        tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
    )
    return Summary.Value(tag=f"{tag}/text_summary", metadata=metadata, tensor=tensor)
