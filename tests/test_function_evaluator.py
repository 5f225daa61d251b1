"""``evaluator: {type: function}``: a scoring function from a package outside natsray, in-process.

Bad input gets one line: exit 2 at validation (module not found, attribute missing, not callable),
or a FAILED evaluation with a one-line message at run time (raises, non-mapping, missing objective
key, NaN / inf), and the run goes on. The context carries seed, budget (asha_evolution), device,
params, a per-candidate directory and the cell's network. (On Ray actors: test_function_on_ray.py.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from user_package import user_package

from natsray.cli import main
from natsray.config import config_from_dict
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment
from natsray.errors import FailFastConfigError, FailFastError
from natsray.evaluators.function import FunctionConfig, FunctionEvaluator
from natsray.records import Candidate, candidate_seed
from natsray.search_space import Arch

SCORING = """
import math
import os


def convs(arch, context):
    return {"score": float(sum(op.startswith("nor_conv") for op in arch.ops)), "params_m": 0.5}


def look(arch, context):
    path = context.directory / "note.txt"
    path.write_text(arch.to_str())
    return {
        "score": float(context.budget or 0) + (arch.code % 7) / 10,
        "seed": context.seed,
        "budget": context.budget,
        "device_is_cpu": float(context.device == "cpu"),
        "scale": context.params["scale"],
        "in_directory": float(path.is_file() and path.parent.name == str(context.candidate_id)),
    }


def network(arch, context):
    model = context.model
    assert model is context.model  # built once
    out = model(__import__("torch").zeros(2, 3, 8, 8))
    return {"score": float(sum(p.numel() for p in model.parameters())), "outputs": float(out.shape[1])}


def raises(arch, context):
    raise RuntimeError("out of memory\\nsecond line")


def a_list(arch, context):
    return [1.0]


def needs_lr(arch, context):
    lr = context.params["lr"]
    return {"score": lr}


def no_objective(arch, context):
    return {"accuracy": 1.0}


def nan(arch, context):
    return {"score": math.nan}


def inf(arch, context):
    return {"score": 1.0, "loss": -math.inf}


def text(arch, context):
    return {"score": "high"}


def counts(arch, context):
    import numpy as np

    convs = sum(op.startswith("nor_conv") for op in arch.ops)
    return {"score": convs, "n_params": 33660 + convs, "n_ops": np.int64(6), "ratio": 0.5}


NOT_CALLABLE = 3
"""


def line_of(text: str) -> str:
    """``scoring.py:N``: where ``text`` is in the module SCORING."""
    return f"scoring.py:{next(i for i, line in enumerate(SCORING.splitlines(), 1) if text in line)}"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``userpkg.scoring`` in a temp dir on ``sys.path`` (as a user's project directory)."""
    with user_package(tmp_path_factory.mktemp("project"), "userpkg", {"scoring": SCORING}) as root:
        yield root


def experiment(function: str, **evaluator: Any) -> dict[str, Any]:
    """A small config; in-process when the function is cheap (the default here)."""
    section = {"type": "function", "function": function, "cheap": True, **evaluator}
    return {
        "seed": 1,
        "strategy": {"name": "random"},
        "evaluator": section,
        "budget": {"evaluations": 6},
        "engine": {"in_process": section["cheap"]},
        "output": {"progress": False},
    }


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (
            "nopkg.scoring:convs",
            "evaluator.function: 'nopkg.scoring:convs': no module named 'nopkg'; looked for in the installed "
            "packages and PYTHONPATH (no ray.runtime_env.working_dir): set ray.runtime_env.working_dir (or "
            "PYTHONPATH) to the directory holding 'nopkg'",
        ),
        (
            "userpkg.nomodule:convs",
            "evaluator.function: 'userpkg.nomodule:convs': no module named 'userpkg.nomodule' "
            "(package 'userpkg' at {package}/userpkg has: scoring)",
        ),
        (
            "userpkg.scoring:convz",
            "evaluator.function: 'userpkg.scoring:convz': module 'userpkg.scoring' has no attribute 'convz'",
        ),
        (
            "userpkg.scoring:NOT_CALLABLE",
            "evaluator.function: 'userpkg.scoring:NOT_CALLABLE' is an int, not a callable",
        ),
        (
            "userpkg.scoring",
            "evaluator.function: 'userpkg.scoring' is not an import path 'package.module:function'",
        ),
    ],
)
def test_a_bad_function_path_is_one_line_and_exit_2_at_validation(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], function: str, message: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(experiment(function)))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"natsray: error: {path}: {message.format(package=package)}\n"


