"""Callbacks (issue 18, part 5): user hooks from Python and from YAML, faults contained, resume semantics,
and the MLflow / TensorBoard loggers read back with the libraries' own readers."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import toy_evaluator  # registers evaluator.type: toy
from toy_evaluator import ToyConfig, local_ray_session, make_config, run_killed, trajectory

from natsray.callbacks import Callback, CallbackSpec
from natsray.cli import main
from natsray.config import EngineConfig, config_from_dict, config_to_dict
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment

EVALUATIONS = 24
ROOT = Path(__file__).resolve().parents[1]


class Recorder(Callback):
    """Every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_run_start(self, run_dir: Path, config: Any) -> None:
        self.calls.append(("start", Path(run_dir), config.seed))

    def on_result(self, result: Any, index: int, candidate: Any) -> None:
        self.calls.append(("result", index, candidate.id, candidate.arch.to_str(), dict(result.objectives)))

    def on_run_end(self, run_dir: Path, summary: Any) -> None:
        self.calls.append(("end", Path(run_dir), summary["evaluations"], summary["best_arch"]))

    def on_run_error(self, run_dir: Path, error: BaseException) -> None:
        self.calls.append(("error", type(error).__name__))

    def results(self) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == "result"]


class Raising(Callback):
    """Raises in every hook."""

    def on_run_start(self, run_dir: Path, config: Any) -> None:
        raise RuntimeError("cannot reach the tracking server\nsecond line")

    def on_result(self, result: Any, index: int, candidate: Any) -> None:
        raise ValueError(f"bad result {index}")

    def on_run_end(self, run_dir: Path, summary: Any) -> None:
        raise KeyError("summary")


def journal_rows(run_dir: Path) -> list[tuple[Any, ...]]:
    """``(line number, candidate id, arch, objectives)`` of each journal line, as on_result sees them."""
    records = read_journal(run_dir / "evaluations.jsonl")
    return [(i, r["candidate_id"], r["arch"], r["objectives"]) for i, r in enumerate(records)]


def small(**engine: Any) -> Any:
    return make_config(budget=toy_budget(), engine=EngineConfig(in_process=True, **engine))


def toy_budget() -> Any:
    from natsray.config import BudgetConfig

    return BudgetConfig(evaluations=EVALUATIONS)


# --------------------------------------------------------------------------- hooks from Python


def test_a_callback_sees_every_result_in_journal_order_then_the_summary(tmp_path: Path) -> None:
    recorder = Recorder()
    summary = run_experiment(small(), tmp_path / "run", callbacks=[recorder])
    assert recorder.calls[0] == ("start", tmp_path / "run", 3)
    assert recorder.results() == journal_rows(tmp_path / "run")
    assert len(recorder.results()) == EVALUATIONS
    assert recorder.calls[-1] == ("end", tmp_path / "run", EVALUATIONS, summary.best_arch)


def test_a_raising_callback_costs_no_evaluation_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_experiment(small(), tmp_path / "plain")
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="natsray.callbacks"):
        run_experiment(small(), tmp_path / "faulty", callbacks=[Raising(), recorder])
    assert trajectory(tmp_path / "faulty") == trajectory(tmp_path / "plain")  # the same search, all of it
    assert len(recorder.results()) == EVALUATIONS  # the next callback still gets everything
    assert recorder.calls[-1][0] == "end"
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("callback Raising.on_run_start raised RuntimeError: cannot reach")
    assert "\n" not in messages[0]
    # later failures are counted, not repeated: one summary line at the end
    assert messages[1:] == [f"callback Raising raised {1 + EVALUATIONS + 1} times in all"]


def test_an_interrupted_run_calls_on_run_error_and_a_resume_delivers_only_new_results(tmp_path: Path) -> None:
    class Interrupt(Callback):
        def on_result(self, result: Any, index: int, candidate: Any) -> None:
            if index == 9:
                raise KeyboardInterrupt  # not contained: Ctrl-C stops the run

    first = Recorder()
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(small(batch_size=2), run_dir, callbacks=[first, Interrupt()])
    assert first.calls[-1] == ("error", "KeyboardInterrupt")
    journaled = len(read_journal(run_dir / "evaluations.jsonl"))
    assert [row[0] for row in first.results()] == list(range(10)) and journaled >= 10

    second = Recorder()
    run_experiment(small(batch_size=2), run_dir, resume=True, callbacks=[second])
    rows = journal_rows(run_dir)
    assert len(rows) == EVALUATIONS
    assert second.results() == rows[journaled:]  # the journal's new lines only, numbered on from it
    assert second.calls[-1][:3] == ("end", run_dir, EVALUATIONS)


