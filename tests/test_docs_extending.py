"""Every code block of docs/extending.md, run for real, section by section.

The page's convention: each ``## `` section runs in its own fresh temporary directory (the current
directory of its blocks), in order. A fenced block whose first line is ``# file: REL/PATH`` is written
to that file (any language); a ``python`` block without it is executed (one namespace per section, in a
subprocess, so Ray and imports do not leak between sections; the section's directory is NOT on
``PYTHONPATH``); a ``bash`` block is run by bash with ``set -eu``: its ``$ `` lines when it has any (the
others are shown output), else all its lines. ``natsray`` is on ``PATH``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ray_head import clean_env

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "extending.md"
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
FILE_LINE = re.compile(r"^(?:#|//|--)\s*file:\s*(\S+)\s*$")

RUNNER = r"""
import json, subprocess, sys
from pathlib import Path

namespace = {"__name__": "__main__"}
for number, (language, text) in enumerate(json.load(open(sys.argv[1])), 1):
    first, _, rest = text.partition("\n")
    target = __import__("re").match(r"^(?:#|//|--)\s*file:\s*(\S+)\s*$", first)
    if target:
        path = Path(target.group(1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rest)
    elif language == "python":
        exec(compile(text, f"<block {number}>", "exec"), namespace)
    elif language in ("bash", "sh", "shell", "console"):
        lines = text.splitlines()
        commands = [line[2:] for line in lines if line.startswith("$ ")]
        script = "\n".join(commands if commands else lines)
        done = subprocess.run(["bash", "-c", "set -eu\n" + script])
        if done.returncode != 0:
            sys.exit(f"block {number} (bash) exited {done.returncode}:\n{script}")
"""


def sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(title, [(language, block text)])`` of each ``## `` section, in order."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return [
        (title.strip(), [(m.group(1), m.group(2)) for m in FENCE.finditer(body)])
        for title, body in zip(parts[1::2], parts[2::2], strict=True)
    ]


SECTIONS = sections(DOC.read_text(encoding="utf-8"))


def test_the_page_has_its_sections() -> None:
    titles = [title for title, _ in SECTIONS]
    for title in (
        "Your own dataset",
        "Your own scoring function",
        "Your own strategy",
        "Your own evaluator class",
        "Publishing a plugin package",
    ):
        assert title in titles


@pytest.mark.parametrize(
    ("title", "blocks"), [s for s in SECTIONS if s[1]], ids=[t for t, b in SECTIONS if b]
)
def test_section_runs(title: str, blocks: list[tuple[str, str]], tmp_path: Path) -> None:
    run_section(title, blocks, tmp_path)


def run_section(title: str, blocks: list[tuple[str, str]], tmp_path: Path) -> None:
    """Run one section's blocks in ``tmp_path / "work"`` (the convention above; docs/python-api.md too)."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "runner.py").write_text(RUNNER)  # outside the section's directory: not importable
    env = clean_env(PYTHONPATH=str(REPO), NATSRAY_DEBUG="1")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "blocks.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{title}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert str(work) not in env["PYTHONPATH"] and os.pathsep not in env["PYTHONPATH"]


def _first_column_names(text: str) -> list[str]:
    """The backticked names in the first column of docs/api.md's tables, without their arguments."""
    names = []
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        for item in re.findall(r"`([^`]+)`", line.split(" | ")[0]):
            names.append(re.sub(r"\(.*\)$", "", item.strip()))
    return names


def test_every_name_docs_api_lists_exists() -> None:
    import importlib
    import inspect

    import natsray

    names = _first_column_names((REPO / "docs" / "api.md").read_text(encoding="utf-8"))
    assert len(names) > 30
    owner = None
    for name in names:
        if name.startswith("natsray."):
            module, _, attr = name.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), name
            owner = importlib.import_module(module)
            continue
        if name.startswith("."):  # `.shared`: a member of the previous name's class
            name = f"{owner.__name__}{name}"
        head, _, member = name.partition(".")
        if owner is not None and inspect.ismodule(owner) and not hasattr(natsray, head):
            assert hasattr(owner, head), name  # `mutate` after `natsray.search_space.random_sample`
            continue
        assert head in natsray.__all__, f"{head} is not exported from natsray"
        cls = getattr(natsray, head)
        owner = cls
        if member and not hasattr(cls, member):  # (a class without its own __init__ has no source for it)
            declared = member in getattr(
                cls, "__annotations__", {}
            )  # `Config: ClassVar[type]`, dataclass fields
            assert hasattr(cls, member) or declared or _set_in_init(cls, member), name


def _set_in_init(cls: object, member: str) -> bool:
    """Whether ``cls.__init__`` (written in Python, not generated) assigns ``self.<member>``."""
    import inspect

    try:
        return inspect.isclass(cls) and f"self.{member} =" in inspect.getsource(cls.__init__)
    except (OSError, TypeError):  # a generated __init__ (dataclass) has no source
        return False
