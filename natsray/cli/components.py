"""``natsray components``: the evaluator types, strategies, callbacks and datasets a config may name,
built-ins and plugins (entry points), with the name a shadowed plugin is still reached by."""

from __future__ import annotations

import argparse

__all__ = ["cmd_components"]


def cmd_components(args: argparse.Namespace) -> int:
    """``natsray components``: each registry's names, import targets and origins (built-in or plugin)."""
    from natsray.callbacks import REGISTRY as callbacks
    from natsray.evaluators import REGISTRY as evaluators
    from natsray.registry import DATASET_REGISTRY as datasets
    from natsray.strategies import REGISTRY as strategies

    kinds = {"evaluators": evaluators, "strategies": strategies, "callbacks": callbacks, "datasets": datasets}
    chosen = [args.kind] if args.kind else list(kinds)
    for kind in chosen:
        registry = kinds[kind]
        components = registry.components()
        print(f"{kind} ({registry.field}):")
        width = max(len(c.name) for c in components)
        target_width = max(len(c.target) for c in components)
        for component in components:
            line = f"  {component.name:<{width}}  {component.target:<{target_width}}  {component.origin}"
            if component.shadowed_by:
                line += f" (not used by this name: {component.shadowed_by}; give {component.target})"
            print(line.rstrip())
    print(
        "any 'package.module:Class' ('package.module:function' for a dataset) import path works too "
        "(docs/extending.md)"
    )
    return 0