def test_a_missing_function_key_is_one_line(package: Path, tmp_path: Path, capsys) -> None:
    data = experiment("userpkg.scoring:convs")
    del data["evaluator"]["function"]
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"natsray: error: {path}: evaluator.function: missing: give ")


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("raises", f"RuntimeError: out of memory ({line_of('out of memory')})"),  # where it raised
        ("needs_lr", f"KeyError: 'lr' ({line_of('lr = context')})"),
        (
            "a_list",
            "EvaluatorError: userpkg.scoring:a_list returned list, "
            "expected a mapping of metric name -> number",
        ),
        (
            "no_objective",
            "EvaluatorError: userpkg.scoring:no_objective did not return objective 'score' "
            "(it returned: accuracy)",
        ),
        (
            "nan",
            "EvaluatorError: userpkg.scoring:nan returned objective 'score' = nan, expected a finite number",
        ),
        ("inf", "EvaluatorError: userpkg.scoring:inf returned 'loss' = -inf, expected a finite number"),
        (
            "text",
            "EvaluatorError: userpkg.scoring:text returned objective 'score' = 'high' (str), "
            "expected a number",
        ),
    ],
)
@pytest.mark.parametrize("cheap", [True, False])
def test_a_bad_return_is_a_failed_evaluation_with_one_line(
    package: Path, tmp_path: Path, function: str, error: str, cheap: bool
) -> None:
    config = config_from_dict(experiment(f"userpkg.scoring:{function}", cheap=cheap))
    if not cheap:  # an expensive function runs on actors; here its evaluator is called directly
        evaluator = FunctionEvaluator(FunctionEvaluator.for_run(config.evaluator, tmp_path), None)
        evaluator.setup()
        results = evaluator.evaluate([Candidate(i, Arch.from_code(i * 7), seed=i) for i in range(3)])
        assert [(r.status.value, r.error) for r in results] == [("failed", error)] * 3
        return
    with pytest.raises(FailFastError) as info:  # the same error 3 times: engine.fail_fast stops the run
        run_experiment(config, tmp_path / "run")
    assert info.value.error == error  # a missing objective is bad input (exit 2), the rest a failure (1)
    assert isinstance(info.value, FailFastConfigError) == (function == "no_objective")
    records = read_journal(tmp_path / "run" / "evaluations.jsonl")
    assert len(records) >= 3 and {r["error"] for r in records} == {error}


def test_objectives_are_the_named_keys_and_the_rest_are_metrics(package: Path, tmp_path: Path) -> None:
    config = config_from_dict(experiment("userpkg.scoring:convs"))
    summary = run_experiment(config, tmp_path / "run")
    records = read_journal(tmp_path / "run" / "evaluations.jsonl")
    for record in records:
        convs = float(sum(op.startswith("nor_conv") for op in Arch.from_str(record["arch"]).ops))
        assert record["objectives"] == {"score": convs}
        assert record["metrics"] == {"score": convs, "params_m": 0.5}
    assert summary.best_objectives == {"score": max(r["objectives"]["score"] for r in records)}


def test_the_context_under_asha_evolution(package: Path, tmp_path: Path) -> None:
    """Budgets come from the strategy's rungs; seed, params, device and the per-candidate directory."""
    data = experiment("userpkg.scoring:look", cheap=False, params={"scale": 2.5})
    data["strategy"] = {
        "name": "asha_evolution",
        "population": 6,
        "sample_size": 2,
        "budgets": [1, 3],
        "eta": 2,
    }
    data["budget"] = {"evaluations": 30}
    config = config_from_dict(data)
    evaluator = FunctionEvaluator(FunctionEvaluator.for_run(config.evaluator, tmp_path / "run"), None)
    evaluator.setup()
    from natsray.strategies import strategy_class

    strategy = strategy_class("asha_evolution")(config.strategy, seed=config.seed)
    seen_budgets = set()
    for _ in range(30):  # ask/tell by hand: an expensive function is refused in-process by the engine
        candidate = strategy.ask()
        (result,) = evaluator.evaluate([candidate])
        assert result.error is None, result.error
        metrics = result.metrics
        assert metrics["budget"] == candidate.budget and metrics["seed"] == candidate.seed
        assert candidate.seed == candidate_seed(config.seed, candidate.id)
        assert metrics["scale"] == 2.5 and metrics["device_is_cpu"] == 1.0 and metrics["in_directory"] == 1.0
        note = tmp_path / "run" / "candidates" / str(candidate.id) / "note.txt"
        assert note.read_text() == candidate.arch.to_str()
        seen_budgets.add(candidate.budget)
        strategy.tell(candidate, (result.objectives["score"],))
    assert seen_budgets == {1, 3}  # promoted cells were scored at the higher rung


def test_params_are_read_only_and_budget_defaults_to_the_config(package: Path) -> None:
    seen: list[Any] = []

    def keep(arch: Arch, context: Any) -> dict[str, float]:
        seen.append(context)
        return {"score": 1.0}

    evaluator = FunctionEvaluator(FunctionConfig(function=keep, params={"a": 1}, budget=7), None)
    evaluator.setup()
    (result,) = evaluator.evaluate([Candidate(0, Arch.from_code(3), seed=11)])
    assert result.error is None
    context = seen[0]
    assert (context.budget, context.seed, context.candidate_id, context.device) == (7, 11, 0, "cpu")
    with pytest.raises(TypeError):
        context.params["a"] = 2  # type: ignore[index]


