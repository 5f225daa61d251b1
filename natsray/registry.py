"""Components chosen by name in YAML, imported only when chosen (a table run never imports torch).

Three ways to name a component (a strategy or an evaluator class):

* a short name of a built-in (``"regularized_evolution"``);
* a short name that an installed package registers under an entry-point group
  (``natsray.strategies`` / ``natsray.evaluators``, read with :mod:`importlib.metadata`, the
  convention of pytest and flake8 plugins); a built-in wins a clash, and two packages claiming one
  name are refused (:class:`ComponentRegistry`);
* an import path ``"package.module:attribute"`` (:func:`import_object`), the convention of entry
  points, Ray's ``runtime_env`` and uvicorn.

:func:`prepend_import_roots` puts the local directories a Ray ``runtime_env`` ships to the actors
(``working_dir``, ``py_modules``) on the driver's ``sys.path``, so the driver imports user code
from where the actors get it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DATASET_REGISTRY",
    "DATASET_TARGETS",
    "Component",
    "ComponentError",
    "ComponentRegistry",
    "ImportPathError",
    "ShadowedPluginWarning",
    "import_object",
    "is_dataset_plugin",
    "is_import_path",
    "prepend_import_roots",
]


class ImportPathError(ImportError):
    """An import path that cannot be resolved; the message is one line naming the path and why."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the ``"package.module:attribute"`` form."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr)


