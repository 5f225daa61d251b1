"""Names of compared groups of runs that say what differs between them: ``strategy=rea, dataset=cifar10``.

Used by ``natsray report`` of several runs (groups: runs of one config but seed, named from the settings
in which their configs differ) and of a sweep (groups: grid points, named from their axis labels). A
group's name lists ``key=value`` for each key whose value is not the same in every group and is not
already implied by the keys named before it: a strategy's parameters by its name, a dataset's budget by
the dataset, and nothing else (groups that differ in strategy and budget name both); a key is
shortened to its shortest dotted suffix that stays unique (``strategy.population``
-> ``population``; ``strategy.name`` -> ``strategy``, ``evaluator.type`` -> ``evaluator``). Names are
made for showing only: directories and sweep plans keep their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["config_settings", "group_names"]

_ABSENT = object()
_NAMING_FIELDS = ("name", "type")
"""Fields that name a section's component: ``strategy.name=x`` is shown as ``strategy=x``, and is
considered before the section's other fields (which it usually implies)."""


def config_settings(
    config: Mapping[str, Any] | None, skip: Sequence[str] = ("seed", "output")
) -> dict[str, str]:
    """A config as ``{dotted key: value text}`` (:func:`natsray.callbacks.tracker.flatten_config`, as the
    trackers log it), the top-level sections ``skip`` left out."""
    from natsray.callbacks.tracker import flatten_config

    flat = flatten_config(config or {})
    return {key: value for key, value in flat.items() if key.split(".")[0] not in skip}


def group_names(settings: Sequence[Mapping[str, str]], fallback: Sequence[str]) -> list[str]:
    """One name per group from its settings (``{key: value}``, keys in the order to show them).

    Args:
        settings: Per group, its settings (a sweep point's ``axis: label``; a config's
            :func:`config_settings`).
        fallback: Per group, the name to use when nothing tells it apart (one group; equal settings).

    Returns:
        The names, unique (a repeated one gets `` #2``, `` #3``...).
    """
    order = {key: i for i, key in enumerate(dict.fromkeys(key for group in settings for key in group))}
    # a component's name/type first: it usually implies its section's other fields
    keys = sorted(order, key=lambda key: (not _naming(key), order[key]))
    kept: list[str] = []
    for key in keys:
        values = [group.get(key, _ABSENT) for group in settings]
        if len({id(v) if v is _ABSENT else v for v in values}) < 2:
            continue  # the same everywhere
        seen: dict[tuple[Any, ...], Any] = {}
        implying = [k for k in kept if _may_imply(k, key)]
        implied = bool(implying)
        for group, value in zip(settings, values, strict=True):
            known = tuple(group.get(k, _ABSENT) for k in implying)
            if seen.setdefault(known, value) != value:
                implied = False
                break
        if not implied:
            kept.append(key)
    kept.sort(key=order.__getitem__)
    short = _short_keys(kept)
    names = []
    for group, default in zip(settings, fallback, strict=True):
        parts = [f"{short[key]}={group[key]}" for key in kept if key in group]
        names.append(", ".join(parts) or default)
    unique: list[str] = []
    for name in names:
        candidate, suffix = name, 2
        while candidate in unique:
            candidate, suffix = f"{name} #{suffix}", suffix + 1
        unique.append(candidate)
    return unique


def _may_imply(named: str, key: str) -> bool:
    """Whether ``named`` (a key already in the names) can stand for ``key``: a component's name or type for
    its own section's other fields (``strategy.name`` for ``strategy.population``), the dataset for the
    budget. Any other pair is named both ways: two groups that differ in strategy and budget say both."""
    section = key.split(".")[0]
    return (_naming(named) and named.split(".")[0] == section) or (
        named.endswith(".dataset") and section == "budget"
    )


def _naming(key: str) -> bool:
    return "." in key and key.rpartition(".")[2] in _NAMING_FIELDS


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key's shortest dotted suffix that no other key shares (``x.name`` / ``x.type`` as ``x``)."""

    def shown(key: str) -> list[str]:
        parts = key.split(".")
        if len(parts) > 1 and parts[-1] in _NAMING_FIELDS:
            parts = parts[:-1]
        return parts

    split = {key: shown(key) for key in keys}
    short = {}
    for key, parts in split.items():
        for length in range(1, len(parts) + 1):
            suffix = parts[-length:]
            if all(other == key or split[other][-length:] != suffix for other in keys):
                short[key] = ".".join(suffix)
                break
        else:
            short[key] = key
    return short