# --------------------------------------------------------------------------- the callbacks key


def write_config(path: Path, run_dir: Path, callbacks: Any, **extra: Any) -> Path:
    data = {
        "seed": 1,
        "strategy": {"name": "regularized_evolution", "population": 6, "sample_size": 2},
        "evaluator": {"type": "toy"},
        "budget": {"evaluations": EVALUATIONS},
        "engine": {"mode": "ordered", "in_process": True},
        "output": {"dir": str(run_dir), "progress": False},
        "callbacks": callbacks,
        **extra,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


USER_MODULE = '''
import json
from natsray.callbacks import Callback


class Lines(Callback):
    """Writes one JSON line per hook call to ``path``."""

    def __init__(self, path, every=1):
        self.path, self.every = path, every

    def _write(self, *row):
        with open(self.path, "a") as out:
            out.write(json.dumps(row) + "\\n")

    def on_run_start(self, run_dir, config):
        self._write("start", config.evaluator.type)

    def on_result(self, result, index, candidate):
        if index % self.every == 0:
            self._write("result", index, candidate.arch.to_str(), result.objectives["score"])

    def on_run_end(self, run_dir, summary):
        self._write("end", summary["evaluations"], sorted(p.name for p in run_dir.glob("*.png")))
'''


def test_a_callback_from_yaml_by_import_path_runs_with_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "project"
    package.mkdir()
    (package / "my_hooks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(package))
    out = tmp_path / "calls.jsonl"
    config = write_config(
        tmp_path / "x.yaml", tmp_path / "run", [{"class": "my_hooks:Lines", "path": str(out), "every": 2}]
    )
    assert main(["run", str(config), "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    journal = read_journal(tmp_path / "run" / "evaluations.jsonl")
    assert rows[0] == ["start", "toy"]
    assert rows[1:-1] == [
        ["result", i, r["arch"], r["objectives"]["score"]] for i, r in enumerate(journal) if i % 2 == 0
    ]
    # on_run_end comes after the run's files are written: the plots are there
    assert rows[-1] == ["end", EVALUATIONS, ["best_so_far.png", "fitness.png"]]
    # the run directory's config.yaml keeps the callbacks key as written, and loads back
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["callbacks"] == [{"class": "my_hooks:Lines", "path": str(out), "every": 2}]
    assert config_from_dict(saved).callbacks == (
        CallbackSpec("my_hooks:Lines", {"path": str(out), "every": 2}),
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("my_hooks:Nope", "callbacks[0]: 'my_hooks:Nope': module 'my_hooks' has no attribute 'Nope'"),
        ("no_such_module:Lines", "callbacks[0]: 'no_such_module:Lines': no module named 'no_such_module'"),
        (
            "json:JSONDecoder",
            "callbacks[0]: 'json:JSONDecoder' is not a subclass of natsray.callbacks.Callback",
        ),
        ("mlfow", "callbacks[0]: 'mlfow' is not one of mlflow, tensorboard (did you mean 'mlflow'?), nor an"),
        ({"class": "my_hooks:Lines", "pth": "x"}, "callbacks[0].pth: unknown key (did you mean 'path'?)"),
        ({"path": "x"}, "callbacks[0].class: missing required field"),
        ({"class": "my_hooks:Lines"}, "callbacks[0].class: Lines: missing a required argument: 'path'"),
        (3, "callbacks[0]: expected 'package.module:Class' or a mapping with a 'class' key, got int"),
    ],
)
def test_a_bad_callbacks_entry_is_one_line_and_exit_2(
    entry: Any,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "my_hooks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(tmp_path / "x.yaml", tmp_path / "run", [entry])
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{config}: {message}" in err, err


def test_a_logger_without_its_extra_is_one_line_naming_the_pip_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("mlflow", "tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: find_spec gives None
        monkeypatch.delitem(sys.modules, f"natsray.callbacks.{name}", raising=False)
    monkeypatch.chdir(tmp_path)
    for name, library in (("mlflow", "MLflow"), ("tensorboard", "TensorBoard")):
        write_config(tmp_path / "exp.yaml", tmp_path / "run", [name])
        assert main(["validate", "exp.yaml"]) == 2
        assert capsys.readouterr().err == (  # as docs/callbacks.md shows it
            f"natsray: error: exp.yaml: callbacks[0]: {name!r}: the {library} logger needs {library}: "
            f"pip install 'natsray[{name}]'\n"
        )
    data = {"strategy": {"name": "random"}, "evaluator": {"type": "toy"}, "budget": {"evaluations": 5}}
    assert config_from_dict(data).callbacks == ()  # natsray itself needs neither


def test_the_extras_named_in_the_errors_exist_and_ci_installs_them() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["mlflow"][0].startswith("mlflow-skinny")
    assert extras["tensorboard"][0].startswith("tensorboard")
    assert set(extras["mlflow"] + extras["tensorboard"]) <= set(extras["test"])


def test_an_installed_package_registers_a_callback_by_short_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "labhooks.py").write_text(USER_MODULE)
    info = tmp_path / "labhooks-0.1.dist-info"  # as pip leaves an installed distribution
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labhooks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[natsray.callbacks]\nlines = labhooks:Lines\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["components", "callbacks"]) == 0
    listed = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "lines labhooks:Lines labhooks 0.1" in listed
    assert "mlflow natsray.callbacks.mlflow:MLflowLogger built-in" in listed
    out = tmp_path / "calls.jsonl"
    config = write_config(tmp_path / "x.yaml", tmp_path / "run", [{"class": "lines", "path": str(out)}])
    assert main(["run", str(config), "--no-progress"]) == 0
    assert len(out.read_text().splitlines()) == 1 + EVALUATIONS + 1


def test_the_callbacks_key_round_trips_through_config_to_dict() -> None:
    data = {
        "strategy": {"name": "random"},
        "evaluator": {"type": "toy"},
        "budget": {"evaluations": 5},
        "callbacks": ["tensorboard", {"class": "mlflow", "experiment_name": "nas", "flush_every": 10}],
    }
    config = config_from_dict(data)
    assert config_to_dict(config)["callbacks"] == data["callbacks"]
    assert config_from_dict(config_to_dict(config)) == config
    assert "callbacks" not in config_to_dict(config_from_dict({**data, "callbacks": []}))


# --------------------------------------------------------------------------- MLflow


def read_mlflow(uri: str, run_dir: Path) -> tuple[Any, Any]:
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    return client, client.get_run(state["run_id"])


def assert_metrics_equal_journal(client: Any, run_id: str, run_dir: Path) -> None:
    journal = read_journal(run_dir / "evaluations.jsonl")
    for name in ("score", "params"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        assert history == [(i, r["objectives"][name]) for i, r in enumerate(journal)]


def test_the_mlflow_logger_writes_a_run_mlflow_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    relative = "sqlite:///mlflow.db"  # MLflow's default store, in tmp
    callbacks = [
        {
            "class": "mlflow",
            "tracking_uri": relative,
            "experiment_name": "toy",
            "artifact_location": "stored",
            "flush_every": 5,
        }
    ]
    config = write_config(tmp_path / "x.yaml", tmp_path / "run", callbacks)
    assert main(["run", str(config), "--no-progress"]) == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state = json.loads((tmp_path / "run" / "mlflow.json").read_text())
    assert state["tracking_uri"] == uri and state["received"] == EVALUATIONS  # a resume elsewhere finds it
    client, run = read_mlflow(uri, tmp_path / "run")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "toy"
    assert_metrics_equal_journal(client, run.info.run_id, tmp_path / "run")
    params = run.data.params
    assert params["strategy.population"] == "6" and params["evaluator.objective"] == "[score]"
    assert params["budget.evaluations"] == str(EVALUATIONS) and params["engine.in_process"] == "true"
    assert run.data.tags["natsray.run_dir"] == str((tmp_path / "run").resolve())
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"config.yaml", "summary.json", "best_arch.yaml", "best_so_far.png", "fitness.png"}
    assert (tmp_path / "stored" / run.info.run_id / "artifacts" / "best_arch.yaml").is_file()
    summary = json.loads(
        Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))).read_text()
    )
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())


