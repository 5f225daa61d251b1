"""``engine.fail_fast``: a run whose first N evaluations all fail with the same one-line error stops,
checkpointed with nothing lost, and resumes; a success or another error among them ends the watch, so a
candidate's own failure never stops a run. The exit code: 2 for a missing objective (the config names
what the evaluator does not return: class and function alike), 1 for the user's code failing. Without
Ray (the Ray loops: test_runner.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from toy_evaluator import FixedListConfig, ToyConfig, make_config, trajectory

from natsray.cli import main
from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment
from natsray.errors import FailFastConfigError, FailFastError
from natsray.records import Objective

BOOM = "RuntimeError: lr not set"

ENGINES = {
    "in_process": EngineConfig(in_process=True, batch_size=2),
    "ordered": EngineConfig(in_process=True, mode="ordered", batch_size=2),
    "serial": EngineConfig(mode="simulated", simulated_workers=1),
    "sim3": EngineConfig(mode="simulated", simulated_workers=3),
}


def run_state(run_dir: Path) -> tuple[list[dict], dict]:
    return read_journal(run_dir / "evaluations.jsonl"), json.loads((run_dir / "checkpoint.json").read_text())


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_systematic_failure_stops_the_run_checkpointed_and_it_resumes_once_fixed(
    tmp_path: Path, engine: str
) -> None:
    fixed = tmp_path / "fixed"
    config = make_config(
        evaluator=ToyConfig(fail="lr not set", fail_until=str(fixed)),
        engine=ENGINES[engine],
        budget=BudgetConfig(evaluations=30),
    )
    with pytest.raises(FailFastError) as info:
        run_experiment(config, tmp_path / "run")
    assert not isinstance(info.value, FailFastConfigError)
    message = str(info.value)
    assert message.startswith(f"the first 3 evaluations all failed with {BOOM} (toy_evaluator.py:")
    assert f"continue with 'natsray resume {tmp_path / 'run'}'" in message and "\n" not in message
    records, checkpoint = run_state(tmp_path / "run")
    # the third failure stopped it; what was in flight then (simulated workers, the batch) is journaled
    assert 3 <= len(records) <= 5 and {r["status"] for r in records} == {"failed"}
    assert len({r["error"] for r in records}) == 1
    assert checkpoint["journal_lines"] == len(records) and not checkpoint["finished"]
    assert checkpoint["engine"]["stop_reason"] == "fail-fast: the first 3 evaluations failed alike"
    fixed.touch()  # the user's fix: the run continues where it stopped, its failures kept
    summary = run_experiment(config, tmp_path / "run", resume=True)
    assert (summary.evaluations, summary.failed) == (30, len(records))
    assert summary.stop_reason == "budget: evaluations"
    assert len(trajectory(tmp_path / "run")) == 30  # every id once: nothing lost, nothing twice


def test_a_success_or_another_error_among_the_first_evaluations_ends_the_watch(tmp_path: Path) -> None:
    """Cells of even code fail: the second proposal's success ends the watch, and the run goes on
    whatever fails after it (a candidate's own failure never costs another its evaluation)."""
    codes = (2, 3, 4, 6, 8, 10, 12, 14, 16)
    config = make_config(
        strategy=FixedListConfig(codes=codes),
        evaluator=ToyConfig(fail="odd cell", fail_every=2),
        engine=EngineConfig(in_process=True, batch_size=1),
        budget=BudgetConfig(evaluations=len(codes)),
    )
    summary = run_experiment(config, tmp_path / "one")
    assert (summary.evaluations, summary.failed) == (9, 8)
    # two errors among the first three (odd cells lack the objective): no one systematic failure either
    config = make_config(
        strategy=FixedListConfig(codes=(2, 3, 4, 6, 8)),
        evaluator=ToyConfig(fail="odd cell", fail_every=2),
        objectives=(Objective.parse("accuracy"),),
        engine=EngineConfig(in_process=True, batch_size=1),
        budget=BudgetConfig(evaluations=5),
    )
    summary = run_experiment(config, tmp_path / "two")
    assert (summary.evaluations, summary.failed) == (5, 5)


def test_fail_fast_counts_are_configurable_and_0_is_off(tmp_path: Path) -> None:
    failing = ToyConfig(fail="lr not set")
    one = make_config(evaluator=failing, engine=EngineConfig(in_process=True, batch_size=1, fail_fast=1))
    with pytest.raises(FailFastError, match=r"^the first 1 evaluations all failed with "):
        run_experiment(one, tmp_path / "one")
    assert len(read_journal(tmp_path / "one" / "evaluations.jsonl")) == 1
    off = make_config(
        evaluator=failing,
        engine=EngineConfig(in_process=True, fail_fast=0),
        budget=BudgetConfig(evaluations=12),
    )
    summary = run_experiment(off, tmp_path / "off")
    assert (summary.evaluations, summary.failed) == (12, 12)
    with pytest.raises(ValueError, match=r"^fail_fast: must be >= 0 \(0: off\), got -1$"):
        EngineConfig(fail_fast=-1)


def test_a_missing_objective_is_a_config_error_at_the_third_evaluation_not_a_crash(tmp_path: Path) -> None:
    """A class evaluator's misnamed objective fails its evaluations (journaled, not lost) and stops the
    run as bad input: an EvaluatorError naming evaluator.objective (no more ValueError at the first)."""
    config = make_config(
        objectives=(Objective.parse("accuracy"),), engine=EngineConfig(in_process=True, batch_size=1)
    )
    with pytest.raises(FailFastConfigError) as info:
        run_experiment(config, tmp_path / "run")
    assert str(info.value).startswith(
        "evaluator.objective: the first 3 evaluations all failed with: toy_evaluator:ToyEvaluator did "
        "not return objective 'accuracy' (it returned: score, params); the run stopped (engine.fail_fast: 3"
    )
    records, checkpoint = run_state(tmp_path / "run")
    assert len(records) == checkpoint["journal_lines"] == 3


def write_config(path: Path, evaluator: dict, objective: str = "score") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "strategy": {"name": "random"},
                "evaluator": {"type": "toy", "objective": [objective], **evaluator},
                "budget": {"evaluations": 40},
                "engine": {"in_process": True, "batch_size": 1},
                "output": {"progress": False},
            }
        )
    )
    return path


