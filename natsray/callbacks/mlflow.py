"""MLflow logger: one MLflow run per natsray run (``pip install 'natsray[mlflow]'``).

Uses MLflow's tracking client (:class:`mlflow.tracking.MlflowClient`, no global active run, so runs of a
sweep or a notebook never mix): the flattened config as parameters, each evaluation's objectives and
report metrics as metrics at step = its journal line number (names outside MLflow's alphabet, e.g.
``test_accuracy@200``, get ``_``: ``test_accuracy_200``), the run's files as artifacts, status
``FINISHED`` at the end (``KILLED`` when interrupted; a resume reopens the same MLflow run, whose id
is kept in ``RUN_DIR/mlflow.json``). See :mod:`natsray.callbacks.tracker` and ``docs/callbacks.md``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from natsray.callbacks.tracker import Tracker

if importlib.util.find_spec("mlflow") is None:
    raise ImportError("the MLflow logger needs MLflow: pip install 'natsray[mlflow]'")

__all__ = ["MLflowLogger"]

_MAX_METRICS = 1000  # MLflow's log_batch limits
_MAX_PARAMS = 100
_MAX_PARAM_VALUE = 6000
_NOT_IN_NAMES = re.compile(r"[^/\w.\- :]")


def _absolute(uri: str) -> str:
    """A relative ``sqlite:///path`` made absolute (``sqlite:////abs/path``), so that a resume from
    another directory, which reads the URI back from ``mlflow.json``, logs to the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri != prefix + ":memory:":
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def metric_name(name: str) -> str:
    """``name`` with the characters MLflow refuses in a metric name replaced by ``_``."""
    return _NOT_IN_NAMES.sub("_", name)


class MLflowLogger(Tracker):
    """Logs a natsray run to MLflow (YAML: ``callbacks: [{class: mlflow, experiment_name: nas}]``).

    Args:
        tracking_uri: Where to log: a tracking server (``http://host:5000``), ``databricks``,
            ``sqlite:///mlflow.db`` or ``file:...``. None: MLflow's own choice (``MLFLOW_TRACKING_URI``,
            else ``sqlite:///mlflow.db`` in the current directory). The resolved URI is kept in
            ``RUN_DIR/mlflow.json``, so a resume from another directory logs to the same store.
        experiment_name: The MLflow experiment (created when missing).
        run_name: The MLflow run's name; None: the run directory's name.
        tags: Extra tags of the MLflow run (``natsray.run_dir`` is always set).
        artifact_location: Where a new experiment stores its runs' artifacts; None: the store's default
            (for a ``sqlite:///`` store MLflow's is ``./mlruns`` in the current directory).
        flush_every: Points buffered before a ``log_batch`` call.
        flush_seconds: Seconds after which an arriving evaluation sends the buffer.
        artifacts: Log ``config.yaml``, ``summary.json``, ``best_arch.yaml`` and the plots at the end.
    """

    state_file: ClassVar[str] = "mlflow.json"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "natsray",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        artifact_location: str | None = None,
        *,
        flush_every: int = 1000,
        flush_seconds: float = 5.0,
        artifacts: bool = True,
    ) -> None:
        super().__init__(flush_every=flush_every, flush_seconds=flush_seconds, artifacts=artifacts)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.artifact_location = artifact_location
        self._client: Any = None
        self._run_id: str | None = None

    def _open(self, run_dir: Path, state: Mapping[str, Any]) -> dict[str, Any]:
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = state.get("tracking_uri") or _absolute(self.tracking_uri or mlflow.get_tracking_uri())
        client = MlflowClient(tracking_uri=uri)
        run_id = state.get("run_id")
        if run_id:
            client.update_run(run_id, status="RUNNING")
        else:
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                location = self.artifact_location and Path(self.artifact_location).resolve().as_uri()
                experiment_id = client.create_experiment(self.experiment_name, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
            tags = {"natsray.run_dir": str(run_dir.resolve()), **self.tags}
            run = client.create_run(experiment_id, run_name=self.run_name or run_dir.name, tags=tags)
            run_id = run.info.run_id
        self._client, self._run_id = client, run_id
        return {"tracking_uri": uri, "run_id": run_id}

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value[:_MAX_PARAM_VALUE]) for key, value in params.items()]
        for start in range(0, len(items), _MAX_PARAMS):
            self._client.log_batch(self._run_id, params=items[start : start + _MAX_PARAMS])

    def _log_points(self, points: list[tuple[int, float, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        metrics = [
            Metric(metric_name(name), value, int(stamp * 1000), step)
            for step, stamp, values in points
            for name, value in values.items()
        ]
        for start in range(0, len(metrics), _MAX_METRICS):
            self._client.log_batch(self._run_id, metrics=metrics[start : start + _MAX_METRICS])

    def _log_files(self, files: list[Path]) -> None:
        for path in files:
            self._client.log_artifact(self._run_id, str(path))

    def _close(self, finished: bool) -> None:
        self._client.set_terminated(self._run_id, status="FINISHED" if finished else "KILLED")