def test_the_context_builds_the_cells_network_lazily(package: Path, tmp_path: Path) -> None:
    pytest.importorskip("xautodl")
    config = FunctionConfig(function="userpkg.scoring:network", C=4, N=1, num_classes=3)
    evaluator = FunctionEvaluator(config, None)
    evaluator.setup()
    arch = Arch.from_str(
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    )
    first, second = evaluator.evaluate([Candidate(0, arch, seed=5), Candidate(1, arch, seed=5)])
    assert first.error is None and first.metrics["outputs"] == 3.0
    assert first.objectives == second.objectives  # same cell: same network size
    from natsray.models import build_model

    expected = sum(p.numel() for p in build_model(arch, C=4, N=1, num_classes=3).parameters())
    assert first.objectives["score"] == float(expected)


def test_cheap_scores_each_cell_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def count(arch: Arch, context: Any) -> dict[str, float]:
        calls.append(arch.code)
        return {"score": float(arch.code)}

    evaluator = FunctionEvaluator(FunctionConfig(function=count, cheap=True), None)
    batch = [Candidate(i, Arch.from_code(code), seed=i) for i, code in enumerate([5, 9, 5, 5, 9])]
    results = evaluator.evaluate(batch)
    assert calls == [5, 9] and [r.objectives["score"] for r in results] == [5.0, 9.0, 5.0, 5.0, 9.0]
    assert FunctionEvaluator.is_cheap(FunctionConfig(function=count, cheap=True))
    assert not FunctionEvaluator.is_cheap(FunctionConfig(function=count))


def test_an_expensive_function_is_refused_in_process_with_one_line(package: Path) -> None:
    data = experiment("userpkg.scoring:convs", cheap=False)
    data["engine"]["in_process"] = True
    with pytest.raises(
        ValueError, match=r"^engine.in_process: needs a cheap evaluator .*function with cheap: true"
    ):
        config_from_dict(data)


def test_cost_metric_sets_the_evaluations_cost(package: Path, tmp_path: Path) -> None:
    config = config_from_dict(experiment("userpkg.scoring:convs", cost_metric="params_m"))
    run_experiment(config, tmp_path / "run")
    assert {r["cost_s"] for r in read_journal(tmp_path / "run" / "evaluations.jsonl")} == {0.5}


def test_from_yaml_in_process_in_the_users_project_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``working_dir: .`` is all it takes: no PYTHONPATH, the driver imports the function from there."""
    (tmp_path / "myproject_scoring.py").write_text(
        "def score(arch, context):\n"
        "    return {'convs': arch.ops.count('nor_conv_3x3'), 'seed': context.seed}\n"
    )
    data = experiment("myproject_scoring:score", objective=["convs"])
    data["ray"] = {"runtime_env": {"working_dir": "."}}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    # not importable from the current directory as such ('' of `python -m pytest`); the import root
    # the run adds is undone afterwards
    monkeypatch.setattr(sys, "path", [path for path in sys.path if path not in ("", ".")])
    try:
        assert main(["run", "x.yaml", "--out", "runs/x"]) == 0
    finally:
        sys.modules.pop("myproject_scoring", None)
    records = read_journal(tmp_path / "runs" / "x" / "evaluations.jsonl")
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    assert all(
        r["objectives"]["convs"] == Arch.from_str(r["arch"]).ops.count("nor_conv_3x3") for r in records
    )
    assert all(r["metrics"]["seed"] == r["seed"] for r in records)


def test_integers_returned_are_recorded_as_integers(package: Path, tmp_path: Path) -> None:
    """``n_params`` returned as an int (Python or numpy) stays one in the journal and the summary, not
    ``33660.0``; an int objective too (its fitness is a float). Every returned key is under ``metrics``,
    the objectives also under ``objectives`` (as the training evaluator records them)."""
    summary = run_experiment(config_from_dict(experiment("userpkg.scoring:counts")), tmp_path / "run")
    for record in read_journal(tmp_path / "run" / "evaluations.jsonl"):
        convs = sum(op.startswith("nor_conv") for op in Arch.from_str(record["arch"]).ops)
        assert record["objectives"] == {"score": convs} and type(record["objectives"]["score"]) is int
        assert record["fitness"] == [float(convs)] and type(record["fitness"][0]) is float
        metrics = record["metrics"]
        assert metrics == {"score": convs, "n_params": 33660 + convs, "n_ops": 6, "ratio": 0.5}
        assert [type(metrics[key]) for key in ("n_params", "n_ops", "ratio")] == [int, int, float]
    best = json.loads((tmp_path / "run" / "summary.json").read_text())["best_metrics"]
    assert type(best["n_params"]) is int and best == summary.best_metrics


def test_a_run_whose_evaluations_all_fail_exits_1_and_names_the_commonest_error(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(With engine.fail_fast off: with it, the third evaluation stops the run, test_fail_fast.py.)"""
    path = tmp_path / "x.yaml"
    data = experiment("userpkg.scoring:a_list")
    data["engine"]["fail_fast"] = 0
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("natsray: 6 of 6 evaluations failed (more than 50%), 6 of them: EvaluatorError: ")
    assert "userpkg.scoring:a_list returned list, expected a mapping" in line