def test_the_command_line_exits_2_for_a_misnamed_objective_and_1_for_failing_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "objective.yaml", {}, objective="accuracy")
    assert main(["run", str(config), "--out", str(tmp_path / "objective")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "natsray: error: evaluator.objective: the first 3 evaluations all failed with: "
        "toy_evaluator:ToyEvaluator did not return objective 'accuracy' (it returned: score, params)"
    )
    assert line.endswith(f"continue with 'natsray resume {tmp_path / 'objective'}'")
    config = write_config(tmp_path / "code.yaml", {"fail": "lr not set"})
    assert main(["run", str(config), "--out", str(tmp_path / "code")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"natsray: failed: the first 3 evaluations all failed with {BOOM} (toy_evaluator.py:"
    )
    assert "NATSRAY_DEBUG" not in line and len(read_journal(tmp_path / "code" / "evaluations.jsonl")) == 3


def test_a_run_scoring_with_a_python_function_is_told_to_continue_from_python(tmp_path: Path) -> None:
    """The shell refuses such a run (its config.yaml cannot name the function): the line names the Python
    call instead, which continues it once the function returns the objective."""
    import natsray

    config = {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"objective": ["acuracy"], "cheap": True},
        "budget": {"evaluations": 10},
        "engine": {"in_process": True, "batch_size": 1},
        "output": {"progress": False, "plots": False},
    }
    run_dir = tmp_path / "ffpy"
    with pytest.raises(FailFastConfigError) as info:
        natsray.run(config, evaluator=lambda arch, context: {"accuracy": 1.0}, out=run_dir, progress=False)
    resume = f"natsray.load_run({str(run_dir)!r}).resume(evaluator=...)"
    assert str(info.value).endswith(
        f"fix evaluator.objective and start again with overwrite=True, or make the evaluator return it and "
        f"continue with {resume}"
    )
    run = natsray.load_run(run_dir).resume(evaluator=lambda arch, context: {"acuracy": 1.0}, progress=False)
    assert (run.summary["evaluations"], run.summary["failed"]) == (10, 3)


def test_failures_that_differ_only_in_the_cell_they_name_are_one_failure(tmp_path: Path) -> None:
    """A user's report: every evaluation failed naming its own cell (an arch string, a NATS index), so
    the first three errors never read alike and the run spent its whole budget failing. The watch
    compares them with the cell masked; another message still ends it."""
    import natsray
    from natsray.records import failure_kind

    def profile(arch, context):
        raise RuntimeError(f"no latency profile for {arch} (NATS index {arch.code})")

    config = {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"objective": ["latency"], "cheap": True},
        "budget": {"evaluations": 20},
        "engine": {"in_process": True, "batch_size": 1},
        "output": {"progress": False, "plots": False},
    }
    with pytest.raises(FailFastError) as info:
        natsray.run(config, evaluator=profile, out=tmp_path / "run", progress=False)
    assert not isinstance(info.value, FailFastConfigError)
    first = "the first 3 evaluations all failed with RuntimeError: no latency profile for |"
    assert str(info.value).startswith(first)
    records = read_journal(tmp_path / "run" / "evaluations.jsonl")
    assert len(records) == 3 and len({r["error"] for r in records}) == 3
    assert failure_kind("x for |none~0|+|none~0|none~1|+|none~0|none~1|none~2| (NATS index 7)") == (
        "x for <cell> (<cell>)"
    )
    assert failure_kind("KeyError: 'lr' (score.py:30)") == "KeyError: 'lr' (score.py:30)"