def _package_has(package: str, paths: Iterable[str], child: str) -> str:
    """``package 'p' at DIR has: a, b, ...; did you mean 'p.b'?``: the public modules and subpackages
    of a package, found on its ``paths`` without importing them, and the one closest to ``child``."""
    import pkgutil

    paths = list(paths)
    names = sorted({info.name for info in pkgutil.iter_modules(paths) if not info.name.startswith("_")})
    listed = ", ".join(names[:_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > _LISTED else "")
    close = difflib.get_close_matches(child, names, n=1)
    mean = f"; did you mean {package + '.' + close[0]!r}?" if close else ""
    return f"package {package!r} at {paths[0] if paths else '?'} " + (
        f"has: {listed}{mean}" if names else "has no modules"
    )


_LISTED = 12
"""Most modules a missing-module hint names."""


def _missing_hint(missing: str, wanted: str) -> str:
    """What is true and useful to say about a module ``missing`` that did not import (``wanted``:
    the module asked for, ``missing`` or one inside it).

    * its parent package imports: which modules that package does have (and the closest one);
    * its top-level package lies in the current directory, which is not on ``sys.path``: how to put
      it there (and, when ``wanted`` is not in it, what the package there does have).
    """
    parent_name, _, child = missing.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None and hasattr(parent, "__path__"):
        return f" ({_package_has(parent_name, parent.__path__, child)})"
    here = Path.cwd()
    if parent_name or _on_path(here):
        return ""
    add = (
        "which is not on the import path: add 'ray: {runtime_env: {working_dir: .}}' to the config "
        "(the driver and the Ray actors then import it from there)"
    )
    parts = wanted.split(".")
    found = 0  # how many leading parts of ``wanted`` are packages (or, the last, a module) in here
    while found < len(parts) and _module_path(here, parts[: found + 1]) is not None:
        found += 1
    if found == len(parts):
        return f"; it is in the current directory ({here}), {add}"
    if found == 0:
        return ""
    package = ".".join(parts[:found])
    inside = _package_has(package, [str(here.joinpath(*parts[:found]))], parts[found])
    return f"; {parts[0]!r} is in the current directory ({here}), {add}; it has no {wanted!r} ({inside})"


def _on_path(directory: Path) -> bool:
    """Whether ``directory`` is on ``sys.path`` (``""`` and ``"."`` stand for the current directory)."""
    target = directory.resolve()
    return any(Path(entry or ".").resolve() == target for entry in sys.path if isinstance(entry, str))


def _module_path(root: Path, parts: Sequence[str]) -> Path | None:
    """The module file or package directory ``root/a/b(.py)`` of the dotted name ``parts``, if present."""
    path = root.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path if (path / "__init__.py").is_file() else None


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"`` (``attribute`` may be dotted: ``Outer.Inner``).

    Raises:
        ImportPathError: one line: the path is malformed, its module is not found (naming the missing
            module, which may be one the user's module imports), importing it raised (naming the
            exception), or the attribute is missing.
    """
    if not is_import_path(spec):
        raise ImportPathError(f"{spec!r} is not an import path of the form 'package.module:attribute'")
    module_name, _, attr_path = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        own = missing == module_name or module_name.startswith(missing + ".")
        where = "" if own else f" (imported by {module_name!r})"
        hint = _missing_hint(missing, module_name if own else missing)
        raise ImportPathError(f"{spec!r}: no module named {missing!r}{where}{hint}") from None
    except Exception as exc:  # the user's module raised while importing
        raise ImportPathError(
            f"{spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ImportPathError(f"{spec!r}: module {module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    return obj


class ComponentError(ValueError):
    """A component name that cannot be resolved to a usable class; the message is one line."""


class ShadowedPluginWarning(UserWarning):
    """An installed plugin registers a short name that a built-in already has (the built-in is used)."""


@dataclass(frozen=True)
class Component:
    """One name a config may give (``natsray components`` lists them).

    Attributes:
        name: The short name (``strategy.name`` / ``evaluator.type``).
        target: ``"package.module:Class"`` it stands for.
        origin: ``"built-in"``, or the distribution that registers it (``"mypkg 0.1"``).
        shadowed_by: For a plugin whose name a built-in (or another plugin) also has, what wins
            (the plugin is then reachable by its import path only); empty otherwise.
    """

    name: str
    target: str
    origin: str
    shadowed_by: str = ""

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"


class ComponentRegistry:
    """Short names of one kind of component: built-ins first, then installed entry points.

    Args:
        kind: ``"strategy"`` or ``"evaluator"`` (for messages).
        field: The config field naming it (``strategy.name``).
        builtins: Short name -> ``"module:Class"`` (read live: tests may add to it).
        group: The entry-point group plugins register in (``natsray.strategies``).
        base: The class every component must subclass.
    """

    def __init__(self, kind: str, field: str, builtins: Mapping[str, str], group: str, base: type) -> None:
        self.kind = kind
        self.field = field
        self.builtins = builtins
        self.group = group
        self.base = base
        self._cache: tuple[tuple[str, ...], list[Component]] | None = None

    def plugins(self) -> list[Component]:
        """The entry points of :attr:`group` on ``sys.path`` now, in name order (one per target)."""
        key = tuple(sys.path)
        if self._cache is None or self._cache[0] != key:
            found: dict[tuple[str, str], Component] = {}
            for point in metadata.entry_points(group=self.group):
                dist = getattr(point, "dist", None)
                origin = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
                target = f"{point.module}:{point.attr}" if point.attr else point.module  # extras dropped
                found.setdefault((point.name, target), Component(point.name, target, origin))
            self._cache = (key, sorted(found.values(), key=lambda c: (c.name, c.origin)))
        return self._cache[1]

    def components(self) -> list[Component]:
        """Every short name: the built-ins, then the plugins (a clashing plugin marked ``shadowed_by``)."""
        listed = [Component(name, target, "built-in") for name, target in self.builtins.items()]
        plugins = self.plugins()
        for plugin in plugins:
            if plugin.name in self.builtins:
                plugin = Component(plugin.name, plugin.target, plugin.origin, "the built-in")
            else:
                rivals = [p.origin for p in plugins if p.name == plugin.name and p is not plugin]
                if rivals:
                    plugin = Component(plugin.name, plugin.target, plugin.origin, f"a clash with {rivals[0]}")
            listed.append(plugin)
        return listed

    def names(self) -> list[str]:
        """The short names a config may give."""
        return list(dict.fromkeys([*self.builtins, *(plugin.name for plugin in self.plugins())]))

    def is_known(self, name: str) -> bool:
        """Whether ``name`` is an import path or a short name (without importing anything)."""
        return is_import_path(name) or name in self.builtins or name in self.names()

    def unknown(self, name: str) -> str:
        """The one-line reason ``name`` is not a component, with a did-you-mean."""
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"{name!r} is not one of {', '.join(names)}{hint}, "
            f"nor an import path 'package.module:Class' of your own {self.kind}"
        )

    def target(self, name: str) -> str:
        """The ``"module:Class"`` a name stands for: an import path itself, a built-in, then a plugin.

        Raises:
            ComponentError: an unknown name, or one two installed packages register.
        """
        if is_import_path(name):
            return name
        if name in self.builtins:
            shadowed = [p for p in self.plugins() if p.name == name] if name not in _WARNED else []
            if shadowed:
                _WARNED.add(name)
                warnings.warn(
                    f"{self.field}: {name!r} is the built-in {self.builtins[name]}; the {self.kind} "
                    f"{shadowed[0].origin} registers under that name ({shadowed[0].target}) is reachable "
                    "by its import path only",
                    ShadowedPluginWarning,
                    stacklevel=2,
                )
            return self.builtins[name]
        matches = [plugin for plugin in self.plugins() if plugin.name == name]
        if not matches:
            raise ComponentError(self.unknown(name))
        if len(matches) > 1:
            claims = " and ".join(f"{p.origin} ({p.target})" for p in matches)
            raise ComponentError(
                f"{name!r} is registered by {claims}: give the import path of the one you mean"
            )
        return matches[0].target

    def load(self, name: str) -> type:
        """The class ``name`` stands for, checked: a subclass of :attr:`base` with a ``Config`` dataclass.

        Raises:
            ComponentError: one line: unknown name, module not found, attribute missing, not a
                class, wrong base class, abstract methods left, no ``Config`` dataclass.
        """
        target = self.target(name)
        try:
            cls = import_object(target)
        except ImportPathError as exc:
            raise ComponentError(str(exc)) from None
        where = target if target == name else f"{name!r} ({target})"
        base = self.base.__name__
        if not isinstance(cls, type):
            raise ComponentError(f"{where} is a {type(cls).__name__}, not a {base} subclass")
        if not issubclass(cls, self.base):
            raise ComponentError(
                f"{where} is not a {base} subclass (subclass natsray.{base}; see docs/extending.md)"
            )
        config = getattr(cls, "Config", None)
        if not (isinstance(config, type) and is_dataclass(config)):
            raise ComponentError(
                f"{where} has no Config dataclass (set Config = a @dataclass(frozen=True) of its "
                f"{self.kind} section's fields)"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise ComponentError(f"{where} does not implement {missing} (abstract in {base})")
        return cls


_WARNED: set[str] = set()
"""Names whose shadowed plugin was already warned about in this process."""


def prepend_import_roots(paths: Iterable[str]) -> list[str]:
    """Put ``paths`` at the front of ``sys.path`` (those not there yet); returns the ones added.

    Used with the local ``working_dir`` / ``py_modules`` of a Ray ``runtime_env``, so the driver
    imports a user's module from the directory that Ray ships to the actors.
    """
    added = [path for path in dict.fromkeys(paths) if path not in sys.path]
    sys.path[:0] = added
    if added:
        importlib.invalidate_caches()
    return added


DATASET_TARGETS: dict[str, str] = {
    "digits": "natsray.datasets.builtin:load_digits",
    "cifar10": "natsray.datasets.builtin:load_cifar10",
    "cifar100": "natsray.datasets.builtin:load_cifar100",
    "ImageNet16-120": "natsray.datasets.builtin:load_imagenet16",
    "arrays": "natsray.datasets.arrays:load_arrays",
    "folder": "natsray.datasets.folder:load_folder",
}
"""The built-in datasets (``natsray.datasets.DATASETS`` + ``USER_DATASETS``, in order) and the functions
that read them (what ``natsray components`` lists). Here, without torch: listing names imports nothing."""

DATASET_REGISTRY = ComponentRegistry(
    "dataset", "evaluator.dataset", DATASET_TARGETS, "natsray.datasets", object
)
"""Every dataset name: the built-ins, then dataset plugins registered under the entry-point group
``natsray.datasets``; import paths ``"package.module:function"`` as given (``natsray.datasets.plugin``)."""


def is_dataset_plugin(name: object) -> bool:
    """Whether ``name`` names a dataset plugin: an import path, or a short name an installed package
    registers that no built-in dataset has. Nothing is imported."""
    if not isinstance(name, str) or name in DATASET_TARGETS:
        return False
    return is_import_path(name) or name in DATASET_REGISTRY.names()
