"""Config loading: the generic dataclass parser, overrides, round trips and the shipped configs."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from natsray.config import (
    PATH_FIELDS,
    BudgetConfig,
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    check_paths,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_dataclass,
    resolve_paths,
)
from natsray.evaluators import EVALUATOR_TYPES, evaluator_class
from natsray.records import Objective
from natsray.strategies import STRATEGIES, strategy_class

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SHIPPED = {
    "train-digits-topk",
    "asha-digits",
    "quickstart",
    "rea-cifar10",
    "rea-cifar100",
    "rea-imagenet16",
    "random-cifar10",
    "ga-cifar10",
    "local-search-cifar10",
    "predictor-evolution-cifar10",
    "nsga2-latency",
    "nsga2-latency-table",
    "nsga2-screen-table",
    "proxy-search",
    "train-cifar10-gpu",
}


@dataclass(frozen=True)
class Inner:
    depth: int = 1
    rate: float = 0.5


@dataclass(frozen=True)
class Section:
    name: str
    dataset: Literal["cifar10", "cifar100", "ImageNet16-120"] = "cifar10"
    hp: Literal["12", "200"] = "12"
    size: int | None = None
    flag: bool = False
    report: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    population: int = 10

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"population: must be >= 2, got {self.population}")
        if self.size is not None and self.size > self.population:
            raise ValueError("size may not exceed population")


def parse_error(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_dataclass(Section, data, "strategy")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_parser_converts_by_type_hint() -> None:
    parsed = parse_dataclass(
        Section,
        {
            "name": "x",
            "hp": 200,
            "size": 3.0,
            "flag": True,
            "report": "test_accuracy@200",
            "extra": {"a": [1]},
            "inner": {"rate": 2},
            "population": "1e2",
        },
        "strategy",
    )
    assert parsed == Section(
        name="x",
        hp="200",
        size=3,
        flag=True,
        report=("test_accuracy@200",),
        extra={"a": [1]},
        inner=Inner(depth=1, rate=2.0),
        population=100,
    )
    assert isinstance(parsed.inner.rate, float)
    assert parse_dataclass(Section, {"name": "x", "report": ["a", "b"]}).report == ("a", "b")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "x", "populaton": 5}, "strategy.populaton: unknown key (did you mean 'population'?)"),
        ({"name": "x", "zzz": 5}, "strategy.zzz: unknown key (expected one of name, dataset, hp, size,"),
        (
            {"name": "x", "dataset": "cifar-10"},
            "strategy.dataset: 'cifar-10' is not one of cifar10, cifar100,",
        ),
        ({"dataset": "cifar10"}, "strategy.name: missing required field"),
        ({"name": "x", "population": "fifty"}, "strategy.population: expected an integer, got 'fifty'"),
        ({"name": "x", "population": 2.5}, "strategy.population: expected an integer, got 2.5"),
        ({"name": "x", "population": True}, "strategy.population: expected an integer, got True"),
        ({"name": "x", "flag": "yes please"}, "strategy.flag: expected true or false, got 'yes please'"),
        ({"name": ["x"]}, "strategy.name: expected a string, got a list"),
        ({"name": "x", "size": "big"}, "strategy.size: expected an integer, got 'big'"),
        ({"name": "x", "report": [1.5]}, "strategy.report[0]: expected a string, got 1.5"),
        ({"name": "x", "extra": [1]}, "strategy.extra: expected a mapping, got a list"),
        ({"name": "x", "inner": {"depht": 2}}, "strategy.inner.depht: unknown key (did you mean 'depth'?)"),
        ({"name": "x", "inner": {"rate": "fast"}}, "strategy.inner.rate: expected a number, got 'fast'"),
        ({"name": "x", "population": 1}, "strategy.population: must be >= 2, got 1"),
        ({"name": "x", "size": 20}, "strategy: size may not exceed population"),
        (["name"], "strategy: expected a mapping of name, dataset,"),
    ],
)
def test_parser_errors_are_one_line_with_the_yaml_path(data: Any, expected: str) -> None:
    assert parse_error(data).startswith(expected)


def test_union_accepts_none_and_rejects_other_types() -> None:
    assert parse_dataclass(BudgetConfig, {"evaluations": None, "wall_seconds": 60}) == BudgetConfig(
        wall_seconds=60.0
    )
    with pytest.raises(ConfigError, match=r"^budget: give at least one of evaluations"):
        parse_dataclass(BudgetConfig, {}, "budget")
    with pytest.raises(ConfigError, match=r"^budget.wall_seconds: must be > 0, got -1.0$"):
        parse_dataclass(BudgetConfig, {"wall_seconds": -1}, "budget")


def test_overrides_parse_yaml_values_and_create_sections() -> None:
    raw = {"strategy": {"name": "random", "population": 10}}
    result = apply_overrides(
        raw,
        [
            "strategy.population=50",
            "evaluator.report=[test_accuracy@200, params]",
            "ray.address=null",
            "seed=7",
        ],
    )
    assert result == {
        "strategy": {"name": "random", "population": 50},
        "evaluator": {"report": ["test_accuracy@200", "params"]},
        "ray": {"address": None},
        "seed": 7,
    }
    assert raw == {"strategy": {"name": "random", "population": 10}}  # the input is not modified


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("strategy.population", "--set 'strategy.population': expected KEY.PATH=VALUE"),
        ("strategy..population=3", "--set 'strategy..population=3': expected KEY.PATH=VALUE"),
        ("=3", "--set '=3': expected KEY.PATH=VALUE"),
        ("seed.value=3", "--set 'seed.value=3': seed is 0, not a section"),
        ("seed=[1", "--set 'seed=[1': the value '[1' is not valid YAML"),
    ],
)
def test_bad_overrides(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 0}, [override])
    assert str(info.value).startswith(expected)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file$"):
        load_config(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy:\n  name: random\n bad indent: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+, column \d+: "):
        load_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml: expected a mapping with strategy, evaluator and budget"
    ):
        load_config(bad)
    bad.write_text("")
    with pytest.raises(ConfigError, match=r"bad.yaml: expected a mapping .* got null"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"is a directory"):
        load_config(tmp_path)


def experiment(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seed": 1,
        "strategy": {"name": "regularized_evolution", "population": 8, "sample_size": 2},
        "evaluator": {"type": "benchmark", "archive": "nats", "hp": 12, "objective": "valid_accuracy"},
        "budget": {"simulated_seconds": 20000},
        "engine": {"mode": "simulated"},
    }
    data.update(changes)
    return data


def test_experiment_sections_are_parsed_into_the_selected_classes() -> None:
    config = config_from_dict(experiment(), source="x.yaml")
    assert isinstance(config.strategy, strategy_class("regularized_evolution").Config)
    assert isinstance(config.evaluator, evaluator_class("benchmark").Config)
    assert (config.strategy.population, config.strategy.sample_size) == (8, 2)
    assert config.evaluator.hp == "12" and config.evaluator.objective == ("valid_accuracy",)
    assert config.objectives == (Objective("valid_accuracy", True),)
    assert config.budget == BudgetConfig(simulated_seconds=20000.0)
    assert config.seed == 1 and config.engine.mode == "simulated"
    assert config.resources == ExperimentConfig.__dataclass_fields__["resources"].default_factory()


METRIC_NAMES = ("valid_accuracy", "valid_loss", "test_accuracy", "test_loss", "params")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"strategy": {"name": "regularized_evolution", "populaton_size": 5}},
            "x.yaml: strategy.populaton_size: unknown key (did you mean 'population'?)",
        ),
        (
            {"strategy": {"name": "annealing"}},
            "x.yaml: strategy.name: 'annealing' is not one of regularized_",
        ),
        (
            {"strategy": {"population": 3}},
            "x.yaml: strategy.name: missing required field (one of regula",
        ),
        ({"strategy": "random"}, "x.yaml: strategy: expected a mapping with a 'name' key, got 'random'"),
        (
            {"evaluator": {"type": "benchmark", "archive": "a", "dataset": "cifar-10"}},
            "x.yaml: evaluator.dataset: 'cifar-10' is not one of cifar10, cifar100, ImageNet16-120",
        ),
        ({"evaluator": {"type": "benchmark"}}, "x.yaml: evaluator.archive: missing required field"),
        (
            {"evaluator": {"type": "benchmark", "archive": "a", "objective": ["valid_accuracy", "params"]}},
            "x.yaml: evaluator.objective: strategy 'regularized_evolution' optimises at most 1 objective(s), "
            "got 2",
        ),
        (
            {
                "strategy": {"name": "nsga2"},
                "evaluator": {"type": "table", "table": "t.npz", "objective": [*METRIC_NAMES]},
            },
            "x.yaml: evaluator.objective: strategy 'nsga2' optimises at most 4 objective(s), got 5 "
            "(valid_accuracy:max, valid_loss:min, test_accuracy:max, test_loss:min, params:min); drop 1",
        ),
        (
            {"evaluator": {"type": "cost", "objective": ["params"]}},
            "x.yaml: engine.mode: 'simulated' needs a cheap evaluator "
            "(benchmark, table, or function with cheap: true), not 'cost'",
        ),
        ({"objectives": ["params"]}, "x.yaml: objectives: not a config key: objectives are set by evaluator"),
    ],
)
def test_experiment_errors(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(experiment(**changes), source="x.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_every_shipped_experiment_is_there_and_parses() -> None:
    assert {path.stem for path in CONFIGS} == SHIPPED
    for path in CONFIGS:
        config = load_config(path)
        assert config.output.dir == f"runs/{path.stem}", path
        assert config.objectives, path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_round_trip_through_dict_and_yaml(path: Path, tmp_path: Path) -> None:
    config = load_config(path, ["seed=5"])
    data = config_to_dict(config)
    assert list(data) == [
        "seed",
        "search_space",
        "strategy",
        "evaluator",
        "budget",
        "resources",
        "engine",
        "ray",
        "output",
    ]
    assert config_from_dict(data) == config
    dump_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == data


def test_nats_protocol_configs() -> None:
    budgets = {"rea-cifar10": 20000, "rea-cifar100": 40000, "rea-imagenet16": 120000, "random-cifar10": 20000}
    datasets = {"rea-cifar10": "cifar10", "rea-cifar100": "cifar100", "rea-imagenet16": "ImageNet16-120"}
    for name, budget in budgets.items():
        config = load_config(ROOT / "configs" / f"{name}.yaml")
        assert config.budget == BudgetConfig(simulated_seconds=float(budget)), name
        assert (config.engine.mode, config.engine.simulated_workers) == ("simulated", 1), name
        assert (config.evaluator.type, config.evaluator.hp) == ("benchmark", "12"), name
        assert config.evaluator.dataset == datasets.get(name, "cifar10"), name
        assert config.objectives == (Objective("valid_accuracy"),), name
        assert config.evaluator.report == ("test_accuracy@200",), name
    rea = load_config(ROOT / "configs" / "rea-cifar10.yaml").strategy
    assert (rea.population, rea.sample_size, rea.mutation) == (10, 3, "node")


def test_shipped_placeholders_fail_path_validation_with_a_hint() -> None:
    for path in CONFIGS:
        config = load_config(path)
        fields = [name for name in PATH_FIELDS if getattr(config.evaluator, name, None) is not None]
        if not fields:
            check_paths(config)  # quickstart, proxy-search: nothing to download
            continue
        with pytest.raises(
            ConfigError, match=rf"^{re.escape(str(path))}: evaluator\.{fields[0]}: .*: no such file"
        ):
            check_paths(config, str(path))


def test_overrides_through_load_config(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment()))
    config = load_config(
        path,
        ["strategy.population=50", "evaluator.report=[test_accuracy@200, params]", "ray.address=auto"],
    )
    assert config.strategy.population == 50
    assert config.evaluator.report == ("test_accuracy@200", "params")
    assert config.ray.address == "auto"
    with pytest.raises(
        ConfigError, match=r"exp.yaml: strategy.populaton: unknown key \(did you mean 'population'"
    ):
        load_config(path, ["strategy.populaton=5"])


def test_resolve_paths_makes_evaluator_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nats").mkdir()
    config = config_from_dict(experiment())
    check_paths(config)
    resolved = resolve_paths(config)
    assert resolved.evaluator.archive == str(tmp_path / "nats")
    assert dataclasses.replace(resolved, evaluator=config.evaluator) == config


def _documented_keys(text: str) -> set[str]:
    return set(re.findall(r"^\| `([A-Za-z_]+)` \|", text, flags=re.MULTILINE))


def test_every_config_key_is_documented() -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    documented = _documented_keys(text)
    classes = [
        ExperimentConfig,
        *(f.default_factory for f in dataclasses.fields(ExperimentConfig) if callable(f.default_factory)),
    ]
    classes += [BudgetConfig]
    # only the built-in components (test modules register toys in the same registries)
    classes += [strategy_class(n).Config for n, path in STRATEGIES.items() if path.startswith("natsray.")]
    classes += [
        evaluator_class(n).Config for n, path in EVALUATOR_TYPES.items() if path.startswith("natsray.")
    ]
    missing = {
        f"{cls.__name__}.{f.name}"
        for cls in classes
        for f in dataclasses.fields(cls)
        if f.init and f.name not in documented and f.name not in ("name", "type", "objectives")
    }
    assert not missing, f"undocumented in docs/config.md: {sorted(missing)}"


def test_an_unknown_key_of_a_section_without_options_says_so() -> None:
    data = {
        "strategy": {"name": "random", "populaton": 4},
        "evaluator": {"type": "proxy"},
        "budget": {"evaluations": 4},
    }
    with pytest.raises(
        ConfigError, match=r"^strategy.populaton: unknown key \(this section takes no other keys\)$"
    ):
        config_from_dict(data)


def test_an_objective_given_twice_is_refused() -> None:
    data = {
        "strategy": {"name": "nsga2"},
        "evaluator": {"type": "proxy", "objective": ["synflow", "synflow"]},
        "budget": {"evaluations": 4},
    }
    with pytest.raises(ConfigError, match=r"^evaluator.objective: 'synflow' given more than once$"):
        config_from_dict(data)


def test_plain_data_is_what_yaml_and_json_write() -> None:
    """One conversion for the config file and the trackers' flat parameters: dataclasses (their init
    fields), mappings (str keys), tuples (lists) and objects that know their YAML form."""
    import dataclasses as dc
    import json

    from natsray.plain_data import plain_data

    @dc.dataclass(frozen=True)
    class Inner:
        budgets: tuple[int, ...] = (12, 200)
        derived: int = dc.field(default=0, init=False)

    class Spec:
        def to_yaml(self) -> dict[str, object]:
            return {"name": "tensorboard", "params": (1, 2)}

    value = {"inner": Inner(), 3: [Spec(), None]}
    plain = plain_data(value)
    assert plain == {"inner": {"budgets": [12, 200]}, "3": [{"name": "tensorboard", "params": [1, 2]}, None]}
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain and json.loads(json.dumps(plain)) == plain
