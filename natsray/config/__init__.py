"""The experiment config: YAML in, a tree of frozen dataclasses out (:mod:`.schema`), checked by
:mod:`.typed_yaml`. It sits below the engine: the engine, the experiment layer, studies and the front
doors all read it; it reads only records and, lazily, the component registries."""

from __future__ import annotations

from natsray.config.schema import (
    PATH_FIELDS,
    BudgetConfig,
    ConfigError,
    EngineConfig,
    ExperimentConfig,
    OutputConfig,
    RayConfig,
    ResourcesConfig,
    SearchSpaceConfig,
    apply_overrides,
    check_engine,
    check_gpu_options,
    check_paths,
    config_data,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_dataclass,
    read_yaml,
    resolve_data_paths,
    resolve_paths,
)

__all__ = [
    "PATH_FIELDS",
    "BudgetConfig",
    "ConfigError",
    "EngineConfig",
    "ExperimentConfig",
    "OutputConfig",
    "RayConfig",
    "ResourcesConfig",
    "SearchSpaceConfig",
    "apply_overrides",
    "check_engine",
    "check_gpu_options",
    "check_paths",
    "config_data",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "parse_dataclass",
    "read_yaml",
    "resolve_data_paths",
    "resolve_paths",
]