def test_a_killed_run_resumed_gives_one_mlflow_run_equal_to_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the file store: fast to create, in tmp
    uri = (tmp_path / "mlruns").as_uri()
    config = make_config(
        evaluator=ToyConfig(sleep_s=0.02),
        budget=toy_budget(),
        engine=EngineConfig(in_process=True, batch_size=1, max_in_flight=1),
    )
    from dataclasses import replace

    config = replace(config, callbacks=(CallbackSpec("mlflow", {"tracking_uri": uri}),))
    run_dir = tmp_path / "run"
    run_killed(config, run_dir, lines=10)  # SIGKILL: the logger's buffered points die with it
    killed_at = len(read_journal(run_dir / "evaluations.jsonl"))
    run_experiment(config, run_dir, resume=True)
    client, run = read_mlflow(uri, run_dir)
    assert killed_at < EVALUATIONS and run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1  # the resume reopened the same run
    assert_metrics_equal_journal(client, run.info.run_id, run_dir)  # every step once, none lost


# --------------------------------------------------------------------------- TensorBoard


def read_events(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_the_tensorboard_logger_writes_events_tensorboard_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorboard")
    config = write_config(
        tmp_path / "x.yaml",
        tmp_path / "run",
        ["tensorboard"],
        evaluator={"type": "toy", "objective": ["score"]},
    )
    assert main(["run", str(config), "--no-progress"]) == 0
    events = read_events(tmp_path / "run" / "tensorboard")
    journal = read_journal(tmp_path / "run" / "evaluations.jsonl")
    scores = [(e.step, e.value) for e in events.Scalars("score")]
    assert scores == [(i, pytest.approx(r["objectives"]["score"])) for i, r in enumerate(journal)]
    assert len(events.Scalars("params")) == EVALUATIONS  # a report metric of the toy, logged too
    tags = events.Tags()
    assert set(tags["images"]) == {"best_so_far", "fitness"}
    assert {"config/text_summary", "summary.json/text_summary", "best_arch.yaml/text_summary"} <= set(
        tags["tensors"]
    )
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| strategy.population | 6 |" in config_text


# --------------------------------------------------------------------------- a sweep (Ray)


class SweepRecorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_sweep_start(self, out: Path, runs: int) -> None:
        self.calls.append(("sweep_start", runs))

    def on_run_end(self, run_dir: Path, summary: Any) -> None:
        self.calls.append(("run_end", Path(run_dir).name, summary["evaluations"]))

    def on_sweep_end(self, out: Path, outcomes: Any) -> None:
        self.calls.append(("sweep_end", [o.status for o in outcomes]))


@pytest.mark.ray
def test_a_sweep_calls_its_callbacks_on_the_driver_and_tracks_each_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from natsray.study.grid import plan_runs, sweep_from_config
    from natsray.study.sweep import run_sweep

    data = yaml.safe_load(write_config(tmp_path / "x.yaml", tmp_path / "unused", ["tensorboard"]).read_text())
    data["engine"] = {"mode": "simulated"}
    data["ray"] = {"runtime_env": {"env_vars": {"PYTHONPATH": toy_evaluator.TESTS_DIR}}}
    plan = sweep_from_config(data, seeds="0-1")
    assert plan is not None
    out = tmp_path / "sweep"
    runs = plan_runs(plan, out)
    recorder = SweepRecorder()
    with local_ray_session():  # the YAML's tensorboard logger first, then the recorder
        outcome = run_sweep(runs, out, progress=False, callbacks=[recorder])
    assert [o.status for o in outcome.runs] == ["done", "done"]
    assert recorder.calls[0] == ("sweep_start", 2) and recorder.calls[-1] == ("sweep_end", ["done", "done"])
    assert sorted(recorder.calls[1:-1]) == [
        ("run_end", "seed-0", EVALUATIONS),
        ("run_end", "seed-1", EVALUATIONS),
    ]
    for run in runs:  # each run tracked from its journal when the sweep reported it
        journal = read_journal(run.run_dir / "evaluations.jsonl")
        scores = [(e.step, e.value) for e in read_events(run.run_dir / "tensorboard").Scalars("score")]
        assert scores == [(i, pytest.approx(r["objectives"]["score"])) for i, r in enumerate(journal)]
