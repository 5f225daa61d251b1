"""A user's own package for plugin tests: written in a temp dir and put on ``sys.path``, as a user's
project directory is, then taken off again with its modules."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def user_package(root: Path, package: str, modules: Mapping[str, str]) -> Iterator[Path]:
    """``root/package/`` with ``__init__.py`` and one ``NAME.py`` per ``modules`` item (dedented
    source), importable while the context lasts; ``root`` is yielded."""
    folder = root / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == package or name.startswith(f"{package}.")]:
            del sys.modules[name]
